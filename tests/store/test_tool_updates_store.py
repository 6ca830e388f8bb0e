"""Tools' changes to their session and customer on every backend: each with its event in one
transaction, concurrent changes of one session all kept, a refused one writing nothing."""

from __future__ import annotations

import asyncio

import pytest

from tactful.bus.memory import MemoryBus
from tactful.domain import Customer, EventKind, EventSource, Session, Tag
from tactful.domain.tool_updates import TOOL_UPDATE_KEY, ToolUpdate, UpdateTarget
from tactful.engine.timeline import Timeline
from tactful.engine.tool_updates import ToolUpdates
from tactful.store.sql import SQLStore
from tactful.tools.base import ToolError


async def _setup(store: SQLStore) -> tuple[ToolUpdates, Session, Customer]:
    customer = await store.create(Customer(name="Ada", metadata={"plan": "basic"}))
    session = await store.create(Session(agent_id="a1", customer_id=customer.id))
    return ToolUpdates(Timeline(store, MemoryBus())), session, customer


async def test_concurrent_changes_of_one_session_are_all_kept(store: SQLStore) -> None:
    updates, session, customer = await _setup(store)

    async def change(i: int) -> None:
        labels = ToolUpdate(tool_id="t:x", target=UpdateTarget.SESSION_LABELS, add=[f"l{i}"])
        notes = ToolUpdate(tool_id="t:x", target=UpdateTarget.SESSION_METADATA, set={f"k{i}": i})
        for asked in (labels, notes):
            await updates.apply(
                asked, session_id=session.id, customer_id=customer.id, trace_id="tr"
            )

    await asyncio.gather(*(change(i) for i in range(6)))
    stored = await store.get(Session, session.id)
    assert sorted(stored.labels) == [f"l{i}" for i in range(6)]
    assert stored.metadata == {f"k{i}": i for i in range(6)}
    events = await store.list_events(session.id, kinds=[EventKind.CUSTOM], trace_id="tr")
    assert len(events) == 12
    assert all(e.source is EventSource.SYSTEM and TOOL_UPDATE_KEY in e.data for e in events)


async def test_a_change_is_written_as_made_and_a_refused_one_not_at_all(store: SQLStore) -> None:
    updates, session, customer = await _setup(store)
    await store.create(Tag(id="vip", name="vip"))

    async def apply(asked: ToolUpdate) -> tuple[ToolUpdate, Customer | Session]:
        return await updates.apply(
            asked, session_id=session.id, customer_id=customer.id, trace_id="tr"
        )

    asked = ToolUpdate(
        tool_id="t:x",
        target=UpdateTarget.CUSTOMER_METADATA,
        set={"plan": "basic", "tier": "gold"},
        unset=["absent"],
    )
    done, entity = await apply(asked)
    # Only what changed: "plan" had that value, "absent" was not there.
    assert (done.set, done.unset) == ({"tier": "gold"}, [])
    assert isinstance(entity, Customer) and entity.metadata == {"plan": "basic", "tier": "gold"}
    [event] = await store.list_events(session.id, kinds=[EventKind.CUSTOM])
    assert event.id == done.event_id
    assert event.data == {
        TOOL_UPDATE_KEY: "customer_metadata",
        "tool_id": "t:x",
        "set": {"tier": "gold"},
    }
    # Nothing to change: nothing written.
    same, _ = await apply(asked)
    assert not same and same.event_id is None
    tags = ToolUpdate(tool_id="t:x", target=UpdateTarget.CUSTOMER_TAGS, add=["vip", "nope"])
    with pytest.raises(ToolError, match="no tag 'nope'"):
        await apply(tags)
    assert len(await store.list_events(session.id, kinds=[EventKind.CUSTOM])) == 1
    assert (await store.get(Customer, customer.id)).tags == []
