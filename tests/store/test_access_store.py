"""The audit trail and the rate-limit counters, on every backend."""

from __future__ import annotations

import asyncio

import pytest

from tactful.domain import (
    AuditAction,
    Customer,
    EventKind,
    EventSource,
    Guideline,
    KeyRole,
    Session,
)
from tactful.domain.audit import acting_as, current_actor
from tactful.security.keys import create_key, revoke_key, verify_key
from tactful.store.sql import SQLStore, open_store


async def test_definition_changes_are_audited_with_their_actor(store: SQLStore) -> None:
    with acting_as("key:abc (root)"):
        g = await store.create(Guideline(condition="asks for a refund", action="explain"))
        await store.update(g.model_copy(update={"action": "explain the policy"}))
    await store.delete(Guideline, g.id)  # outside: the default actor
    trail = await store.list_audit(entity_id=g.id)
    assert [(e.action, e.actor) for e in trail] == [
        (AuditAction.DELETED, "sdk"),
        (AuditAction.UPDATED, "key:abc (root)"),
        (AuditAction.CREATED, "key:abc (root)"),
    ]
    assert trail[1].data is not None and trail[1].data["action"] == "explain the policy"
    assert trail[0].data is None and all(e.kind == "guidelines" for e in trail)
    assert [e.id for e in await store.list_audit(before=trail[0].id, limit=1)] == [trail[1].id]
    assert current_actor() == "sdk"


async def test_only_real_changes_to_definitions_are_audited(store: SQLStore) -> None:
    g = Guideline(condition="asks about shipping", action="give the times")
    await store.upsert(g, key="shipping")
    await store.upsert(Guideline(condition=g.condition, action=g.action, id=g.id), key="shipping")
    assert len(await store.list_audit(entity_id=g.id)) == 1  # the same again writes nothing
    with pytest.raises(RuntimeError):
        async with store.transaction():
            await store.create(Guideline(condition="rolled back", action="x", id="gone"))
            raise RuntimeError("abort")
    assert await store.list_audit(entity_id="gone") == []
    customer = await store.create(Customer(name="c"))
    session = await store.create(Session(agent_id="a", customer_id=customer.id))
    await store.append_event(
        session.id, kind=EventKind.MESSAGE, source=EventSource.CUSTOMER, data={}
    )
    assert {e.kind for e in await store.list_audit()} == {"guidelines"}


async def test_keys_are_audited_without_their_digest(store: SQLStore) -> None:
    issued = await create_key(store, "bff", KeyRole.OPERATOR, "cli:me")
    assert await verify_key(store, issued.token) is not None
    await revoke_key(store, issued.key.id)
    assert await verify_key(store, issued.token) is None
    trail = await store.list_audit(kind="api_keys")
    assert [e.action for e in trail] == [AuditAction.UPDATED, AuditAction.CREATED]
    assert all(e.data is not None and "digest" not in e.data for e in trail)
    assert issued.token.split("_", 2)[2] not in str(trail)


async def test_hits_are_counted_per_bucket_and_window(store: SQLStore) -> None:
    assert [await store.count_hit("session:s1", 100) for _ in range(3)] == [1, 2, 3]
    assert await store.count_hit("session:s2", 100) == 1
    assert await store.count_hit("session:s1", 101) == 1
    # A window's first hit forgets the windows before the previous one.
    assert await store.count_hit("session:s1", 103) == 1
    assert await store.count_hit("session:s1", 100) == 1


async def test_concurrent_hits_from_two_stores_are_counted_exactly(
    store: SQLStore, tmp_path: object
) -> None:
    if store.backend == "sqlite" and ":memory:" in store.url:
        pytest.skip("an in-memory database belongs to one store; a file or PostgreSQL is shared")
    other = await open_store(store.url, pg_schema=store.pg_schema)
    try:
        counts = await asyncio.gather(*(s.count_hit("customer:c", 7) for s in [store, other] * 15))
    finally:
        await other.close()
    assert sorted(counts) == list(range(1, 31))
