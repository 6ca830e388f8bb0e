"""Fixtures for the REST API: a transient offline runtime, the app, an in-process client, and a
real uvicorn server on loopback (for SSE and Parlant's official client)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
import uvicorn
from fastapi import FastAPI

from tactful.api import create_app
from tactful.config import Settings
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import Runtime, start_runtime


@pytest_asyncio.fixture
async def runtime() -> AsyncIterator[Runtime]:
    rt = await start_runtime(Settings(transient=True), embedder=HashingEmbedder(), offline=True)
    try:
        yield rt
    finally:
        await rt.close()


@pytest_asyncio.fixture
async def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime)


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://localhost"
    ) as c:
        yield c


class _Server(uvicorn.Server):
    """uvicorn's server, with an event set once it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@pytest_asyncio.fixture
async def server_url(app: FastAPI) -> AsyncIterator[str]:
    """A real uvicorn server for ``app`` on 127.0.0.1 and a free port, in the test's loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not server.ready.is_set():
        ready.cancel()
        await task
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
