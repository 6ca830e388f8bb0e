"""The events this process just wrote answer a read only when they tell all the store would:
every offset from the read's on, each in its newest state, nobody else's write heard of since."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tactful.bus.memory import MemoryBus
from tactful.domain import Event, EventKind, EventSource, Session
from tactful.engine.recent_events import RecentEvents
from tactful.engine.timeline import Timeline, wait_for_events
from tactful.store.sql import SQLStore


class ReadCountingStore(SQLStore):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reads = 0

    async def list_events(self, *args: Any, **kwargs: Any) -> list[Event]:
        self.reads += 1
        return await super().list_events(*args, **kwargs)


@pytest_asyncio.fixture
async def store() -> AsyncIterator[ReadCountingStore]:
    s = ReadCountingStore("sqlite+aiosqlite:///:memory:")
    await s.migrate()
    try:
        yield s
    finally:
        await s.close()


@pytest_asyncio.fixture
async def timeline(store: ReadCountingStore) -> Timeline:
    return Timeline(store, MemoryBus())


async def new_session(store: SQLStore) -> str:
    return (await store.create(Session(agent_id="a", customer_id="c"))).id


async def custom(timeline: Timeline, session_id: str, data: Any = None, **kw: Any) -> Event:
    return await timeline.append(session_id, EventKind.CUSTOM, EventSource.SYSTEM, data, **kw)


async def test_every_filter_answers_as_the_store_does(
    timeline: Timeline, store: ReadCountingStore
) -> None:
    session_id = await new_session(store)
    writes = [
        (EventKind.MESSAGE, EventSource.CUSTOMER, {"message": "hi", "tuple": (1, 2)}, "t1"),
        (EventKind.STATUS, EventSource.AI_AGENT, {"status": "acknowledged"}, "t1"),
        (EventKind.TOOL, EventSource.AI_AGENT, {"tool_calls": [{"result": {1: "one"}}]}, "t1"),
        (EventKind.MESSAGE, EventSource.AI_AGENT, {"message": "hello"}, "t1"),
        (EventKind.CUSTOM, EventSource.CUSTOMER_UI, {"clicked": True}, ""),
        (EventKind.STATUS, EventSource.AI_AGENT, {"status": "ready"}, "t2"),
    ]
    for kind, source, data, trace in writes:
        await timeline.append(session_id, kind, source, data, trace_id=trace, metadata={"m": 1})
    queries = itertools.product(
        [-1, 0, 2, 5, 6, 7],
        [None, [], [EventKind.MESSAGE], [EventKind.STATUS, EventKind.CUSTOM]],
        [None, EventSource.AI_AGENT, EventSource.CUSTOMER_UI],
        [None, "t1", "t2", "nope"],
        [None, 0, 2],
    )
    for min_offset, kinds, source, trace_id, limit in queries:
        q: dict[str, Any] = {
            "min_offset": min_offset,
            "kinds": kinds,
            "source": source,
            "trace_id": trace_id,
            "limit": limit,
        }
        known = timeline.recent.events(session_id, **q)
        assert known is not None, q
        stored = await store.list_events(session_id, **q)
        assert [e.model_dump() for e in known] == [e.model_dump() for e in stored], q


async def test_reads_from_before_what_this_process_wrote_go_to_the_store(
    timeline: Timeline, store: ReadCountingStore
) -> None:
    session_id = await new_session(store)
    # Written before this timeline existed (another process, or before a restart).
    await store.append_event(session_id, kind=EventKind.CUSTOM, source=EventSource.SYSTEM, data=0)
    await custom(timeline, session_id, 1)
    await custom(timeline, session_id, 2)
    assert timeline.recent.events(session_id, min_offset=0) is None
    assert [e.data for e in timeline.recent.events(session_id, min_offset=1) or []] == [1, 2]
    assert timeline.recent.events(session_id, min_offset=3) == []
    assert timeline.recent.events("another session") is None


async def test_an_offset_someone_else_appended_in_between_is_a_gap(
    timeline: Timeline, store: ReadCountingStore
) -> None:
    session_id = await new_session(store)
    await custom(timeline, session_id, 0)
    # Appended without this timeline (nor its bus) hearing of it.
    await store.append_event(session_id, kind=EventKind.CUSTOM, source=EventSource.SYSTEM, data=1)
    await custom(timeline, session_id, 2)
    assert timeline.recent.events(session_id, min_offset=0) is None
    assert timeline.recent.events(session_id, min_offset=1) is None
    assert [e.data for e in timeline.recent.events(session_id, min_offset=2) or []] == [2]


async def test_another_process_write_heard_on_the_bus_sends_reads_to_the_store(
    timeline: Timeline, store: ReadCountingStore
) -> None:
    session_id, other = await new_session(store), await new_session(store)
    await custom(timeline, session_id, 0)
    await custom(timeline, other, 0)
    # Another process updated (or appended) offset 0 of the session: only its offset is known.
    timeline.bus.publish(session_id, 0)
    assert timeline.recent.events(session_id, min_offset=0) is None
    assert timeline.recent.events(session_id, min_offset=1) is None
    assert timeline.recent.events(other, min_offset=0) is not None
    # The next append of ours is the newest event: from it on, reads are answered again.
    await custom(timeline, session_id, 1)
    assert [e.data for e in timeline.recent.events(session_id, min_offset=1) or []] == [1]


async def test_an_append_of_ours_older_than_a_newer_one_heard_of_is_not_vouched_for(
    timeline: Timeline, store: ReadCountingStore
) -> None:
    session_id = await new_session(store)
    ours = await store.append_event(
        session_id, kind=EventKind.CUSTOM, source=EventSource.SYSTEM, data=0
    )
    # Another process appended offset 1, and its notification came before ours went out.
    await store.append_event(session_id, kind=EventKind.CUSTOM, source=EventSource.SYSTEM, data=1)
    timeline.bus.publish(session_id, 1)
    timeline.recent.publish_append(ours)
    assert timeline.recent.events(session_id, min_offset=0) is None
    assert timeline.recent.events(session_id, min_offset=2) is None


async def test_lost_notifications_send_every_read_to_the_store(
    timeline: Timeline, store: ReadCountingStore
) -> None:
    sessions = [await new_session(store) for _ in range(3)]
    for session_id in sessions:
        await custom(timeline, session_id, 0)
    assert isinstance(timeline.bus, MemoryBus)
    timeline.bus.wake_everyone()  # what the PostgreSQL bus does when its connection drops
    assert all(timeline.recent.events(s) is None for s in sessions)


async def test_appends_published_out_of_order_vouch_from_the_newest(
    timeline: Timeline, store: ReadCountingStore
) -> None:
    session_id = await new_session(store)
    first, second = [
        await store.append_event(
            session_id, kind=EventKind.CUSTOM, source=EventSource.SYSTEM, data=i
        )
        for i in range(2)
    ]
    timeline.recent.publish_append(second)
    timeline.recent.publish_append(first)
    assert timeline.recent.events(session_id, min_offset=0) is None
    assert [e.data for e in timeline.recent.events(session_id, min_offset=1) or []] == [1]


async def test_an_updated_event_is_answered_in_its_newest_state(
    timeline: Timeline, store: ReadCountingStore
) -> None:
    session_id = await new_session(store)
    message = await timeline.append(
        session_id, EventKind.MESSAGE, EventSource.AI_AGENT, {"message": "Hel", "chunks": ["Hel"]}
    )
    await custom(timeline, session_id, 1)
    grown = await store.update_event_data(
        session_id, message.id, {"message": "Hello", "chunks": ["Hel", "lo", None]}
    )
    timeline.recent.publish_update(grown)
    known = timeline.recent.events(session_id)
    assert known is not None
    assert known[0].data == {"message": "Hello", "chunks": ["Hel", "lo", None]}
    assert [e.model_dump() for e in known] == [
        e.model_dump() for e in await store.list_events(session_id)
    ]
    found = timeline.recent.event(session_id, message.id)
    assert found is not None and found.data["message"] == "Hello"


async def test_an_update_this_process_did_not_publish_is_never_served_stale(
    timeline: Timeline, store: ReadCountingStore
) -> None:
    session_id = await new_session(store)
    message = await timeline.append(
        session_id, EventKind.MESSAGE, EventSource.AI_AGENT, {"chunks": ["Hel"]}
    )
    await store.update_event_data(session_id, message.id, {"chunks": ["Hel", "lo", None]})
    # Whoever updated it published its offset, without the event (another process).
    timeline.bus.publish(session_id, message.offset)
    assert timeline.recent.events(session_id) is None
    assert timeline.recent.event(session_id, message.id) is None


async def test_what_the_writer_changes_after_the_append_is_not_served(
    timeline: Timeline, store: ReadCountingStore
) -> None:
    session_id = await new_session(store)
    data: dict[str, Any] = {"items": [1]}
    await custom(timeline, session_id, data)
    data["items"].append(2)
    known = timeline.recent.events(session_id)
    assert known is not None and known[0].data == {"items": [1]}


async def test_only_the_newest_events_of_the_newest_sessions_are_kept(
    store: ReadCountingStore,
) -> None:
    bus = MemoryBus()
    timeline = Timeline(store, bus)
    timeline.recent = RecentEvents(bus, per_session=2, sessions=2)
    first, second, third = [await new_session(store) for _ in range(3)]
    for i in range(3):
        await custom(timeline, first, i)
    assert timeline.recent.events(first, min_offset=0) is None
    assert [e.data for e in timeline.recent.events(first, min_offset=1) or []] == [1, 2]
    await custom(timeline, second, 0)
    await custom(timeline, third, 0)
    assert timeline.recent.events(first, min_offset=1) is None
    assert timeline.recent.events(third) is not None


async def test_a_wait_woken_by_our_append_does_not_read_the_store(
    timeline: Timeline, store: ReadCountingStore
) -> None:
    session_id = await new_session(store)
    await custom(timeline, session_id, 0)
    waiter = asyncio.create_task(
        wait_for_events(
            store,
            timeline.bus,
            session_id,
            min_offset=1,
            timeout=30,
            recent=timeline.recent,
        )
    )
    await asyncio.sleep(0)
    assert isinstance(timeline.bus, MemoryBus)
    assert timeline.bus.listener_count == 1  # it knows there is nothing yet, and waits
    await custom(timeline, session_id, 1)
    assert [e.data for e in await waiter] == [1]
    assert store.reads == 0


async def test_the_last_look_of_a_wait_reads_the_store(
    timeline: Timeline, store: ReadCountingStore
) -> None:
    session_id = await new_session(store)
    await custom(timeline, session_id, 0)
    # Stored by a write whose notification never came.
    await store.append_event(session_id, kind=EventKind.CUSTOM, source=EventSource.SYSTEM, data=1)
    found = await wait_for_events(
        store, timeline.bus, session_id, min_offset=1, timeout=0.05, recent=timeline.recent
    )
    assert [e.data for e in found] == [1]
    assert store.reads == 1
    with pytest.raises(TimeoutError):
        await wait_for_events(
            store, timeline.bus, session_id, min_offset=2, timeout=0.05, recent=timeline.recent
        )
