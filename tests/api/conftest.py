"""Fixtures for the REST API: a transient offline runtime, the app, an in-process client, and a
real uvicorn server on loopback (for SSE and Parlant's official client)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
import uvicorn
from fastapi import FastAPI

from tactful.api import create_app
from tactful.config import Settings
from tactful.domain import Customer, KeyRole
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import Runtime, start_runtime
from tactful.security import tokens
from tactful.security.keys import create_key


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


SECRET = "test-secret-key-of-at-least-32-characters"


@dataclass
class Production:
    """A production-mode app with one key per role and two named customers, A and B."""

    runtime: Runtime
    app: FastAPI
    admin_key: str
    operator_key: str
    customer_a: str
    customer_b: str

    def client(self, credential: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(self.app),
            base_url="http://tactful.example.com",
            headers=headers,
        )

    def token(self, customer_id: str, ttl_s: int = 600) -> str:
        return tokens.mint(SECRET, customer_id, ttl_s).token


def production_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"transient": True, "mode": "production", "secret_key": SECRET}
    return Settings(**(values | overrides))


async def start_production(settings: Settings | None = None) -> Production:
    rt = await start_runtime(
        settings or production_settings(), embedder=HashingEmbedder(), offline=True
    )
    admin = await create_key(rt.store, "root", KeyRole.ADMIN, "test")
    operator = await create_key(rt.store, "bff", KeyRole.OPERATOR, "test")
    a = await rt.store.create(Customer(id="cust-a", name="Ann"))
    b = await rt.store.create(Customer(id="cust-b", name="Bob"))
    return Production(rt, create_app(rt), admin.token, operator.token, a.id, b.id)


@pytest_asyncio.fixture
async def production() -> AsyncIterator[Production]:
    prod = await start_production()
    try:
        yield prod
    finally:
        await prod.runtime.close()
