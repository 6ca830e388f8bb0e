"""A claimed turn's lifecycle: its trace is saved and its terminal status written on every
ending (done, failed, superseded, dropped), and a turn whose worker died after replying is
completed without running again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

import tactful
from tactful.domain import EventKind, EventSource, Session, Trace, new_id, utcnow
from tactful.domain.turns import TurnRecord, TurnStatus
from tactful.engine.lifecycle import TurnLifecycle
from tactful.engine.runner import Superseded, Turn
from tactful.engine.trace import TraceRecorder
from tactful.errors import NotFoundError
from tactful.llm.scripted import HashingEmbedder
from tactful.telemetry.base import TurnEnded, TurnObserver


@pytest_asyncio.fixture
async def server() -> AsyncIterator[tactful.Server]:
    async with tactful.Server(transient=True, embedder=HashingEmbedder()) as s:
        yield s


@pytest_asyncio.fixture
async def session(server: tactful.Server) -> Session:
    agent = await server.create_agent("Support", "Helps")
    return await server.create_session(agent)


async def _turn(server: tactful.Server, session: Session) -> Turn:
    queue = server.runtime.engine.turns
    record = TurnRecord(
        id=new_id(), session_id=session.id, customer_offset=0, creation_utc=utcnow()
    )
    await queue.create(record)
    claimed = await queue.claim(record.id, "worker-a", now=utcnow(), lease_s=30)
    assert claimed is not None
    return Turn(claimed, "worker-a", queue)


def _lifecycle(server: tactful.Server, error: BaseException | None) -> TurnLifecycle:
    async def pipeline(turn: Turn, rec: TraceRecorder) -> None:
        rec.trace.agent_id = "agent"
        rec.defer(lambda: rec.trace.final_guideline_ids.append("built-when-saved"))
        if error is not None:
            raise error

    return TurnLifecycle(server.runtime.engine.timeline, pipeline, lambda: "offline")


async def _statuses(server: tactful.Server, session: Session, trace_id: str) -> list[str]:
    events = await server.runtime.store.list_events(
        session.id, kinds=[EventKind.STATUS], trace_id=trace_id
    )
    return [e.data["status"] for e in events]


async def test_a_failing_turn_ends_with_error_then_ready_and_its_trace(
    server: tactful.Server, session: Session
) -> None:
    turn = await _turn(server, session)
    status = await _lifecycle(server, RuntimeError("boom")).execute(turn)

    assert status is TurnStatus.FAILED
    assert await _statuses(server, session, turn.trace_id) == ["error", "ready"]
    trace = await server.runtime.store.get(Trace, turn.trace_id)
    assert (trace.status, trace.error) == ("error", "RuntimeError: boom")
    # Records deferred by the pipeline are built when the trace is saved, failure or not.
    assert trace.final_guideline_ids == ["built-when-saved"]


async def test_a_superseded_turn_ends_cancelled(server: tactful.Server, session: Session) -> None:
    turn = await _turn(server, session)
    status = await _lifecycle(server, Superseded("newer message")).execute(turn)

    assert status is TurnStatus.SUPERSEDED
    assert await _statuses(server, session, turn.trace_id) == ["cancelled"]
    assert (await server.runtime.store.get(Trace, turn.trace_id)).status == "cancelled"


async def test_a_turn_whose_session_is_gone_is_dropped_quietly(
    server: tactful.Server, session: Session
) -> None:
    turn = await _turn(server, session)
    status = await _lifecycle(server, NotFoundError("Session", session.id)).execute(turn)

    assert status is TurnStatus.DROPPED
    assert await _statuses(server, session, turn.trace_id) == []


async def test_a_turn_stopped_for_draining_writes_nothing(
    server: tactful.Server, session: Session
) -> None:
    turn = await _turn(server, session)
    turn.stop = "draining"
    with pytest.raises(asyncio.CancelledError):
        await _lifecycle(server, asyncio.CancelledError()).execute(turn)
    assert await _statuses(server, session, turn.trace_id) == []
    assert await server.runtime.store.find(Trace, turn.trace_id) is None


async def test_a_reply_left_half_streamed_is_completed_with_ready(
    server: tactful.Server, session: Session
) -> None:
    turn = await _turn(server, session)
    store = server.runtime.store
    # The dead worker streamed two pieces, and stopped before the end and the trace.
    reply = await store.append_event(
        session.id,
        kind=EventKind.MESSAGE,
        source=EventSource.AI_AGENT,
        data={"message": "Hello, there", "chunks": ["Hello", ", there"]},
        trace_id=turn.trace_id,
    )
    await _lifecycle(server, None).recover_emitted(turn)

    [event] = await store.list_events(session.id, kinds=[EventKind.MESSAGE])
    assert event.id == reply.id
    assert event.data["chunks"] == ["Hello", ", there", None]
    trace = await store.get(Trace, turn.trace_id)
    assert trace.message_event_id == reply.id
    assert "stopped before it saved the trace" in (trace.error or "")
    assert await _statuses(server, session, turn.trace_id) == ["ready"]


async def test_each_turn_leaves_one_log_line(
    server: tactful.Server, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    turn = await _turn(server, session)
    with caplog.at_level(logging.INFO, logger="tactful.turns"):
        await _lifecycle(server, RuntimeError("boom")).execute(turn)
    [line] = [r.getMessage() for r in caplog.records if r.name == "tactful.turns"]
    assert line.startswith(f"turn {turn.trace_id} session {session.id}: failed in ")
    assert line.endswith("0 model call(s), 0 tokens")


class Recording(TurnObserver):
    def __init__(self) -> None:
        self.ended: list[TurnEnded] = []

    def turn_ended(self, turn: TurnEnded) -> None:
        self.ended.append(turn)


class Broken(TurnObserver):
    def turn_ended(self, turn: TurnEnded) -> None:
        raise RuntimeError("observer bug")


async def test_observers_are_told_how_each_turn_ended(
    server: tactful.Server, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Recording()
    failing = _lifecycle(server, RuntimeError("boom"))
    failing.observers += [Broken(), seen]
    # An observer that raises is logged; the turn ends as it would, and the next one is told.
    assert await failing.execute(await _turn(server, session)) is TurnStatus.FAILED
    draining = _lifecycle(server, asyncio.CancelledError())
    draining.observers.append(seen)
    # Another session: the first turn's record still runs (the runner would finish it).
    turn = await _turn(server, await server.create_session(session.agent_id))
    turn.stop = "draining"
    with pytest.raises(asyncio.CancelledError):
        await draining.execute(turn)
    assert [(e.outcome, e.trace.error) for e in seen.ended] == [
        ("failed", "RuntimeError: boom"),
        ("interrupted", None),
    ]
    assert all(e.duration_s > 0 for e in seen.ended)
    assert "turn observer Broken failed" in caplog.text
