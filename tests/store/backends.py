"""Open a migrated store on each backend; PostgreSQL in a fresh schema per test."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tactful.store.sql import SQLStore, open_store
from tactful.store.sql_connection import _as_async_url

POSTGRES_ENV = "TACTFUL_TEST_POSTGRES_URL"
BACKENDS = ["sqlite-memory", "sqlite-file", "postgresql"]


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


async def open_backend(backend: str, tmp_path: os.PathLike[str]) -> tuple[SQLStore, str | None]:
    """A migrated store on ``backend``; for PostgreSQL in a fresh schema (returned for cleanup)."""
    if backend == "sqlite-memory":
        return await open_store("sqlite+aiosqlite:///:memory:"), None
    if backend == "sqlite-file":
        return await open_store(f"sqlite+aiosqlite:///{tmp_path}/t.db"), None
    url = postgres_url()
    if url is None:
        pytest.skip(
            f"no PostgreSQL server given: set {POSTGRES_ENV}, e.g. "
            "postgresql://postgres@127.0.0.1:5432/test"
        )
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(_as_async_url(url))
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await admin.dispose()
    return await open_store(url, pg_schema=schema), schema


async def drop_schema(schema: str) -> None:
    url = postgres_url()
    assert url is not None
    admin = create_async_engine(_as_async_url(url))
    async with admin.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await admin.dispose()
