"""What a runtime opens for its database: the bus that matches it, and on a SQLite file the lock
that keeps a second server off it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tactful.bus.memory import MemoryBus
from tactful.bus.postgres import PostgresBus
from tactful.config import Settings
from tactful.errors import StoreError
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import start_runtime

POSTGRES_ENV = "TACTFUL_TEST_POSTGRES_URL"


async def test_sqlite_runs_on_the_in_process_bus() -> None:
    rt = await start_runtime(Settings(transient=True), embedder=HashingEmbedder(), offline=True)
    try:
        assert isinstance(rt.bus, MemoryBus)
        assert rt.sqlite_lock is None  # nothing to lock in memory
    finally:
        await rt.close()


async def test_a_sqlite_file_takes_one_runtime_at_a_time(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = await start_runtime(settings, embedder=HashingEmbedder(), offline=True)
    try:
        with pytest.raises(StoreError, match=r"in use by another tactful process \(pid \d+\)"):
            await start_runtime(settings, embedder=HashingEmbedder(), offline=True)
        # The same file named by URL is the same database.
        by_url = Settings(database_url=f"sqlite:///{tmp_path / 'tactful.db'}")
        with pytest.raises(StoreError, match="SQLite serves one process at a time"):
            await start_runtime(by_url, embedder=HashingEmbedder(), offline=True)
    finally:
        await first.close()
    again = await start_runtime(settings, embedder=HashingEmbedder(), offline=True)
    await again.close()


@pytest.mark.postgres
async def test_postgresql_runs_on_listen_notify_and_closes_it() -> None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(
            f"no PostgreSQL server given: set {POSTGRES_ENV}, e.g. "
            "postgresql://postgres@127.0.0.1:5432/test"
        )
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(make_url(url).set(drivername="postgresql+asyncpg"))
    admin = admin.execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        database_url = make_url(url).set(database=name).render_as_string(hide_password=False)
        rt = await start_runtime(
            Settings(database_url=database_url), embedder=HashingEmbedder(), offline=True
        )
        bus = rt.bus
        assert isinstance(bus, PostgresBus)
        assert bus.connected and bus.channel == "tactful_events:public"
        await rt.close()
        assert not bus.connected
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
