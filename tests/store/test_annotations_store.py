"""Event metadata updates and session labels in the store, on every backend."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tactful.domain import Agent, Customer, EventKind, EventSource, Session
from tactful.errors import NotFoundError, ValidationError
from tactful.store.base import SessionFilter
from tactful.store.sql import SQLStore


async def _session(store: SQLStore, **fields: Any) -> Session:
    agent = await store.create(Agent(name="a"))
    customer = await store.create(Customer(name="c"))
    return await store.create(Session(agent_id=agent.id, customer_id=customer.id, **fields))


async def test_concurrent_annotations_all_land(store: SQLStore) -> None:
    session = await _session(store)
    event = await store.append_event(
        session.id,
        kind=EventKind.CUSTOM,
        source=EventSource.CUSTOMER_UI,
        data={"x": 1},
        metadata={"gone": 1},
    )
    updated = await store.update_event_metadata(session.id, event.id, unset=["gone"])
    assert updated.metadata == {} and updated.data == {"x": 1} and updated.offset == 0
    # Each update reads and writes in one transaction: none is lost to another.
    await asyncio.gather(
        *(store.update_event_metadata(session.id, event.id, set={f"k{i}": i}) for i in range(8))
    )
    stored = await store.get_event(session.id, event.id)
    assert stored.metadata == {f"k{i}": i for i in range(8)}


async def test_a_refused_annotation_writes_nothing(store: SQLStore) -> None:
    session = await _session(store)
    event = await store.append_event(
        session.id, kind=EventKind.CUSTOM, source=EventSource.CUSTOMER_UI, data=1
    )

    def refuse(metadata: dict[str, Any]) -> None:
        raise ValidationError(f"no: {sorted(metadata)}")

    with pytest.raises(ValidationError, match=r"no: \['a'\]"):
        await store.update_event_metadata(session.id, event.id, set={"a": 1}, check=refuse)
    assert (await store.get_event(session.id, event.id)).metadata == {}
    with pytest.raises(NotFoundError):
        await store.update_event_metadata(session.id, "missing", set={"a": 1})
    with pytest.raises(NotFoundError):
        await store.update_event_metadata("missing", event.id, set={"a": 1})


async def test_sessions_are_filtered_by_labels_in_the_query(store: SQLStore) -> None:
    vip = await _session(store, labels=["vip", "refund"])
    only_refund = await _session(store, labels=["refund"])
    plain = await _session(store)
    odd = await _session(store, labels=['quote"s', "with space", "ümlaut"])

    async def ids(**where: Any) -> list[str]:
        return [s.id for s in await store.find_sessions(SessionFilter(**where))]

    assert await ids() == [vip.id, only_refund.id, plain.id, odd.id]
    assert await ids(labels=("refund",)) == [vip.id, only_refund.id]
    assert await ids(labels=("refund", "vip")) == [vip.id]
    assert await ids(labels=("vi",)) == []
    assert await ids(labels=('quote"s', "ümlaut")) == [odd.id]
    assert await ids(labels=("with space",)) == [odd.id]
    assert await ids(labels=("refund",), agent_id=vip.agent_id) == [vip.id]
    assert await ids(customer_id=plain.customer_id) == [plain.id]
    assert await store.find_sessions(SessionFilter(labels=("bad\x00label",))) == []


async def test_labels_are_added_to_a_session_once(store: SQLStore) -> None:
    session = await _session(store, labels=["vip"], title="Hello")
    added = await store.add_session_labels(session.id, ["refund", "vip", "refund", "late"])
    assert added == ["refund", "late"]
    stored = await store.get(Session, session.id)
    assert stored.labels == ["vip", "refund", "late"] and stored.title == "Hello"
    assert await store.add_session_labels(session.id, ["vip"]) == []
    with pytest.raises(NotFoundError):
        await store.add_session_labels("missing", ["x"])
