"""Load on several stores: tactful alone on a SQLite file, on PostgreSQL with one process, and on
PostgreSQL with two processes sharing a port, in one run (``bench/load.py --backends``).

The concurrency measurement of bench/load.py (its docstring says how) on each store, one after
the other, each on a fresh database: for PostgreSQL one created on ``--postgres-url``'s server
(default ``$TACTFUL_TEST_POSTGRES_URL``, else the local ``test`` one) and dropped afterwards.
Two processes share one port (``SO_REUSEPORT``, as ``tactful serve --workers 2``), so the
kernel spreads the client's connections over them; each also answers ``/bench/*`` on a port of
its own. The CPU of the PostgreSQL backends serving the database is reported apart from other
processes'.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from databases import fresh_database
from load import NOISY_PCT, _error, _failures, _scenario, log, measure_ks, quiet_machine, served

# (store, server processes): SQLite serves one process; PostgreSQL one, then two on one port.
BACKENDS = [("sqlite", 1), ("postgresql", 1), ("postgresql", 2)]
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def backend_label(store: str, workers: int) -> str:
    name = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[store]
    return f"{name}, {workers} process" + ("es" if workers > 1 else "")


def run_backends(
    ks: list[int],
    n: int,
    latency_ms: float,
    think_ms: float,
    postgres_url: str | None = None,
    baseline: Path | None = None,
) -> list[dict[str, Any]]:
    """Concurrency at each K of tactful on each of BACKENDS, one after the other, each on a
    fresh database (for PostgreSQL, one created on ``postgres_url``'s server and dropped);
    first, with ``baseline`` (a checkout of an earlier tactful), that build on a SQLite file."""
    url = postgres_url or os.environ.get("TACTFUL_TEST_POSTGRES_URL") or POSTGRES_URL
    base = (_baseline_label(baseline), baseline.resolve() / "src") if baseline else None
    return asyncio.run(_run_backends(ks, n, latency_ms, think_ms, url, base))


def _baseline_label(checkout: Path) -> str:
    commit = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"SQLite, 1 process, baseline {commit or checkout.name}"


async def _run_backends(
    ks: list[int],
    n: int,
    latency_ms: float,
    think_ms: float,
    postgres_url: str,
    baseline: tuple[str, Path] | None,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    runs: list[tuple[str, int, Path | None]] = [(s, w, None) for s, w in BACKENDS]
    if baseline is not None:
        runs.insert(0, ("sqlite", 1, baseline[1]))
    with tempfile.TemporaryDirectory(prefix="tactful-load-") as tmp:
        work = Path(tmp)
        scenario = _scenario(work, n)
        turns = json.loads(scenario.read_text())["customer_turns"]
        for store, workers, src in runs:
            label = backend_label(store, workers) if src is None or not baseline else baseline[0]
            await quiet_machine()
            log(f"backends: {label}: starting (N={n}, {latency_ms:g} ms model)")
            base = {"system": label, "store": store, "workers": workers, "n": n}
            base |= {"latency_ms": latency_ms, "think_ms": think_ms}
            # The servers' blas_threads setting (0: OpenBLAS's own default, one per CPU).
            base["blas_threads"] = os.environ.get("TACTFUL_BLAS_THREADS", "1 (the default)")
            try:
                async with contextlib.AsyncExitStack() as stack:
                    url = None
                    if store == "postgresql":
                        url = await stack.enter_async_context(
                            fresh_database(postgres_url, prefix="bench_load")
                        )
                    python = Path(sys.executable)
                    tactful = served(
                        "tactful", python, scenario, latency_ms, work, url, workers, src
                    )
                    server = await stack.enter_async_context(tactful)
                    rows += await measure_ks(server, ks, turns, base)
            except Exception as e:
                log(f"backends: {label}: FAILED {_error(e)[:300]}")
                rows += [base | {"k": k, "error": _error(e)} for k in ks]
    return rows


# -- the report ----------------------------------------------------------------------------------

BACKEND_METRICS = [
    ("turns_per_s", "turns / s", "{:,.2f}"),
    ("wall_p50_ms", "wall p50 ms", "{:,.0f}"),
    ("wall_p99_ms", "wall p99 ms", "{:,.0f}"),
    ("overhead_p50_ms", "overhead p50 ms", "{:,.1f}"),
    ("overhead_p90_ms", "overhead p90 ms", "{:,.1f}"),
    ("overhead_p99_ms", "overhead p99 ms", "{:,.1f}"),
    ("overhead_max_ms", "overhead max ms", "{:,.1f}"),
    ("first_status_p50_ms", "ms to the first status event (p50)", "{:,.1f}"),
    ("replies", "turns with exactly one reply", "{}"),
    ("calls_per_turn", "model calls / turn (median)", "{:g}"),
    ("server_cpu_ms_per_turn", "server CPU ms / turn (all its processes)", "{:,.1f}"),
    ("pg_cpu_ms_per_turn", "PostgreSQL CPU ms / turn (its database's backends)", "{:,.1f}"),
    ("server_cpu_pct", "server CPU % during the load (all its processes)", "{:,.0f}"),
    ("pg_cpu_pct", "PostgreSQL CPU % during the load", "{:,.0f}"),
    ("pg_connections_max", "PostgreSQL connections to its database (most at once)", "{:g}"),
    ("client_cpu_pct", "client CPU % during the load", "{:,.0f}"),
    ("other_cpu_pct", "other processes' CPU % meanwhile", "{:,.0f}"),
    ("writes_per_turn", "SQLite write transactions / turn", "{:,.1f}"),
    ("writer_lock_held_pct", "SQLite writer lock held %", "{:,.0f}"),
    ("binding", "binding resource", "{}"),
]


def _backend_cell(row: dict[str, Any] | None, name: str, fmt: str) -> str:
    if row is None or row.get("error"):
        return "n/a"
    if name == "replies":
        value: Any = f"{row['turns_one_reply']} of {row['turns_expected']}"
    else:
        value = row.get(name)
    return "n/a" if value is None else fmt.format(value)


def backends_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """Report lines: the backends side by side at each K, how it was measured, what went odd."""
    labels = list(dict.fromkeys(r["system"] for r in rows))
    by = {(r["system"], r["k"]): r for r in rows}
    table = [f"| K | metric | {' | '.join(labels)} |", "|---|---|" + "---|" * len(labels)]
    for k in sorted({r["k"] for r in rows}):
        for name, label, fmt in BACKEND_METRICS:
            cells = [_backend_cell(by.get((b, k)), name, fmt) for b in labels]
            table.append(f"| {k} | {label} | {' | '.join(cells)} |")
    first = rows[0] if rows else {}
    lines = [
        *table,
        "",
        f"Measured by `bench/load.py --backends`: tactful alone, scenario with {first.get('n')} "
        f"guidelines, fake model sleeping {first.get('latency_ms', 0):g} ms per call, real "
        f"offline embedder (MiniLM on this CPU; OpenBLAS threads: {first.get('blas_threads')}); "
        "one store after the other, each on a fresh "
        "database (PostgreSQL: one created for the run on a local server, dropped after), the "
        "same client (one Python process, httpx). Several processes share one port "
        "(SO_REUSEPORT, as `tactful serve --workers` does), so the kernel spreads the client's "
        "connections over them. Method as above: after one warm-up turn in each process, K "
        "sessions at once, 5 customer turns each, the next "
        f"{first.get('think_ms', 0):g} ms after the previous is ready; overhead = wall minus "
        "the union of the session's model calls (from all processes). Replies: agent messages "
        "between one customer message and the next, read back from each session's timeline "
        "after the load. Server CPU: all its processes; PostgreSQL CPU and connections: the "
        "backends connected to the run's database, sampled every 0.25 s (PostgreSQL's own "
        "background processes count as other processes; a K during which other processes took "
        f"over {NOISY_PCT:g}% of a CPU was measured once more, keeping the quieter run).",
        "",
    ]
    odd = [f"- {r['system']} K={r['k']}: {t}" for r in rows for t in r.get("odd_turns", [])]
    odd += [
        f"- {r['system']} K={r['k']}: {r['turns_without_reply']} turns ended without a reply "
        "and are not in the figures."
        for r in rows
        if r.get("turns_without_reply")
    ]
    odd += [
        f"- {r['system']} K={r['k']}: {r['unattributed_calls']} model calls had no session tag."
        for r in rows
        if r.get("unattributed_calls")
    ]
    if odd:
        lines += ["Caveats:", *odd, ""]
    if fails := _failures(rows):
        lines += ["Failed:", *fails, ""]
    return lines
