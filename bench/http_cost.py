"""What the HTTP layer costs the server's CPU per request, on the paths a turn takes: the
long poll that finds its event (``GET /sessions/{id}/events?min_offset=..&wait_for_data=60``),
the same with ``wait_for_data=0``, and a posted custom event. The app is called through ASGI
directly (no socket, no uvicorn, no client in the timed section), in development mode (as
``bench/load.py`` runs it) and in production mode with a customer token, on tactful's embedded
default (a SQLite file).

    PYTHONPATH=src .venv/bin/python bench/http_cost.py [--requests 2000] [--rounds 5]

Prints, per path, the median over rounds of the process CPU microseconds per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from tactful.api import create_app
from tactful.config import Settings
from tactful.domain import Agent, Customer, EventKind, EventSource, Session
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import Runtime, start_runtime
from tactful.security import tokens

SECRET = "bench-secret-key-of-at-least-32-characters"
EVENTS = 20


async def call(
    app: FastAPI,
    method: str,
    path: str,
    query: str = "",
    body: bytes = b"",
    token: str | None = None,
) -> tuple[int, bytes]:
    """One request through the ASGI app; its status and body."""
    headers = [(b"host", b"localhost:8800"), (b"user-agent", b"bench")]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8800),
        "state": {},
    }
    sent = False
    status = 0
    out = b""

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, out
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            out += message.get("body", b"")

    await app(scope, receive, send)
    return status, out


async def cpu_us(n: int, one: Callable[[], Awaitable[Any]]) -> float:
    start = time.process_time()
    for _ in range(n):
        await one()
    return (time.process_time() - start) * 1e6 / n


async def setup(production: bool, data_dir: Path) -> tuple[Runtime, FastAPI, Session, str | None]:
    settings = Settings(
        data_dir=data_dir,
        **({"mode": "production", "secret_key": SECRET} if production else {}),
    )
    runtime = await start_runtime(settings, embedder=HashingEmbedder(), offline=True)
    store = runtime.store
    agent = await store.create(Agent(name="bench"))
    customer = await store.create(Customer(name="c"))
    session = await store.create(Session(agent_id=agent.id, customer_id=customer.id))
    for i in range(EVENTS):
        await runtime.engine.timeline.append(
            session.id, EventKind.CUSTOM, EventSource.SYSTEM, {"i": i, "text": "x" * 40}
        )
    token = (
        tokens.mint(tokens.signing_secret(settings), customer.id, 3600).token
        if production
        else None
    )
    return runtime, create_app(runtime), session, token


async def measure(production: bool, n: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="tactful-http-") as home:
        runtime, app, session, token = await setup(production, Path(home))
        path = f"/sessions/{session.id}/events"
        post = json.dumps({"kind": "custom", "source": "customer_ui", "data": {"x": 1}}).encode()
        last = EVENTS - 1  # the newest event's offset

        async def poll() -> None:
            status, _ = await call(
                app, "GET", path, f"min_offset={last}&wait_for_data=60", token=token
            )
            assert status == 200, status

        async def poll_now() -> None:
            status, _ = await call(
                app, "GET", path, f"min_offset={last - 4}&wait_for_data=0", token=token
            )
            assert status == 200, status

        async def create() -> None:
            nonlocal last
            status, body = await call(app, "POST", path, "moderation=none", post, token=token)
            assert status == 201, (status, body)
            last = json.loads(body)["offset"]

        paths = {"long poll (1 event)": poll, "wait_for_data=0 (5 events)": poll_now}
        paths["POST custom event"] = create
        results: dict[str, list[float]] = {name: [] for name in paths}
        try:
            for one in paths.values():  # warm-up
                await cpu_us(50, one)
            for _ in range(rounds):
                for name, one in paths.items():
                    results[name].append(await cpu_us(n, one))
        finally:
            await runtime.close()
    return {name: statistics.median(v) for name, v in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for production in (False, True):
        mode = "production, customer token" if production else "development"
        for name, us in asyncio.run(measure(production, args.requests, args.rounds)).items():
            print(f"{mode:28} {name:30} {us:8.0f} µs CPU / request")


if __name__ == "__main__":
    main()
