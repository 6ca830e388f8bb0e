"""Flags in the store: listed by session and agent, gone with their session, never audited."""

from __future__ import annotations

from tactful.domain import Agent, Customer, EventKind, EventSource, Flag, Session
from tactful.store.sql import SQLStore


async def _flagged_session(store: SQLStore, agent: Agent, note: str) -> tuple[Session, Flag]:
    customer = await store.create(Customer(name="c"))
    session = await store.create(Session(agent_id=agent.id, customer_id=customer.id))
    reply = await store.append_event(
        session.id,
        kind=EventKind.MESSAGE,
        source=EventSource.AI_AGENT,
        data={"message": "hi"},
        trace_id="t-" + session.id,
    )
    flag = Flag(
        session_id=session.id,
        event_id=reply.id,
        trace_id=reply.trace_id,
        agent_id=agent.id,
        note=note,
    )
    return session, await store.create(flag)


async def test_flags_are_listed_by_session_and_by_agent(store: SQLStore) -> None:
    one, two = await store.create(Agent(name="one")), await store.create(Agent(name="two"))
    s1, f1 = await _flagged_session(store, one, "too long")
    s2, f2 = await _flagged_session(store, one, "")
    _, f3 = await _flagged_session(store, two, "wrong order number")
    assert await store.get(Flag, f1.id) == f1
    assert await store.list(Flag) == [f1, f2, f3]
    assert await store.list(Flag, agent_id=one.id) == [f1, f2]
    assert await store.list(Flag, session_id=s2.id) == [f2]
    assert await store.list(Flag, session_id=s1.id, agent_id=two.id) == []


async def test_deleting_a_session_deletes_its_flags_only(store: SQLStore) -> None:
    agent = await store.create(Agent(name="a"))
    doomed, _ = await _flagged_session(store, agent, "a")
    _, kept = await _flagged_session(store, agent, "b")
    assert await store.delete(Session, doomed.id)
    assert await store.list(Flag) == [kept]


async def test_flags_are_neither_audited_nor_definitions(store: SQLStore) -> None:
    agent = await store.create(Agent(name="a"))
    revision = await store.definitions_revision()
    _, flag = await _flagged_session(store, agent, "note")
    assert await store.delete(Flag, flag.id)
    assert await store.definitions_revision() == revision
    assert await store.list_audit(kind="flags") == []
