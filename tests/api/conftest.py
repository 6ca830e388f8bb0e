"""Fixtures for the REST API: a transient offline runtime, the app, an in-process client, and a
real uvicorn server on loopback (for SSE and Parlant's official client); ``backend_*`` run the
same on SQLite and on a fresh PostgreSQL database."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI
from production import Production, start_production

from fresh_databases import postgres_database
from tactful.api import create_app
from tactful.config import Settings
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import Runtime, start_runtime
from tactful.server import listening_socket


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


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """A real uvicorn server for ``app`` on 127.0.0.1 and a free port, in the caller's loop."""
    sock = listening_socket("127.0.0.1", 0)  # TCP_NODELAY on its connections, as tactful's
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


@pytest_asyncio.fixture
async def server_url(app: FastAPI) -> AsyncIterator[str]:
    """A real uvicorn server for ``app`` on 127.0.0.1 and a free port, in the test's loop."""
    async with serving(app) as url:
        yield url


@asynccontextmanager
async def postgres_runtime() -> AsyncIterator[Runtime]:
    """A runtime on a fresh PostgreSQL database (dropped afterwards); skips without a server."""
    async with postgres_database() as database_url:
        rt = await start_runtime(
            Settings(database_url=database_url), embedder=HashingEmbedder(), offline=True
        )
        try:
            yield rt
        finally:
            await rt.close()


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def backend_runtime(request: pytest.FixtureRequest) -> AsyncIterator[Runtime]:
    """A runtime on each backend: SQLite in memory, and PostgreSQL when one is given."""
    if request.param == "sqlite":
        rt = await start_runtime(Settings(transient=True), embedder=HashingEmbedder(), offline=True)
        try:
            yield rt
        finally:
            await rt.close()
        return
    async with postgres_runtime() as rt:
        yield rt


@pytest_asyncio.fixture
async def backend_client(backend_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of the app over ``backend_runtime``."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(create_app(backend_runtime)), base_url="http://localhost"
    ) as c:
        yield c


@pytest_asyncio.fixture
async def backend_server_url(backend_runtime: Runtime) -> AsyncIterator[str]:
    """A real uvicorn server of the app over ``backend_runtime``."""
    async with serving(create_app(backend_runtime)) as url:
        yield url


@pytest_asyncio.fixture
async def production() -> AsyncIterator[Production]:
    prod = await start_production()
    try:
        yield prod
    finally:
        await prod.runtime.close()
