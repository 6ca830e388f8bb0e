"""A tactful server for one scenario of ../shared/anchors/parlant, with the scripted model.

    .venv/bin/python bench/serve_scenario.py --scenario FILE.json --port P [--latency-ms L]
        [--database-url URL [--reuse-port --bench-port B [--no-define]]]

Serves tactful's REST API on 127.0.0.1:P (data in a SQLite file in a temporary folder, tactful's
embedded default, or in the database ``--database-url`` names; embeddings by its real offline
MiniLM, where Parlant's fake hashes words) for the agent the scenario defines (guidelines,
glossary, journey with the bench's two tools). The model is the scripted double that answers
the way the anchor's fake does (see ``turn_cost.fake_match``) after sleeping L ms per call. Two
more routes match the anchor's server, so that one client measures both systems:
``GET /bench/info`` (``agent_id``, ``token``, ``n_calls``, ``n_calls_in_flight``) and
``GET /bench/calls?since=K`` (this process's model calls from the K-th on, in start order:
``stage``, ``prompt``, ``t_llm_start``, ``t_llm_end`` in epoch seconds, ``fake_work_s``: the
double's own CPU time).

Several processes on one PostgreSQL database share port P with ``--reuse-port`` (the kernel
spreads connections over them, as with ``tactful serve --workers``); each also answers on a port
of its own, ``--bench-port``, so that a client reaches each one's ``/bench`` routes. The first
defines the agent; the others, started once it is ready, find it (``--no-define``).

Stop it with SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

import turn_cost
import uvicorn
from fastapi import Response

import tactful
from tactful.api.app import create_app
from tactful.engine.compose import ReplyAnswer
from tactful.llm.scripted import ScriptedCall, ScriptedGenerator
from tactful.server import listening_socket

REPLY = "Happy to help."
# Set once uvicorn serves (see _on_signal).
STOP = {"serving": False}


class TimedResponders:
    """The anchor-like answers, with the CPU time each one took (it blocks the event loop)."""

    def __init__(self) -> None:
        self.work: dict[int, float] = {}

    def _timed(self, call: ScriptedCall, answer: Any) -> Any:
        started = time.perf_counter()
        out = answer(call)
        self.work[id(call)] = time.perf_counter() - started
        return out

    def match(self, call: ScriptedCall) -> Any:
        return self._timed(call, turn_cost.fake_match)

    def compose(self, call: ScriptedCall) -> Any:
        return self._timed(call, lambda _: ReplyAnswer(message=REPLY))


@dataclass
class Where:
    """Where one process keeps its data and listens."""

    port: int
    database_url: str | None = None
    reuse_port: bool = False
    bench_port: int | None = None
    define: bool = True


class HeldLock(asyncio.Lock):
    """The store's SQLite writer lock, counting how long it is held and how often taken: under
    load, the share of time it is held says whether it, not the CPU, bounds throughput."""

    def __init__(self) -> None:
        super().__init__()
        self.held_s = 0.0
        self.taken = 0
        self._since = 0.0

    async def acquire(self) -> Literal[True]:
        await super().acquire()
        self.taken += 1
        self._since = time.perf_counter()
        return True

    def release(self) -> None:
        self.held_s += time.perf_counter() - self._since
        super().release()


def _count_writes(server: tactful.Server) -> HeldLock | None:
    """Put a ``HeldLock`` in place of the store's writer lock (a SQLite file's; None else)."""
    store = server.runtime.store
    if getattr(store, "_sqlite_lock", None) is None:
        return None
    lock = HeldLock()
    store._sqlite_lock = lock  # type: ignore[attr-defined]
    return lock


async def serve(data: dict[str, Any], where: Where, latency_ms: float, token: str) -> None:
    timed = TimedResponders()
    model = ScriptedGenerator(
        {"match": timed.match, "compose": timed.compose}, latency_s=latency_ms / 1000
    )
    # tactful's embedded default: a SQLite file (in a temporary folder), not memory.
    home = tempfile.TemporaryDirectory(prefix="tactful-bench-")
    async with tactful.Server(
        data_dir=home.name, database_url=where.database_url, generator=model
    ) as server:
        agent = await _agent(server, data, where.define)
        writes = _count_writes(server)
        app = create_app(server.runtime)
        # perf_counter -> epoch, from one reading of both clocks.
        wall, perf = time.time(), time.perf_counter()

        @app.get("/bench/info", include_in_schema=False)
        async def bench_info() -> dict[str, Any]:
            return {
                "token": token,
                "agent_id": agent.id,
                "n_guidelines": len(data["guidelines"]),
                "latency_ms": latency_ms,
                "n_calls": len(model.calls),
                "n_calls_in_flight": model.in_flight,
                **(
                    {"writer_lock_held_s": writes.held_s, "writer_lock_taken": writes.taken}
                    if writes is not None
                    else {}
                ),
            }

        @app.get("/bench/calls", include_in_schema=False)
        async def bench_calls(since: int = 0) -> Response:
            calls = [
                {
                    "stage": c.stage,
                    "prompt": f"{c.prompt.system}\n{c.prompt.user}",
                    "t_llm_start": wall + c.started - perf,
                    "t_llm_end": wall + c.ended - perf if c.ended else None,
                    "fake_work_s": timed.work.get(id(c), 0.0),
                }
                for c in model.calls[since:]
            ]
            return Response(content=json.dumps(calls), media_type="application/json")

        # The same uvicorn settings as tactful.Server.start_http.
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", timeout_graceful_shutdown=5
        )
        sockets = [listening_socket("127.0.0.1", where.port, reuse_port=where.reuse_port)]
        if where.bench_port is not None:
            sockets.append(listening_socket("127.0.0.1", where.bench_port))
        STOP["serving"] = True
        await uvicorn.Server(config).serve(sockets=sockets)


async def _agent(server: tactful.Server, data: dict[str, Any], define: bool) -> tactful.Agent:
    """The scenario's agent: defined here, or found (another process defined it)."""
    if define:
        return await turn_cost.define_agent(server, data)
    found = await server.find_agent(name=data["agent"]["name"])
    if found is None:
        raise SystemExit(f"no agent {data['agent']['name']!r} in the database: define it first")
    return found


