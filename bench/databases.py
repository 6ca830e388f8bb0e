"""Throwaway PostgreSQL databases for the benchmarks: created for a run, dropped after."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy.engine import make_url


@contextlib.asynccontextmanager
async def fresh_database(server_url: str, prefix: str = "bench") -> AsyncIterator[str]:
    """The URL of a new, empty database on the PostgreSQL server of ``server_url``, dropped
    (connections and all) when the block ends."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await conn.close()
