"""tactful and Parlant 3.3.2 side by side, on the same scenario, in the same run.

    .venv/bin/python bench/side_by_side.py [--sizes 10 100 300 1000] [--latencies 0 200]
        [--parlant-venv DIR | --no-parlant] [--out docs/benchmarks.md]

For each number of guidelines N and model latency L, both systems run the 5 customer turns of
the scenario of ../shared/anchors/parlant (its guidelines, 2 tools, journey and glossary; dumped
once and given to both). Parlant runs in its own virtual environment through the anchor's
harness (`run.sh`, with its fake model); tactful runs in a subprocess of its own with the
scripted double answering the same way the anchor's fake does (word overlap) and sleeping L ms
per call. Both count prompt tokens with o200k_base (`bpe-openai`). Per turn (median over the 5):
model calls, prompt tokens, the largest prompt, waves on the critical path (L > 0), wall time
from the customer message to the reply, engine overhead (wall time minus time with a model call
in flight), time to the first status event; per run: start-up time and model calls at start-up,
resident memory. The report (tables with the ratio tactful / Parlant, and PNG plots beside it)
goes to docs/benchmarks.md. `--parlant-venv` defaults to ../shared/anchors/parlant/.venv; create
it with that folder's `setup.sh` (pip only, about 1.5 min). Without it, tactful is measured alone
and the report says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Each configuration runs the scenario's 5 turns this many times (40 turns): medians over 5 turns
# moved by ±20% between identical runs.
ROUNDS = 8
# Where a run keeps its measurements before it writes the report.
RAW = Path(tempfile.gettempdir()) / "tactful_side_by_side.json"
ANCHOR_DIR = ROOT.parent / "shared" / "anchors" / "parlant"
RUN = ANCHOR_DIR / "run.sh"
sys.path.insert(0, str(Path(__file__).resolve().parent))


@dataclass
class TurnFigures:
    calls: int
    prompt_tokens: int
    largest: int
    waves: int
    wall_ms: float
    overhead_ms: float
    first_status_ms: float | None
    # Part of the overhead spent embedding (tactful only).
    embedding_ms: float | None = None
    # The trace's stage timings (tactful only; model time included where a stage calls it).
    stages: dict[str, float] = field(default_factory=dict)


@dataclass
class RunFigures:
    system: str
    n: int
    latency_ms: float
    turns: list[TurnFigures] = field(default_factory=list)
    startup_s: float = 0.0
    startup_calls: int = 0
    rss_mib: float = 0.0
    peak_rss_mib: float = 0.0
    error: str | None = None

    # The machine's 1-minute load average when the configuration started.
    load: float | None = None
    # Where MiniLM's encoder ran ("onnx" or "numpy"; None: the hashing embedder or Parlant).
    embedder_runtime: str | None = None

    def values(self, name: str) -> list[float]:
        return [getattr(t, name) for t in self.turns if getattr(t, name) is not None]

    def median(self, name: str) -> float | None:
        values = self.values(name)
        return float(statistics.median(values)) if values else None

    def quartiles(self, name: str) -> tuple[float, float] | None:
        """The interquartile range of a per-turn figure (None under 4 turns)."""
        values = self.values(name)
        if len(values) < 4:
            return None
        q1, _, q3 = statistics.quantiles(values, n=4)
        return q1, q3


# -- tactful, one configuration (run in a subprocess: its memory is its own) -------------------


def _rss() -> tuple[float, float]:
    """Resident and peak MiB of this process and of those it started (the offline embedder's
    process and its fork server), summed."""
    from load import with_descendants

    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    for pid in with_descendants(os.getpid()):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            key, _, amount = line.partition(":")
            if key in values:
                values[key] += int(amount.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def _union_ms(spans: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Milliseconds of [lo, hi] covered by the spans (seconds)."""
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in spans if b > lo and a < hi)
    total, end = 0.0, lo
    for a, b in clipped:
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total * 1000


