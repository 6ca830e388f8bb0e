"""The Alembic migrations and the table definitions must describe the same schema."""

from __future__ import annotations

import os
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from backends import BACKENDS, drop_schema, open_backend
from sqlalchemy.engine import Connection

from tactful.store.schema import metadata


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migrated_schema_matches_table_definitions(
    backend: str, tmp_path: os.PathLike[str]
) -> None:
    store, schema = await open_backend(backend, tmp_path)
    try:

        def diff(conn: Connection) -> list[Any]:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return [d for d in compare_metadata(ctx, metadata) if "alembic_version" not in str(d)]

        async with store._tx() as conn:
            differences = await conn.run_sync(diff)
        assert differences == []
    finally:
        await store.close()
        if schema:
            await drop_schema(schema)
