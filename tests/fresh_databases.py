"""Fresh databases for tests: a PostgreSQL database of its own per test (dropped afterwards),
skipping with the reason when no server is given."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from tactful.store.sql_connection import _as_async_url

POSTGRES_ENV = "TACTFUL_TEST_POSTGRES_URL"


def postgres_server_url() -> str:
    """The server the PostgreSQL tests use; skips the test when none is given."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(
            f"no PostgreSQL server given: set {POSTGRES_ENV}, e.g. "
            "postgresql://postgres@127.0.0.1:5432/test"
        )
    return url


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped when the block ends."""
    url = postgres_server_url()
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(_as_async_url(url), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(url).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()