class _TimedEmbedder:
    """Wraps an embedder to record when each call ran (perf_counter seconds)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dimensions = inner.dimensions
        self.spans: list[tuple[float, float]] = []

    async def embed(self, texts: Any) -> Any:
        started = time.perf_counter()
        try:
            return await self.inner.embed(texts)
        finally:
            self.spans.append((started, time.perf_counter()))

    def prepare(self) -> None:
        self.inner.prepare()

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


async def measure_tactful(
    data: dict[str, Any], latency_ms: float, embedder: str, rounds: int = ROUNDS
) -> RunFigures:
    """``embedder``: "hashing" (feature-hashed words, as the anchor's fake gives Parlant),
    "minilm" (tactful's real offline default, on this CPU: on ONNX Runtime when installed) or
    "minilm-numpy" (the same, its encoder in NumPy). The scenario's turns run ``rounds``
    times, each round in a new session."""
    import turn_cost

    import tactful
    from tactful.domain import EventKind, EventSource, Trace
    from tactful.engine.compose import ReplyAnswer
    from tactful.llm.minilm import MiniLMEmbedder
    from tactful.llm.scripted import HashingEmbedder, ScriptedGenerator

    # The tokenizer (o200k, a large vocabulary) is loaded after memory is read: the server's
    # memory, not the benchmark's, is what is compared.
    prompts: list[list[tuple[str, str, str]]] = []
    system = _system(embedder)
    figures = RunFigures(system, len(data["guidelines"]), latency_ms, load=os.getloadavg()[0])
    model = ScriptedGenerator(
        {"match": turn_cost.fake_match, "compose": lambda c: ReplyAnswer(message="Happy to help.")},
        latency_s=latency_ms / 1000,
    )
    # MiniLM as the server runs it by default: in a process of its own.
    inner: Any = HashingEmbedder(1536)
    if embedder != "hashing":
        inner = MiniLMEmbedder(
            process=True, runtime="numpy" if embedder.endswith("numpy") else "auto"
        )
        figures.embedder_runtime = inner.runtime
    timed = _TimedEmbedder(inner)

    with tempfile.TemporaryDirectory() as home:
        # First start: the definitions are written (not measured).
        async with tactful.Server(data_dir=Path(home), generator=model, embedder=timed) as server:  # type: ignore[arg-type]
            await turn_cost.define_agent(server, data)
        # Start-up as a deployment sees it: open the store and define the agent again.
        model.calls.clear()
        started = time.perf_counter()
        async with tactful.Server(data_dir=Path(home), generator=model, embedder=timed) as server:  # type: ignore[arg-type]
            agent = await turn_cost.define_agent(server, data)
            figures.startup_s = time.perf_counter() - started
            figures.startup_calls = len(model.calls)
            store = server.runtime.store
            for text, session in await _rounds(server, agent, data["customer_turns"], rounds):
                await asyncio.sleep(0.3)  # let the previous turn's background work settle
                model.calls.clear()
                timed.spans.clear()
                anchor_wall, anchor_perf = time.time(), time.perf_counter()
                reply = await server.send(session, text)
                events = await store.list_events(session.id, trace_id=reply.trace_id)
                trace = await store.get(Trace, reply.trace_id)
                asked = next(e for e in events if e.source is EventSource.CUSTOMER)

                def perf(e: Any, aw: float = anchor_wall, ap: float = anchor_perf) -> float:
                    return float(ap + (e.creation_utc.timestamp() - aw))

                t0, t1 = perf(asked), perf(reply)
                statuses = [perf(e) for e in events if e.kind is EventKind.STATUS]
                spans = [(c.started, c.ended) for c in model.calls]
                before = [c for c in model.calls if c.ended <= t1 + 1e-6]
                prompts.append(
                    [
                        (c.prompt.system, c.prompt.user, json.dumps(c.schema.model_json_schema()))
                        for c in before
                    ]
                )
                wall = (t1 - t0) * 1000
                # Time with an embedding running and no model call in flight, within the turn.
                embedding = _union_ms(timed.spans + spans, t0, t1) - _union_ms(spans, t0, t1)
                figures.turns.append(
                    TurnFigures(
                        calls=len(before),
                        prompt_tokens=0,
                        largest=0,
                        waves=turn_cost.waves(before),
                        wall_ms=round(wall, 2),
                        overhead_ms=round(wall - _union_ms(spans, t0, t1), 2),
                        first_status_ms=round((min(statuses) - t0) * 1000, 2) if statuses else None,
                        embedding_ms=round(embedding, 2),
                        stages={k: round(v, 2) for k, v in trace.stage_timings_ms.items()},
                    )
                )
            figures.rss_mib, figures.peak_rss_mib = _rss()
    count, _ = turn_cost.tokenizer()
    for turn, texts in zip(figures.turns, prompts, strict=True):
        sizes = [sum(count(part) for part in parts) for parts in texts]
        turn.prompt_tokens, turn.largest = sum(sizes), max(sizes, default=0)
    return figures


async def _rounds(server: Any, agent: Any, turns: list[str], rounds: int) -> list[tuple[str, Any]]:
    """The turns to measure: ``rounds`` times the scenario, each round in a session of its own
    (greeted once first, not measured, so that every round starts from the same place). Each
    message ends with its round's tag, `` (ref r<i>)``, as bench/load.py's do: a text the
    embedding cache has not seen, in no guideline, too short to change the fake's answers."""
    out = []
    for i in range(rounds):
        session = await server.create_session(agent)
        await server.send(session, "hello")
        out += [(f"{text} (ref r{i})", session) for text in turns]
    return out


def _system(embedder: str) -> str:
    return "tactful" if embedder == "hashing" else f"tactful+{embedder}"


def _tactful(scenario_file: Path, latency_ms: float, embedder: str) -> RunFigures:
    """One configuration in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, __file__, "--one", str(scenario_file), str(latency_ms), embedder],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        n = len(json.loads(scenario_file.read_text())["guidelines"])
        return RunFigures(_system(embedder), n, latency_ms, error=out.stderr[-2000:])
    raw = json.loads(out.stdout)
    turns = [TurnFigures(**t) for t in raw.pop("turns")]
    return RunFigures(**raw, turns=turns)


# -- Parlant, through the anchor's harness ---------------------------------------------------------


def _parlant(scenario_file: Path, latency_ms: float, venv: Path, work: Path) -> RunFigures:
    n = len(json.loads(scenario_file.read_text())["guidelines"])
    load = os.getloadavg()[0]
    out_file = work / f"parlant_n{n}_l{latency_ms:g}.json"
    run = subprocess.run(
        [
            str(RUN),
            "--venv",
            str(venv),
            "--scenario",
            str(scenario_file),
            "--latency-ms",
            f"{latency_ms:g}",
            "--out",
            str(out_file),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    figures = RunFigures("parlant", n, latency_ms, load=load)
    if not out_file.exists():
        figures.error = (run.stderr or run.stdout)[-2000:]
        return figures
    result = json.loads(out_file.read_text())
    if not result.get("ok"):
        figures.error = str(result.get("error"))
    for t in result.get("turns", []):
        figures.turns.append(
            TurnFigures(
                calls=t["llm_calls"],
                prompt_tokens=t["prompt_tokens"],
                largest=t["prompt_tokens_max"],
                waves=t["llm_waves"] or 0,
                wall_ms=t["wall_ms"],
                overhead_ms=t["overhead_ms"],
                first_status_ms=t.get("first_status_ms"),
            )
        )
    summary = result.get("summary", {})
    figures.startup_s = summary.get("startup_s") or 0.0
    figures.startup_calls = summary.get("startup_llm_calls") or 0
    memory = result.get("memory", {})
    figures.rss_mib = memory.get("rss_mib_end") or summary.get("rss_mib_at_ready") or 0.0
    figures.peak_rss_mib = memory.get("peak_rss_mib") or summary.get("peak_rss_mib") or 0.0
    return figures


# -- the report ----------------------------------------------------------------------------------

# Timings vary from turn to turn: shown as the median and its interquartile range.
TIMINGS = {"wall_ms", "overhead_ms", "embedding_ms", "first_status_ms"}

METRICS = [
    ("calls", "model calls / turn", "{:g}"),
    ("prompt_tokens", "prompt tokens / turn", "{:,.0f}"),
    ("largest", "largest prompt", "{:,.0f}"),
    ("waves", "waves", "{:g}"),
    ("wall_ms", "wall ms", "{:,.1f}"),
    ("overhead_ms", "overhead ms", "{:,.1f}"),
    ("embedding_ms", "of which embedding ms", "{:,.1f}"),
    ("first_status_ms", "ms to first status", "{:,.1f}"),
]


def _cell(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def _figure(run: RunFigures | None, name: str, fmt: str) -> str:
    """A run's median of a per-turn figure; for timings with its interquartile range."""
    value = run.median(name) if run and not run.error else None
    cell = _cell(value, fmt)
    spread = run.quartiles(name) if run and value is not None and name in TIMINGS else None
    if spread is not None:
        cell += f" ({fmt.format(spread[0])} to {fmt.format(spread[1])})"
    return cell


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.3f}"


def report(
    runs: list[RunFigures],
    sizes: list[int],
    latencies: list[float],
    note: str,
    load_lines: list[str] | None = None,
    delivery: list[dict[str, Any]] | None = None,
    kept: list[str] | None = None,
) -> str:
    by = {(r.system, r.n, r.latency_ms): r for r in runs}
    lines = [
        "# Benchmarks: tactful and Parlant side by side",
        "",
        "Measured by `.venv/bin/python bench/side_by_side.py` (see its docstring for the method)."
        " Both systems ran in the same run on the same machine, on the same scenario content "
        "(`../shared/anchors/parlant`), with fake models that answer the same way; prompt tokens "
        "are o200k_base for both. Every per-turn figure is a median; timings carry their "
        "interquartile range in brackets. tactful's are over 40 turns (the scenario's 5 customer "
        "turns, 8 times, each time in a new session); Parlant's over the 5 turns of one session "
        "(its harness runs one session per start, and a start costs it up to a minute).",
        "",
        note,
        "",
        machine_line(runs),
        "",
        "Parlant's time to its first status event is not in these tables (the anchor's harness "
        "does not record it); the concurrency table below has it for both systems, read from "
        "the events each client receives.",
        "",
    ]
    runtime = next((r.embedder_runtime for r in runs if r.system == "tactful+minilm"), None)
    where = {"onnx": " (ONNX Runtime)", "numpy": " (NumPy)"}.get(runtime or "", "")
    for latency in latencies:
        lines += [f"## Model latency {latency:g} ms", ""]
        head = f"| N | metric | tactful | Parlant | tactful / Parlant | tactful, MiniLM{where} |"
        lines += [head, "|---|---|---|---|---|---|"]
        for n in sizes:
            t, p = by.get(("tactful", n, latency)), by.get(("parlant", n, latency))
            m = by.get(("tactful+minilm", n, latency))
            for name, label, fmt in METRICS:
                tv = t.median(name) if t and not t.error else None
                pv = p.median(name) if p and not p.error else None
                lines.append(
                    f"| {n} | {label} | {_figure(t, name, fmt)} | {_figure(p, name, fmt)} "
                    f"| {_ratio(tv, pv)} | {_figure(m, name, fmt)} |"
                )
            for name, label, fmt in [
                ("startup_s", "start-up s", "{:.2f}"),
                ("startup_calls", "model calls at start-up", "{:g}"),
                ("rss_mib", "resident MiB after the turns", "{:,.0f}"),
            ]:
                tv = getattr(t, name) if t and not t.error else None
                pv = getattr(p, name) if p and not p.error else None
                mv = getattr(m, name) if m and not m.error else None
                lines.append(
                    f"| {n} | {label} | {_cell(tv, fmt)} | {_cell(pv, fmt)} | {_ratio(tv, pv)} "
                    f"| {_cell(mv, fmt)} |"
                )
        lines.append("")
    lines += runtime_table(runs, latencies)
    lines += stage_table(runs, sizes)
    if load_lines:
        lines += ["## Event delivery and concurrency", "", *load_lines, ""]
    lines += kept or []
    lines += targets(runs, sizes, latencies, delivery)
    failed = [r for r in runs if r.error]
    if failed:
        lines += ["## Runs that failed", ""]
        for r in failed:
            error = (r.error or "").strip().splitlines()[-1:] or [""]
            lines.append(f"- {r.system} N={r.n} L={r.latency_ms:g}: {error[0]}")
        lines.append("")
    return "\n".join(lines)


# Sections of the report that another run wrote (bench/load.py --backends, by hand): a new report
# keeps them as they were.
KEPT_SECTIONS = ["## Several processes on PostgreSQL", "## Components"]


def kept_sections(previous: Path) -> list[str]:
    """The KEPT_SECTIONS of the previous report, each up to the next heading or plot."""
    lines = previous.read_text().splitlines() if previous.exists() else []
    out: list[str] = []
    for i, line in enumerate(lines):
        if line in KEPT_SECTIONS:
            ends = (j for j in range(i + 1, len(lines)) if lines[j].startswith(("## ", "![")))
            section = lines[i : next(ends, len(lines))]
            while section and not section[-1].strip():
                section.pop()
            out += [*section, ""]
    return out


def machine_line(runs: list[RunFigures]) -> str:
    """The machine and how busy it was: a figure measured on a loaded machine is not one."""
    loads = [r.load for r in runs if r.load is not None]
    busy = f"{min(loads):.2f} to {max(loads):.2f}" if loads else "not recorded"
    return (
        f"Machine: {os.cpu_count()} CPUs; 1-minute load average when each configuration "
        f"started: {busy} (each configuration runs alone, in a process of its own)."
    )


def stage_table(runs: list[RunFigures], sizes: list[int]) -> list[str]:
    """Where tactful's time goes, per stage of its trace (medians over the turns)."""
    mine = [r for r in runs if r.system.startswith("tactful") and not r.error and r.turns]
    if not mine:
        return []
    names: list[str] = []
    for r in mine:
        for t in r.turns:
            names += [k for k in t.stages if k not in names]
    out = [
        "## Where tactful's time goes",
        "",
        "Medians over the turns of each stage's time in the turn's trace (ms). `match` includes "
        "its model calls (the fake's answer building at 0 ms latency, the sleep at 200 ms), "
        "`context` and the stages around them are the store and the engine. The stages do not "
        "include the status events and the reply's write.",
        "",
        "| run | N | latency ms | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for r in sorted(mine, key=lambda r: (r.system, r.latency_ms, r.n)):
        cells = []
        for name in names:
            values = [t.stages[name] for t in r.turns if name in t.stages]
            cells.append(f"{statistics.median(values):.1f}" if values else "n/a")
        out.append(f"| {r.system} | {r.n} | {r.latency_ms:g} | " + " | ".join(cells) + " |")
    return [*out, ""]


def targets(
    runs: list[RunFigures],
    sizes: list[int],
    latencies: list[float],
    delivery: list[dict[str, Any]] | None = None,
) -> list[str]:
    """The issue's targets that this run can judge, met or missed, and by how much."""
    ok = [r for r in runs if not r.error]
    mine = [r for r in ok if r.system == "tactful"]
    theirs = {(r.n, r.latency_ms): r for r in ok if r.system == "parlant"}
    out = ["## Targets", "", "| target | measured | verdict |", "|---|---|---|"]

    def row(target: str, measured: str, met: bool | None) -> None:
        verdict = "not measured" if met is None else ("met" if met else "**missed**")
        out.append(f"| {target} | {measured} | {verdict} |")

    calls = max((r.median("calls") or 0 for r in mine), default=None)
    row(
        "at most 4 model calls per turn",
        f"at most {calls:g}" if calls else "n/a",
        calls and calls <= 4,
    )
    ratios = []
    for r in mine:
        other = theirs.get((r.n, r.latency_ms))
        mt, pt = r.median("prompt_tokens"), other.median("prompt_tokens") if other else None
        if r.n >= 300 and mt and pt:
            ratios.append((r.n, mt / pt))
    if ratios:
        worst = max(ratios, key=lambda x: x[1])
        row(
            "prompt tokens at most 1/10 of Parlant's at N = 300 and 1000",
            f"{worst[1]:.3f} of Parlant's at N = {worst[0]}",
            worst[1] <= 0.1,
        )
    else:
        row("prompt tokens at most 1/10 of Parlant's at N = 300 and 1000", "n/a", None)
    by_n = {r.n: r.median("prompt_tokens") for r in mine if r.latency_ms == latencies[0]}
    if len(by_n) >= 2:
        lo, hi = min(by_n), max(by_n)
        slope = ((by_n[hi] or 0) - (by_n[lo] or 0)) / (hi - lo)
        row("at most ~25 prompt tokens per added guideline", f"{slope:.1f}", slope <= 25)
    waves = max((r.median("waves") or 0 for r in mine), default=None)
    row(
        "at most 2 waves on the critical path",
        f"{waves:g}" if waves else "n/a",
        waves and waves <= 2,
    )
    big = max((r for r in mine), key=lambda r: r.n, default=None)
    if big is not None:
        worst_overhead = max(
            (r.median("overhead_ms") or 0 for r in mine if r.n == big.n), default=0.0
        )
        row(
            "engine overhead under 15 ms per turn at N = 1000",
            f"{worst_overhead:.0f} ms at N = {big.n} (worst latency; "
            f"{worst_overhead / 15:.1f}x the target)"
            + ("" if big.n >= 1000 else " (N = 1000 not run)"),
            worst_overhead < 15 if big.n >= 1000 else (False if worst_overhead >= 15 else None),
        )
        real = [r for r in ok if r.system == "tactful+minilm" and r.n == big.n]
        if real:
            worst_real = max(r.median("overhead_ms") or 0 for r in real)
            embedding = max(r.median("embedding_ms") or 0 for r in real)
            row(
                "under 25 ms with tactful's real offline embedder (MiniLM on this CPU)",
                f"{worst_real:.0f} ms at N = {big.n}, of which embedding {embedding:.0f} ms",
                worst_real < 25 if big.n >= 1000 else None,
            )
        # Every tactful run at that size starts the server: each start-up must be under 2 s.
        starts = [r for r in ok if r.system.startswith("tactful") and r.n == big.n]
        startup = max((r.startup_s for r in starts), default=0.0)
        row(
            "start-up with 1,000 guidelines under 2 s in every run, no model calls",
            f"at most {startup:.2f} s over {len(starts)} runs at N = {big.n}, "
            f"{max(r.startup_calls for r in starts)} model calls",
            (startup < 2 and all(r.startup_calls == 0 for r in starts)) if big.n >= 1000 else None,
        )
    at_100 = next(
        (
            d
            for d in delivery or []
            if d.get("system") == "tactful" and d.get("k") == 100 and not d.get("error")
        ),
        None,
    )
    p99 = at_100.get("p99_ms") if at_100 else None
    row(
        "event delivery p99 under 10 ms at K = 100",
        f"{p99:.1f} ms" if p99 is not None else "n/a (not run)",
        (p99 < 10) if p99 is not None else None,
    )
    out += [
        "",
        "**Where a turn's overhead goes at N = 1000** (the `tactful` rows are like for like "
        "with Parlant's run: both embed with a feature-hashing fake; the `tactful, MiniLM` "
        "column is tactful's real offline embedder on this CPU), from the stage table above:",
        "",
        "- *The store.* A turn writes three transactions: the customer message with its "
        "acknowledgement, its turn, the turn's claim and `processing` (at ingest; the clock "
        "starts here with the message, so the rest of that transaction counts); `typing`, the "
        "reply, the journey progress and the reply's mark as sent, together; then, after the "
        "reply, the trace (encoded before the transaction), `ready` and the turn's end. On a "
        "SQLite file a turn's frequent statements, compiled once, run straight on the sqlite3 "
        "connection (reads on a reading connection of their own) and only a write's commit "
        "takes a trip to a thread. The context is a handful of reads (the definitions "
        "revision, the session, the customer, the timeline, the variables' values): the "
        "`context` column.",
        "- *Python work proportional to N.* Per snapshot, once: each guideline's embedded rows as "
        "one contiguous matrix, its classification, the dependency closure, the journey scoping, "
        "the id maps. Per turn: one matrix product and the fusion with the lexical ranking (the "
        "`retrieve` column), the split into detailed checks and the screen, the match prompt "
        "and its answers (the engine's part of `match`; the rest of `match` at 0 ms latency is "
        "the fake model building its answers). Python's cycle collector runs every 20,000 "
        "allocations in a server process (`gc_threshold`), not every 700: a dozen times a turn "
        "at its default, about 3 ms (`bench/turn_parts.py`).",
        "- *With MiniLM:* embedding the new customer message (and its sentences, the first "
        "time each is seen) on this CPU, on ONNX Runtime where the `onnx` extra is installed "
        "(the runtime table above has NumPy's figures from the same run): the `of which "
        "embedding` row, products with a few dozen rows over 42 MB of weights, at about two "
        "thirds of one core's speed on ONNX Runtime, a third in NumPy. It starts when the "
        "message arrives, before its ingest transaction, in the embedder's process of its own, "
        "while the turn is claimed and its context read, but the turn still waits for it (in "
        "the `glossary` column, the first to need it). Its weights also push the server's own "
        "data out of the shared 32 MB cache: the steps after it that read every guideline run "
        "slower than with the hashing embedder (`bench/turn_parts.py --embedder hashing`).",
        "",
        "After the reply, off the customer's wait but not off the CPU: a candidate record per "
        "guideline for the trace (about 1,000 at N = 1000) and the trace's write.",
        "",
        "Resident memory (the server's processes summed: with MiniLM, its embedding process "
        "too): without its embedding model tactful's server is smaller than Parlant's; "
        f"all-MiniLM-L6-v2's weights, loaded as float32 arrays, add {_extra(ok)} (the "
        "`tactful, MiniLM` column). The benchmark's own tokenizer is loaded after memory is "
        "read.",
        "",
    ]
    return out


def runtime_table(runs: list[RunFigures], latencies: list[float]) -> list[str]:
    """MiniLM's encoder on ONNX Runtime against NumPy, at the largest N, in the same run."""
    numpy_runs = {r.latency_ms: r for r in runs if r.system == "tactful+minilm-numpy"}
    onnx_runs = {
        r.latency_ms: r
        for r in runs
        if r.system == "tactful+minilm"
        and r.embedder_runtime == "onnx"
        and r.n == max((x.n for x in numpy_runs.values()), default=-1)
    }
    if not numpy_runs or not onnx_runs:
        return []
    n = next(iter(numpy_runs.values())).n
    out = [
        f"## The offline embedder's runtime at N = {n}",
        "",
        "The `tactful, MiniLM` configuration again with its encoder in NumPy "
        "(`TACTFUL_EMBEDDER_RUNTIME=numpy`, what a server without the `onnx` extra runs), "
        "in the same run.",
        "",
        "| latency ms | metric | ONNX Runtime | NumPy | ONNX Runtime / NumPy |",
        "|---|---|---|---|---|",
    ]
    for latency in latencies:
        o, m = onnx_runs.get(latency), numpy_runs.get(latency)
        for name, label in [
            ("overhead_ms", "overhead ms"),
            ("embedding_ms", "of which embedding ms"),
        ]:
            ov = o.median(name) if o and not o.error else None
            mv = m.median(name) if m and not m.error else None
            out.append(
                f"| {latency:g} | {label} | {_figure(o, name, '{:,.1f}')} "
                f"| {_figure(m, name, '{:,.1f}')} | {_ratio(ov, mv)} |"
            )
    return [*out, ""]


def _extra(runs: list[RunFigures]) -> str:
    """How much more resident memory tactful has with MiniLM than without, over the runs."""
    plain = {(r.n, r.latency_ms): r.rss_mib for r in runs if r.system == "tactful"}
    extra = [
        r.rss_mib - plain[(r.n, r.latency_ms)]
        for r in runs
        if r.system == "tactful+minilm" and (r.n, r.latency_ms) in plain
    ]
    if not extra:
        return "memory not measured in this run"
    return f"{min(extra):.0f} to {max(extra):.0f} MiB"


def plots(
    runs: list[RunFigures], sizes: list[int], latencies: list[float], folder: Path
) -> list[str]:
    """PNG plots beside the report (skipped, with a note, without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    for name, label in [("prompt_tokens", "prompt tokens / turn"), ("overhead_ms", "overhead ms")]:
        fig, ax = plt.subplots(figsize=(6, 4))
        # Prompt tokens do not depend on the latency: one line per system.
        shown = latencies[:1] if name == "prompt_tokens" else latencies
        for system in ("tactful", "parlant"):
            for latency in shown:
                points = [
                    (r.n, r.median(name))
                    for r in runs
                    if r.system == system and r.latency_ms == latency and not r.error
                ]
                points = [(n, v) for n, v in points if v is not None]
                if points:
                    xs, ys = zip(*sorted(points), strict=True)
                    tag = system if name == "prompt_tokens" else f"{system}, {latency:g} ms"
                    ax.plot(xs, ys, marker="o", label=tag)
        ax.set_xlabel("guidelines")
        ax.set_ylabel(label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
        path = folder / f"benchmarks_{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        made.append(path.name)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 300, 1000])
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.0, 200.0])
    parser.add_argument("--parlant-venv", type=Path, default=ANCHOR_DIR / ".venv")
    parser.add_argument("--no-parlant", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument(
        "--no-load", action="store_true", help="skip event delivery and concurrency (load.py)"
    )
    parser.add_argument("--delivery-ks", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--concurrency-ks", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--concurrency-n", type=int, default=100)
    parser.add_argument(
        "--one", nargs=3, metavar=("SCENARIO", "LATENCY_MS", "EMBEDDER"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        help=f"write the report again from the measurements a run kept (in {RAW})",
    )
    args = parser.parse_args()
    if args.from_json:
        raw = json.loads(args.from_json.read_text())
        runs = [
            RunFigures(**(r | {"turns": [TurnFigures(**t) for t in r["turns"]]}))
            for r in raw["runs"]
        ]
        write_report(args, runs, raw["note"], raw["delivery"], raw["concurrency"])
        return
    if args.one:
        data = json.loads(Path(args.one[0]).read_text())
        figures = asyncio.run(measure_tactful(data, float(args.one[1]), args.one[2]))
        print(json.dumps(asdict(figures)))
        return
    parlant = None if args.no_parlant else args.parlant_venv
    if parlant is not None and not (parlant / "bin" / "python").exists():
        print(
            f"no Parlant venv at {parlant}: run {ANCHOR_DIR / 'setup.sh'} {parlant}",
            file=sys.stderr,
        )
        parlant = None
    runs: list[RunFigures] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in args.sizes:
            # The anchor's scenario (beyond its 900 guidelines, variants of them), as one file
            # that both systems read.
            import turn_cost

            scenario_file = work / f"scenario_n{n}.json"
            scenario_file.write_text(json.dumps(turn_cost.scenario(n)))
            for latency in args.latencies:
                print(f"N={n} L={latency:g}: tactful ...", file=sys.stderr, flush=True)
                runs.append(_tactful(scenario_file, latency, "hashing"))
                print(f"N={n} L={latency:g}: tactful, MiniLM ...", file=sys.stderr, flush=True)
                runs.append(_tactful(scenario_file, latency, "minilm"))
                if n == max(args.sizes):
                    # The encoder in NumPy too, for the runtime's ratio in the same run.
                    print(f"N={n} L={latency:g}: tactful, MiniLM in NumPy ...", file=sys.stderr)
                    runs.append(_tactful(scenario_file, latency, "minilm-numpy"))
                if parlant is not None:
                    print(f"N={n} L={latency:g}: Parlant ...", file=sys.stderr, flush=True)
                    runs.append(_parlant(scenario_file, latency, parlant, work))
    note = (
        "Parlant 3.3.2 ran from its own virtual environment through the anchor's harness."
        if parlant is not None
        else "**Parlant was not measured in this run** (no Parlant virtual environment): only "
        "tactful's figures are real here."
    )
    delivery: list[dict[str, Any]] = []
    concurrency: list[dict[str, Any]] = []
    if not args.no_load:
        import load

        python = parlant / "bin" / "python" if parlant is not None else None
        delivery = load.run_delivery(python, args.delivery_ks)
        concurrency = load.run_concurrency(python, args.concurrency_ks, args.concurrency_n, 200.0)
    # The measurements, kept before the report is written: a report that fails loses nothing
    # (``--from-json`` writes it again from them).
    RAW.write_text(
        json.dumps(
            {
                "runs": [asdict(r) for r in runs],
                "note": note,
                "delivery": delivery,
                "concurrency": concurrency,
            }
        )
    )
    print(f"measurements kept in {RAW}", file=sys.stderr)
    write_report(args, runs, note, delivery, concurrency)


def write_report(
    args: argparse.Namespace,
    runs: list[RunFigures],
    note: str,
    delivery: list[dict[str, Any]],
    concurrency: list[dict[str, Any]],
) -> None:
    load_lines: list[str] = []
    if delivery or concurrency:
        import load

        load_lines = load.markdown(delivery, concurrency)
    kept = kept_sections(args.out)
    text = report(runs, args.sizes, args.latencies, note, load_lines, delivery, kept)
    made = plots(runs, args.sizes, args.latencies, args.out.parent)
    if made:
        text += "\n" + "\n".join(f"![{m}]({m})" for m in made) + "\n"
    args.out.write_text(text)
    print(f"wrote {args.out}" + (f" and {', '.join(made)}" if made else ""), file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("TACTFUL_LOG_LEVEL", "WARNING")
    main()
