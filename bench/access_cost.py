"""What being safe to expose costs a request, measured in one run over a real uvicorn server on
loopback with tactful's embedded default (a SQLite file):

- development mode (everyone is admin) against production mode with an operator key (the key is
  looked up and its request counted in the database);
- a customer message in each mode (rate-limited per session and customer);
- the listening socket as `tactful serve` makes it now (``listening_socket``: TCP_NODELAY on
  its connections) against ``socket.create_server`` (what it used before).

    .venv/bin/python bench/access_cost.py [--requests 200]

Prints medians and p90 in milliseconds, and each ratio to the development-mode figure.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import uvicorn

from tactful.api import create_app
from tactful.config import Settings
from tactful.domain import Agent, Customer, KeyRole
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import Runtime, start_runtime
from tactful.security.keys import create_key
from tactful.server import listening_socket

SECRET = "bench-secret-key-of-at-least-32-characters"


async def timed(n: int, call: Callable[[], object]) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await call()  # type: ignore[misc]
        out.append((time.perf_counter() - start) * 1000)
    return out


class _Server(uvicorn.Server):
    """uvicorn's server, with an event set once it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


async def serve(runtime: Runtime, sock: socket.socket) -> tuple[_Server, asyncio.Task[None]]:
    server = _Server(uvicorn.Config(create_app(runtime), log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await server.ready.wait()
    return server, task


async def measure(mode: str, folder: Path, n: int, old_socket: bool) -> dict[str, list[float]]:
    settings = Settings(data_dir=folder, mode=mode, secret_key=SECRET)  # type: ignore[arg-type]
    runtime = await start_runtime(settings, embedder=HashingEmbedder(), offline=True)
    key = (await create_key(runtime.store, "bench", KeyRole.OPERATOR, "bench")).token
    await runtime.store.upsert(Customer(id="ann", name="Ann"))
    agent = await runtime.store.create(Agent(name="A"))
    sock = (
        socket.create_server(("127.0.0.1", 0)) if old_socket else listening_socket("127.0.0.1", 0)
    )
    port = sock.getsockname()[1]
    server, task = await serve(runtime, sock)
    headers = {"Authorization": f"Bearer {key}"} if mode == "production" else {}
    results: dict[str, list[float]] = {}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as c:
            await c.get("/customers")
            results["GET /customers"] = await timed(n, lambda: c.get("/customers"))
            session = (
                await c.post("/sessions", json={"agent_id": agent.id, "customer_id": "ann"})
            ).json()["id"]
            message = {"kind": "message", "source": "customer", "message": "hello"}

            async def post() -> None:
                await c.post(f"/sessions/{session}/events", json=message)
                await runtime.engine.wait_idle(session)

            # Messages are limited per session: one session per ~25 messages.
            results["POST customer message"] = await timed(min(n, 25), post)
    finally:
        server.should_exit = True
        await task
        await runtime.close()
    return results


def line(name: str, values: list[float], base: list[float] | None) -> str:
    median = statistics.median(values)
    p90 = statistics.quantiles(values, n=10)[-1]
    ratio = f"  x{median / statistics.median(base):.2f}" if base else ""
    return f"  {name:<24} median {median:7.2f} ms   p90 {p90:7.2f} ms{ratio}"


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tactful-access-") as tmp:
        runs = {}
        for label, mode, old in [
            ("development", "development", False),
            ("production (operator key)", "production", False),
            ("development, socket.create_server", "development", True),
        ]:
            folder = Path(tmp) / label.replace(" ", "-").replace(",", "")
            runs[label] = await measure(mode, folder, n, old)
    base = runs["development"]
    for label, results in runs.items():
        print(label)
        for name, values in results.items():
            print(line(name, values, None if label == "development" else base[name]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    asyncio.run(main(parser.parse_args().requests))
