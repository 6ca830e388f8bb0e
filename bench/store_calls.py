"""Per-call cost of the store's frequent calls (``SQLStore`` and ``SQLTurnQueue``), in µs.

    PYTHONPATH=src python bench/store_calls.py [--baseline CHECKOUT] [--postgres-url URL]
        [--calls N] [--rounds R] [--backends sqlite-file,postgresql]

Each call a turn makes (reads of entities and events, a trace written whole, events appended,
the turn queue's claim, lease, emit and finish, ...) runs N times in a row on a store holding a
session of a few dozen events; the median of each call's times is reported. With
``--baseline`` (a checkout of an earlier tactful, e.g. ``git worktree add /tmp/base main``) its
``store/sql.py`` and ``store/turns.py`` are loaded beside this tree's, in the same process, and
the two run in turns, R rounds each, on databases of their own; the report gives both medians
and new/old. PostgreSQL runs on a database created on ``--postgres-url``'s server
(default ``$TACTFUL_TEST_POSTGRES_URL``, else the local ``test`` one) and dropped after.

What is measured is the caller's wall time, mostly Python (building and compiling statements,
binding, reading rows) on SQLite, plus the round trips on PostgreSQL; the machine may be shared,
so compare the two builds of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import numpy as np
from databases import fresh_database

from tactful.domain import Agent, Customer, EventKind, EventSource, Session, Trace
from tactful.domain.turns import TurnRecord, TurnStatus
from tactful.store.base import NewEvent
from tactful.store.sql import SQLStore
from tactful.store.turns import SQLTurnQueue

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
Call = Callable[[int], Awaitable[object]]


def load_baseline(checkout: Path) -> tuple[type[SQLStore], type[SQLTurnQueue]]:
    """The store and turn queue classes of an earlier checkout, loaded beside this tree's (they
    share the rest of tactful, which these two files import)."""
    modules: list[ModuleType] = []
    for name in ("sql", "turns"):
        path = checkout / "src" / "tactful" / "store" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"baseline_store_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        modules.append(module)
    return modules[0].SQLStore, modules[1].SQLTurnQueue


async def prepared(store: SQLStore, queue: SQLTurnQueue) -> dict[str, Call]:
    """The calls to time, reading a session of 40 events (each call takes its iteration
    number)."""
    agent = await store.create(Agent(name="a"), key="agent-a")
    customer = await store.create(Customer(name="c"))
    session = await store.create(Session(agent_id=agent.id, customer_id=customer.id))
    sid = session.id
    history = [
        NewEvent(
            kind=EventKind.MESSAGE if i % 3 == 0 else EventKind.STATUS,
            source=EventSource.CUSTOMER if i % 2 else EventSource.AI_AGENT,
            data={"message": f"message {i} " * 8, "participant": {"display_name": "c"}},
            trace_id=f"trace-{i // 4}",
        )
        for i in range(40)
    ]
    first = (await store.append_events(sid, history))[0]
    # Appends go to a session of their own: the one read keeps its 40 events.
    appended = await store.create(Session(agent_id=agent.id, customer_id=customer.id))
    trace = Trace(session_id=sid, agent_id=agent.id)
    await store.put(trace)
    keys = [f"key-{i}" for i in range(8)]
    vector = np.ones(384, dtype=np.float32)
    await store.save_embeddings("model", {k: vector for k in keys})
    one = [NewEvent(kind=EventKind.STATUS, source=EventSource.AI_AGENT, data={"status": "ready"})]
    three = [
        NewEvent(kind=EventKind.MESSAGE, source=EventSource.AI_AGENT, data={"message": "hi"}),
        *one * 2,
    ]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    turn_ids: dict[int, str] = {}
    made = iter(range(10**9))

    async def create_turn(i: int) -> None:
        turn_ids[i] = f"turn-{next(made)}"
        record = TurnRecord(id=turn_ids[i], session_id=sid, customer_offset=0, creation_utc=now)
        await queue.create(record)

    return {
        "find": lambda i: store.find(Session, sid),
        "get_by_key": lambda i: store.get_by_key(Agent, "agent-a"),
        "list (one filter)": lambda i: store.list(Trace, session_id=sid),
        "definitions_revision": lambda i: store.definitions_revision(),
        "put (trace)": lambda i: store.put(store.encode(trace)),
        "append_events (1)": lambda i: store.append_events(appended.id, one),
        "append_events (3)": lambda i: store.append_events(appended.id, three),
        "list_events (messages)": lambda i: store.list_events(sid, kinds=[EventKind.MESSAGE]),
        "list_events (offset, limit)": lambda i: store.list_events(sid, min_offset=30, limit=5),
        "get_event": lambda i: store.get_event(sid, first.id),
        "update_event_data": lambda i: store.update_event_data(sid, first.id, {"n": i}),
        "load_embeddings (8)": lambda i: store.load_embeddings("model", keys),
        "count_hit": lambda i: store.count_hit("bucket", 7),
        "turn create": create_turn,
        "turn claim": lambda i: queue.claim(turn_ids[i], "me", now=now, lease_s=30),
        "turn renew": lambda i: queue.renew(turn_ids[i], "me", now=now, lease_s=30),
        "turn emit": lambda i: queue.emit(turn_ids[i], "me"),
        "turn finish": lambda i: queue.finish(turn_ids[i], "me", TurnStatus.DONE),
        "turn get": lambda i: queue.get(turn_ids[i]),
        "turn claimable": lambda i: queue.claimable(now=now, session_id=sid),
        "turn supersede": lambda i: queue.supersede(sid, newer=turn_ids[i], now=now),
    }


async def timed(calls: dict[str, Call], n: int, into: dict[str, list[float]]) -> None:
    """Each call n times, in the order given per iteration (so the turn calls make a cycle)."""
    for i in range(n):
        for name, call in calls.items():
            start = time.perf_counter_ns()
            await call(i)
            into.setdefault(name, []).append((time.perf_counter_ns() - start) / 1000)


@contextlib.asynccontextmanager
async def database(backend: str, postgres_url: str) -> AsyncIterator[str]:
    if backend == "postgresql":
        async with fresh_database(postgres_url, prefix="store_calls") as url:
            yield url
    else:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"


async def measure(
    backend: str,
    builds: dict[str, tuple[type[SQLStore], type[SQLTurnQueue]]],
    *,
    n: int,
    rounds: int,
    postgres_url: str,
) -> dict[str, dict[str, float]]:
    """The median µs of each call, per build, the builds taking turns round by round."""
    times: dict[str, dict[str, list[float]]] = {b: {} for b in builds}
    async with contextlib.AsyncExitStack() as stack:
        prepared_calls: dict[str, dict[str, Call]] = {}
        for build, (store_class, queue_class) in builds.items():
            url = await stack.enter_async_context(database(backend, postgres_url))
            store = store_class(url)
            stack.push_async_callback(store.close)
            await store.migrate()
            prepared_calls[build] = await prepared(store, queue_class(store))
            await timed(prepared_calls[build], 20, {})  # warm: connections, compiled cache
        order = list(builds)
        for r in range(rounds):
            for build in order if r % 2 == 0 else reversed(order):
                await timed(prepared_calls[build], n, times[build])
    return {
        build: {name: statistics.median(ts) for name, ts in calls.items()}
        for build, calls in times.items()
    }


def report(backend: str, medians: dict[str, dict[str, float]]) -> None:
    builds = list(medians)
    print(f"\n{backend}: median µs per call")
    header = f"{'call':30}" + "".join(f"{b:>10}" for b in builds)
    print(header + ("  new/old" if len(builds) == 2 else ""))
    for name in medians[builds[-1]]:
        values = [medians[b][name] for b in builds]
        line = f"{name:30}" + "".join(f"{v:10.0f}" for v in values)
        if len(builds) == 2:
            line += f"  {values[1] / values[0]:7.2f}"
        print(line)
    if len(builds) == 2:
        total = [sum(medians[b].values()) for b in builds]
        sums = "".join(f"{v:10.0f}" for v in total)
        print(f"{'sum':30}{sums}  {total[1] / total[0]:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="a checkout of an earlier tactful")
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--calls", type=int, default=200, help="iterations per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite-file,postgresql")
    args = parser.parse_args()
    postgres_url = args.postgres_url or os.environ.get("TACTFUL_TEST_POSTGRES_URL") or POSTGRES_URL
    builds: dict[str, tuple[type[SQLStore], type[SQLTurnQueue]]] = {}
    if args.baseline is not None:
        builds["old"] = load_baseline(args.baseline)
    builds["new"] = (SQLStore, SQLTurnQueue)
    for backend in args.backends.split(","):
        medians = asyncio.run(
            measure(backend, builds, n=args.calls, rounds=args.rounds, postgres_url=postgres_url)
        )
        report(backend, medians)


if __name__ == "__main__":
    main()
