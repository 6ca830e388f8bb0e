"""Waiting on a timeline: the bus wakes the waiter, and the store has the last word at the end
of the wait, so a lost wake-up never hides a stored event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tactful.bus.memory import MemoryBus
from tactful.domain import Event, EventKind, EventSource, Session
from tactful.engine.timeline import wait_for_events
from tactful.store.sql import SQLStore


class ReadCountingStore(SQLStore):
    """Says when the waiter has read the timeline (and found nothing), so that a test appends
    only then."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reads = 0
        self.read = asyncio.Event()

    async def list_events(self, *args: Any, **kwargs: Any) -> list[Event]:
        found = await super().list_events(*args, **kwargs)
        self.reads += 1
        self.read.set()
        return found


@pytest_asyncio.fixture
async def store() -> AsyncIterator[ReadCountingStore]:
    s = ReadCountingStore("sqlite+aiosqlite:///:memory:")
    await s.migrate()
    try:
        yield s
    finally:
        await s.close()


async def append(store: SQLStore, session_id: str, i: int) -> None:
    await store.append_event(session_id, kind=EventKind.CUSTOM, source=EventSource.SYSTEM, data=i)


async def test_a_published_event_wakes_the_waiter(store: ReadCountingStore) -> None:
    bus = MemoryBus()
    session = await store.create(Session(agent_id="a", customer_id="c"))
    waiter = asyncio.create_task(wait_for_events(store, bus, session.id, timeout=30))
    await store.read.wait()
    await append(store, session.id, 1)
    bus.publish(session.id, 0)
    assert [e.data for e in await waiter] == [1]


async def test_an_event_whose_wake_up_was_lost_is_found_when_the_wait_ends(
    store: ReadCountingStore,
) -> None:
    bus = MemoryBus()
    session = await store.create(Session(agent_id="a", customer_id="c"))
    waiter = asyncio.create_task(wait_for_events(store, bus, session.id, timeout=0.3))
    await store.read.wait()  # the waiter found nothing and waits on the bus
    # Stored by another process whose notification never arrived: nothing is published here.
    await append(store, session.id, 1)
    assert [e.data for e in await waiter] == [1]
    assert store.reads == 2  # the first read, and the one when the wait ended


async def test_nothing_stored_is_still_a_timeout(store: ReadCountingStore) -> None:
    bus = MemoryBus()
    session = await store.create(Session(agent_id="a", customer_id="c"))
    with pytest.raises(TimeoutError):
        await wait_for_events(store, bus, session.id, timeout=0.05)
    assert bus.listener_count == 0
