"""Stage 8, emit: a turn's reply is written at most once, enforced by the turn's record in the
same transaction, and never after a newer message superseded the turn."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

import tactful
from tactful.domain import EventKind, EventSource, Session, new_id, utcnow
from tactful.domain.turns import TurnRecord
from tactful.engine.context import TurnContext
from tactful.engine.emit import ReplyStream, emit_reply
from tactful.engine.preamble import Preamble
from tactful.engine.runner import Superseded, Turn
from tactful.llm.scripted import HashingEmbedder


@pytest_asyncio.fixture
async def server() -> AsyncIterator[tactful.Server]:
    async with tactful.Server(transient=True, embedder=HashingEmbedder()) as s:
        yield s


async def _claimed(server: tactful.Server, session: Session, owner: str) -> Turn:
    """A turn recorded for a (fake) customer message and claimed by ``owner``."""
    queue = server.runtime.engine.turns
    record = TurnRecord(
        id=new_id(), session_id=session.id, customer_offset=0, creation_utc=utcnow()
    )
    await queue.create(record)
    claimed = await queue.claim(record.id, owner, now=utcnow(), lease_s=30)
    assert claimed is not None
    return Turn(claimed, owner, queue)


async def _agent_messages(server: tactful.Server, session: Session) -> list[str]:
    events = await server.runtime.store.list_events(
        session.id, kinds=[EventKind.MESSAGE], source=EventSource.AI_AGENT
    )
    return [e.data["message"] for e in events]


async def test_a_second_worker_cannot_emit_the_same_turn_again(server: tactful.Server) -> None:
    agent = await server.create_agent("Support", "Helps")
    session = await server.create_session(agent)
    first = await _claimed(server, session, "worker-a")
    # Another worker holding the same record (it took the turn over) tries to reply too.
    second = Turn(first.record, "worker-b", first.queue)
    timeline = server.runtime.engine.timeline

    await emit_reply(timeline, first, {"message": "one"}, None)
    with pytest.raises(Superseded):
        await emit_reply(timeline, second, {"message": "two"}, None)

    # The refused reply was rolled back with the transaction that tried to mark it.
    assert await _agent_messages(server, session) == ["one"]


async def test_a_superseded_turn_writes_no_reply(server: tactful.Server) -> None:
    agent = await server.create_agent("Support", "Helps")
    session = await server.create_session(agent)
    turn = await _claimed(server, session, "worker-a")
    await turn.queue.supersede(session.id, newer="a-newer-turn", now=utcnow())

    with pytest.raises(Superseded):
        await emit_reply(server.runtime.engine.timeline, turn, {"message": "late"}, None)
    assert await _agent_messages(server, session) == []


async def test_a_stream_goes_out_in_one_event_that_grows(server: tactful.Server) -> None:
    agent = await server.create_agent("Support", "Helps")
    session = await server.create_session(agent)
    turn = await _claimed(server, session, "worker-a")
    store = server.runtime.store
    ctx = TurnContext(
        agent=await store.get(tactful.domain.Agent, agent.id),
        session=await store.get(Session, session.id),
        customer=await store.get(tactful.domain.Customer, session.customer_id),
        messages=[],
        guidelines=[],
        canned_responses=[],
        terms=[],
    )
    trace = tactful.domain.Trace(id=turn.trace_id, session_id=session.id, agent_id=agent.id)
    stream = ReplyStream(
        server.runtime.engine.timeline,
        turn,
        {"id": agent.id},
        Preamble(server.runtime.engine.timeline.append, ctx, trace),
    )
    await stream("Hello")
    await stream(", there")

    assert turn.emitted
    assert await _agent_messages(server, session) == ["Hello, there"]
    [event] = await store.list_events(session.id, kinds=[EventKind.MESSAGE])
    assert event.data["chunks"] == ["Hello", ", there"]
    # The turn's record says its reply went out: a newer message no longer supersedes it.
    record = await turn.queue.get(turn.trace_id)
    assert record is not None and record.emitted
