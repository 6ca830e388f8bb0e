"""Fixtures for the REST API: a transient offline runtime, the app, an in-process client, and a
real uvicorn server on loopback (for SSE and Parlant's official client); ``backend_*`` run the
same on SQLite and on a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from live_server import serving
from production import Production, start_production
from pydantic import BaseModel

from fresh_databases import postgres_database
from tactful.api import create_app
from tactful.config import Settings
from tactful.domain.pricing import ModelPrice
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import answer_listed
from tactful.errors import ModelError
from tactful.llm.scripted import HashingEmbedder, ScriptedCall, ScriptedGenerator
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


# A price for the scripted model (US dollars per million tokens) and its answers: a failing
# match for a message that says "broken", and the same reply to everything.
SCRIPTED_PRICE = ModelPrice(input=2.0, cached_input=1.0, output=8.0)


def _match(call: ScriptedCall) -> BaseModel | Exception:
    if "broken" in call.prompt.user:
        return ModelError("HTTP 503: the model is overloaded")
    return answer_listed(call.prompt.user, lambda g: "asks about refunds")


@pytest_asyncio.fixture
async def priced_runtime() -> AsyncIterator[Runtime]:
    """A transient runtime on the scripted model, priced by ``SCRIPTED_PRICE``."""
    model = ScriptedGenerator(
        {"match": _match, "compose": lambda c: ReplyAnswer(message="Five business days.")}
    )
    settings = Settings(transient=True, model_prices={"scripted": SCRIPTED_PRICE})
    rt = await start_runtime(settings, embedder=HashingEmbedder(), generator=model)
    try:
        yield rt
    finally:
        await rt.close()


@pytest_asyncio.fixture
async def production() -> AsyncIterator[Production]:
    prod = await start_production()
    try:
        yield prod
    finally:
        await prod.runtime.close()
