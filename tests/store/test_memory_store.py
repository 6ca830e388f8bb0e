"""An in-memory database lives as long as its store, even when its connection is replaced.

SQLAlchemy drops a connection whose query was cancelled (a superseded turn, a client that hung
up) and opens another; a plain ``:memory:`` database would be a new, empty one, and every
request after it failed with "no such table"."""

from __future__ import annotations

from tactful.domain import Agent
from tactful.store.sql import open_store


async def test_a_replaced_connection_keeps_the_in_memory_database() -> None:
    store = await open_store("sqlite+aiosqlite:///:memory:")
    try:
        agent, _ = await store.upsert(Agent(name="Support"))
        async with store._engine.connect() as conn:  # what a cancelled query leads to
            await conn.invalidate()
        assert (await store.get(Agent, agent.id)).name == "Support"
    finally:
        await store.close()


async def test_two_stores_in_memory_do_not_share_a_database() -> None:
    first = await open_store("sqlite+aiosqlite:///:memory:")
    second = await open_store("sqlite+aiosqlite:///:memory:")
    try:
        agent, _ = await first.upsert(Agent(name="Support"))
        assert await second.find(Agent, agent.id) is None
    finally:
        await first.close()
        await second.close()
