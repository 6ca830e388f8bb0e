"""Where a turn's Python time goes at N guidelines: the cycle collector's pauses and the engine's
steps that are proportional to N, per turn, over bench/side_by_side.py's turns.

    PYTHONPATH=src:bench .venv/bin/python bench/turn_parts.py [--n 1000] [--latency-ms 200]
        [--embedder minilm|hashing] [--gc-threshold 700]

Each figure is a median over the measured turns of milliseconds spent in that step during one
``Server.send``; the steps are wrapped in place (a wrapper adds about a microsecond a call).
``--gc-threshold`` sets the young generation's threshold as ``TACTFUL_GC_THRESHOLD`` would (the
server's default is 20,000; Python's is 700).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import gc
import os
import statistics
import sys
import time
from typing import Any

import side_by_side
import turn_cost

import tactful
from tactful.engine import candidates, match, pipeline, retrieve
from tactful.engine.journeys import plan as journey_plan

spent: collections.Counter[str] = collections.Counter()


def timed(owner: Any, name: str, label: str) -> None:
    """Wrap ``owner.name`` to add its time to ``spent[label]``."""
    raw = owner.__dict__[name]
    kind = type(raw) if isinstance(raw, (staticmethod, classmethod)) else None
    inner = raw.__func__ if kind is not None else raw

    @functools.wraps(inner)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[label] += (time.perf_counter() - started) * 1000

    setattr(owner, name, kind(wrapper) if kind is not None else wrapper)


STEPS = [
    (retrieve.Ranked, "many", "ranking: Ranked objects"),
    (retrieve._Rows, "best", "ranking: dense products"),
    (retrieve.Retriever, "_fuse", "ranking: fusion"),
    (retrieve.Retriever, "_lexical", "ranking: BM25"),
    (journey_plan, "plan", "journeys in play"),
    (pipeline, "select_candidates", "candidate selection"),
    (match.ModelMatcher, "plan", "match: batches"),
    (match.ModelMatcher, "prompt", "match: prompts"),
    (match.ModelMatcher, "_answered", "match: answers read"),
    (candidates.CandidateSet, "candidates", "trace records (after the reply)"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--embedder", choices=["minilm", "hashing"], default="minilm")
    parser.add_argument("--gc-threshold", type=int, default=None)
    args = parser.parse_args()
    if args.gc_threshold is not None:
        os.environ["TACTFUL_GC_THRESHOLD"] = str(args.gc_threshold)
        if args.gc_threshold == 0:
            gc.set_threshold(700, *gc.get_threshold()[1:])
    for owner, name, label in STEPS:
        timed(owner, name, label)
    started: dict[str, float] = {}

    def collector(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started["at"] = time.perf_counter()
        elif "at" in started:
            spent["cycle collector"] += (time.perf_counter() - started.pop("at")) * 1000
            spent["cycle collections"] += 1

    gc.callbacks.append(collector)
    per_turn: list[dict[str, float]] = []
    send = tactful.Server.send

    async def counted(self: Any, *a: Any, **kw: Any) -> Any:
        spent.clear()
        reply = await send(self, *a, **kw)
        per_turn.append(dict(spent))
        return reply

    tactful.Server.send = counted  # type: ignore[method-assign]
    data = turn_cost.scenario(args.n)
    figures = asyncio.run(side_by_side.measure_tactful(data, args.latency_ms, args.embedder))
    turns = per_turn[-len(figures.turns) :]
    print(
        f"N = {args.n}, {args.embedder}, {args.latency_ms:g} ms model, "
        f"gc threshold {gc.get_threshold()[0]}, {len(turns)} turns (medians per turn):"
    )
    for label in ["cycle collector", "cycle collections", *(s[2] for s in STEPS)]:
        unit = "" if label == "cycle collections" else " ms"
        print(f"  {label:34s} {statistics.median(t.get(label, 0.0) for t in turns):8.2f}{unit}")
    overhead = statistics.median(t.overhead_ms for t in figures.turns)
    print(f"  {'overhead (wall, for reference)':34s} {overhead:8.2f} ms")


if __name__ == "__main__":
    sys.exit(main())