def _on_signal(signum: int, _frame: Any) -> None:
    # uvicorn handles the signal while it serves, then raises it again once it has stopped:
    # ignoring that second one lets the store close cleanly.
    if not STOP["serving"]:
        raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--token", default=os.environ.get("BENCH_TOKEN", ""))
    parser.add_argument("--database-url", help="a database (default: a SQLite file)")
    parser.add_argument("--reuse-port", action="store_true", help="share --port (SO_REUSEPORT)")
    parser.add_argument("--bench-port", type=int, help="a port of this process's own")
    parser.add_argument("--no-define", action="store_true", help="find the agent, do not define")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    data = json.loads(args.scenario.read_text())
    where = Where(
        port=args.port,
        database_url=args.database_url,
        reuse_port=args.reuse_port,
        bench_port=args.bench_port,
        define=not args.no_define,
    )
    profile = os.environ.get("TACTFUL_BENCH_PROFILE")
    if not profile:
        asyncio.run(serve(data, where, args.latency_ms, args.token))
        return
    # A profile of the whole serving process (every thread's Python is not seen: the event
    # loop's is), written when it stops: TACTFUL_BENCH_PROFILE=out.prof.
    import cProfile

    with cProfile.Profile() as prof:
        try:
            asyncio.run(serve(data, where, args.latency_ms, args.token))
        finally:
            prof.dump_stats(f"{profile}.{os.getpid()}")


if __name__ == "__main__":
    os.environ.setdefault("TACTFUL_LOG_LEVEL", "WARNING")
    main()
