"""Tier-1 candidate recall on the labeled Voltmart set with the real embedder.

    PYTHONPATH=src .venv/bin/python bench/candidate_recall.py [--dataset DIR] [--max-forced N]

(DIR defaults to ../shared/datasets/matching beside the repository; N to the engine's
DEFAULT_MAX_FORCED, -1 for no limit.)

Tier 1 is what the matcher checks in detail (engine/candidates.py): the always-check set
(engine/classify.py) that can hold at this turn (who wrote before the last customer message,
as the engine passes it), the lowest-ranked forced observations yielding beyond max_forced,
plus the k best-ranked guidelines not already in it, so its size varies by turn: the table
gives its mean and max, with max_forced and without it. Recall is micro: the share of
all `relevant` labels of the public split that land in tier 1. The table compares the
dense-only ranking the engine had before (cosine over the recent customer messages and the
window) with the hybrid one (more views of each condition and of each message, fused with
BM25 by reciprocal rank within each message), with and without the always-check set. It also
checks that tier 1 and tier 2 together cover every guideline without the always marker. The
figures go into docs/matching.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tactful.domain import Agent, Customer, Guideline, Session
from tactful.engine.candidates import (
    DEFAULT_K,
    DEFAULT_MAX_FORCED,
    CandidateSet,
    select_candidates,
)
from tactful.engine.classify import Classification, classify
from tactful.engine.context import TurnContext, Utterance
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.retrieve import Ranked, Retriever
from tactful.llm.base import count_tokens
from tactful.llm.minilm import MiniLMEmbedder
from tactful.store.sql import open_store

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "matching"
KS = tuple(sorted({0, 20, 30, 40, 45, 50, 55, 60, 70, 80, DEFAULT_K}))
# Rough per-guideline costs in the match prompt (engine/match.py): a detailed check lists the
# condition with some framing and gets a structured answer (number, condition restated,
# evidence, verdict); a screen entry is the condition and its number, answered only if flagged.
DETAILED_FRAMING = 12
ANSWER_TOKENS = 60
SCREEN_FRAMING = 3


@dataclass(frozen=True)
class Dataset:
    guidelines: list[Guideline]
    conversations: list[dict[str, Any]]


def load(path: Path) -> Dataset:
    raw = json.loads((path / "guidelines.json").read_text("utf-8"))
    guidelines = [
        Guideline(
            id=g["id"],
            condition=g["condition"],
            action=g["action"],
            always=g["kind"] == "always",
        )
        for g in raw
    ]
    conversations = json.loads((path / "conversations.json").read_text("utf-8"))
    return Dataset(guidelines, conversations)


def context(conversation: dict[str, Any], guidelines: list[Guideline]) -> TurnContext:
    messages = [
        Utterance(role=m["role"], text=m["text"], offset=i)
        for i, m in enumerate(conversation["messages"])
    ]
    profile = conversation.get("customer")
    customer = (
        Customer(name=profile["name"], metadata={"tier": profile["tier"], "logged_in": "yes"})
        if profile
        else Customer(name="Guest", metadata={"logged_in": "no"})
    )
    agent = Agent(name="Voltmart")
    return TurnContext(
        agent=agent,
        session=Session(agent_id=agent.id, customer_id=customer.id),
        customer=customer,
        messages=messages,
        guidelines=guidelines,
        canned_responses=[],
        terms=[],
    )


async def rank_all(data: Dataset, *, hybrid: bool, cache: EmbeddingCache) -> list[list[Ranked]]:
    retriever = Retriever(cache, hybrid=hybrid)
    return [
        await retriever.rank(context(c, data.guidelines), data.guidelines)
        for c in data.conversations
    ]


def _never(_: Guideline) -> Classification:
    return Classification(False)


def prior(conversation: dict[str, Any]) -> set[str]:
    """Who wrote before the last customer message (as the engine passes it)."""
    return context(conversation, []).prior_roles()


# The engine's ``max_forced`` as the bench applies it (``--max-forced``; None: no limit).
MAX_FORCED: int | None = DEFAULT_MAX_FORCED


def select(
    ranked: Sequence[Ranked],
    k: int,
    conversation: dict[str, Any],
    *,
    always_check: bool = True,
    max_forced: int | bool | None = True,
) -> CandidateSet:
    """Tier 1 and 2 as the engine picks them (``max_forced=True``: the bench's setting)."""
    return select_candidates(
        ranked,
        k=k,
        classifier=classify if always_check else _never,
        prior=prior(conversation),
        max_forced=MAX_FORCED if max_forced is True else max_forced,
    )


@dataclass(frozen=True)
class Recall:
    recall: float
    hits: int
    labels: int
    mean_size: float
    max_size: int
    by_group: dict[str, tuple[int, int]]  # type or tag -> (hits, labels)


def tier1_recall(
    data: Dataset,
    rankings: Sequence[Sequence[Ranked]],
    k: int,
    *,
    always_check: bool = True,
    max_forced: int | bool | None = True,
) -> Recall:
    hits = labels = 0
    sizes: list[int] = []
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for conversation, ranked in zip(data.conversations, rankings, strict=True):
        chosen = select(ranked, k, conversation, always_check=always_check, max_forced=max_forced)
        tier1 = {s.guideline.id for s in chosen.tier1}
        relevant = set(conversation["relevant"])
        hit = len(relevant & tier1)
        hits += hit
        labels += len(relevant)
        sizes.append(len(tier1))
        for name in dict.fromkeys([f"type:{conversation['type']}", *conversation["tags"]]):
            groups[name][0] += hit
            groups[name][1] += len(relevant)
    return Recall(
        recall=hits / labels if labels else 0.0,
        hits=hits,
        labels=labels,
        mean_size=statistics.fmean(sizes) if sizes else 0.0,
        max_size=max(sizes, default=0),
        by_group={name: (h, n) for name, (h, n) in sorted(groups.items())},
    )


def plain_topk_recall(data: Dataset, rankings: Sequence[Sequence[Ranked]], k: int) -> float:
    """The issue's first definition: the always-check set united with the plain top k."""
    hits = labels = 0
    for conversation, ranked in zip(data.conversations, rankings, strict=True):
        always = {s.guideline.id for s in select(ranked, 0, conversation).tier1}
        chosen = always | {r.guideline.id for r in ranked[:k]}
        relevant = set(conversation["relevant"])
        hits += len(relevant & chosen)
        labels += len(relevant)
    return hits / labels if labels else 0.0


def cost(data: Dataset, rankings: Sequence[Sequence[Ranked]], k: int) -> tuple[float, float]:
    """Mean guideline-list prompt tokens and detailed-answer tokens per turn at ``k``."""
    prompt: list[int] = []
    answer: list[int] = []
    for conversation, ranked in zip(data.conversations, rankings, strict=True):
        chosen = select(ranked, k, conversation)
        prompt.append(
            sum(count_tokens(s.guideline.condition) + DETAILED_FRAMING for s in chosen.tier1)
            + sum(count_tokens(s.guideline.condition) + SCREEN_FRAMING for s in chosen.tier2)
        )
        answer.append(ANSWER_TOKENS * len(chosen.tier1))
    return statistics.fmean(prompt), statistics.fmean(answer)


def uncovered(data: Dataset, rankings: Sequence[Sequence[Ranked]], k: int) -> list[str]:
    """Guidelines without the always marker that are in neither tier (should be none)."""
    expected = {g.id for g in data.guidelines if not g.always and g.enabled}
    missing: list[str] = []
    for conversation, ranked in zip(data.conversations, rankings, strict=True):
        chosen = select(ranked, k, conversation)
        tiers = [s.guideline.id for s in (*chosen.tier1, *chosen.tier2)]
        if set(tiers) != expected or len(tiers) != len(expected):
            missing.append(conversation["id"])
    return missing


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument(
        "--max-forced",
        type=int,
        default=DEFAULT_MAX_FORCED,
        help=f"forced guidelines before observations yield (default {DEFAULT_MAX_FORCED}; "
        "-1: no limit)",
    )
    args = parser.parse_args()
    global MAX_FORCED
    MAX_FORCED = None if args.max_forced < 0 else args.max_forced
    data = load(args.dataset)
    store = await open_store("sqlite+aiosqlite:///:memory:")
    cache = EmbeddingCache(MiniLMEmbedder(), store)
    started = time.perf_counter()
    dense = await rank_all(data, hybrid=False, cache=cache)
    dense_s = time.perf_counter() - started
    started = time.perf_counter()
    hybrid = await rank_all(data, hybrid=True, cache=cache)
    hybrid_s = time.perf_counter() - started
    await store.close()

    checkable = [g for g in data.guidelines if not g.always]
    always_set = [g for g in checkable if classify(g).always_check]
    reasons: dict[str, int] = defaultdict(int)
    for g in always_set:
        for why in classify(g).reasons:
            reasons[why] += 1
    labels = sum(len(c["relevant"]) for c in data.conversations)
    print(
        f"{len(data.conversations)} conversations, {len(checkable)} checkable guidelines "
        f"({len(data.guidelines) - len(checkable)} always-matched), {labels} labels"
    )
    print(f"ranking time: dense {dense_s:.1f}s, hybrid {hybrid_s:.1f}s (embedding included)")
    print(
        f"always-check set: {len(always_set)} guidelines ("
        + ", ".join(f"{why} {n}" for why, n in sorted(reasons.items(), key=lambda x: -x[1]))
        + "; a guideline may have several reasons)\n"
    )

    print("tier-1 recall (micro); k = best-ranked guidelines added beyond the forced ones")
    header = "  ranking   always-check " + "".join(f"  k={k:<4d}" for k in KS)
    print(header)
    for name, rankings in (("dense", dense), ("hybrid", hybrid)):
        for with_always in (False, True):
            row = [tier1_recall(data, rankings, k, always_check=with_always) for k in KS]
            print(
                f"  {name:<9s} {'yes' if with_always else 'no':<12s} "
                + "".join(f"  {r.recall:6.3f}" for r in row)
            )
    # Tier 1 varies by turn: conditions about the conversation's course are forced only once
    # they can hold (engine/classify.py, Classification.needs).
    sizes = [tier1_recall(data, hybrid, k) for k in KS]
    print(f"  {'tier-1 size, mean':<22s} " + "".join(f"  {r.mean_size:6.1f}" for r in sizes))
    print(f"  {'tier-1 size, max':<22s} " + "".join(f"  {r.max_size:6d}" for r in sizes))
    if MAX_FORCED is not None:
        # The same without the limit: every forced observation stays.
        free = [tier1_recall(data, hybrid, k, max_forced=None) for k in KS]
        print(f"  {'hybrid, no max_forced':<22s} " + "".join(f"  {r.recall:6.3f}" for r in free))
        print(f"  {'  tier-1 size, mean':<22s} " + "".join(f"  {r.mean_size:6.1f}" for r in free))
        print(f"  {'  tier-1 size, max':<22s} " + "".join(f"  {r.max_size:6d}" for r in free))

    print("  estimated tokens per turn for the guideline lists (prompt + detailed answers):")
    for k in KS:
        p, a = cost(data, hybrid, k)
        print(f"    k={k:<4d} {p:7.0f} + {a:6.0f} = {p + a:7.0f}")

    print("\nthe issue's definition: always-check set united with the plain top k")
    for name, rankings in (("dense", dense), ("hybrid", hybrid)):
        print(
            f"  {name:<9s}"
            + "".join(f"  top {k}: {plain_topk_recall(data, rankings, k):.3f}" for k in (30, 50))
        )

    final = tier1_recall(data, hybrid, DEFAULT_K)
    base = tier1_recall(data, dense, DEFAULT_K)
    print(f"\nper type and tag at the default k={DEFAULT_K} (hits/labels): dense -> hybrid")
    for group, (h, n) in final.by_group.items():
        bh, _ = base.by_group[group]
        print(f"  {group:<24s} {bh / n:6.3f} -> {h / n:6.3f}   ({h}/{n})")
    print(
        f"\ndefault k={DEFAULT_K}, max_forced {MAX_FORCED}: tier-1 recall {final.recall:.3f} "
        f"({final.hits}/{final.labels}), tier 1 mean {final.mean_size:.1f} / max "
        f"{final.max_size} of {len(checkable)}"
    )
    missing = uncovered(data, hybrid, DEFAULT_K)
    print(
        "tier 1 + tier 2 cover every checkable guideline in every conversation"
        if not missing
        else f"NOT COVERED in {missing}"
    )


if __name__ == "__main__":
    asyncio.run(main())
