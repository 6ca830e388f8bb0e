"""PostgreSQL schemas for the bus tests (each test its own), or a skip saying what is missing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
import pytest_asyncio

from fresh_databases import postgres_server_url


@pytest.fixture
def pg_url() -> str:
    return postgres_server_url()


@pytest_asyncio.fixture
async def new_schema(pg_url: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Creates fresh schemas on demand; drops them after the test."""
    made: list[str] = []

    async def make() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(f'CREATE SCHEMA "{name}"')
        finally:
            await conn.close()
        made.append(name)
        return name

    yield make
    if made:
        conn = await asyncpg.connect(pg_url)
        try:
            for name in made:
                await conn.execute(f'DROP SCHEMA "{name}" CASCADE')
        finally:
            await conn.close()
