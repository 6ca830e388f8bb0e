"""Handing a session to a person and back (``tactful.domain.handoff``).

Each step changes the session (its mode and ``handoff``) and appends its timeline event in one
transaction: the queue (``GET /sessions?mode=manual``) and the timeline never disagree. A step
that changes nothing (handing off a session already with a person, releasing one nobody took)
writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tactful.domain import (
    Event,
    EventKind,
    EventSource,
    Handoff,
    HandoffStep,
    Operator,
    Session,
    SessionMode,
    utcnow,
)
from tactful.domain.handoff import handoff_event
from tactful.engine.timeline import Timeline
from tactful.store.base import NewEvent

# What a step does to the session: the events it records (none: nothing changed).
Step = Callable[[Session], list[dict[str, Any]]]


class Handoffs:
    """The steps of a handoff, over a session's timeline."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline

    async def hand_off(
        self, session_id: str, *, reason: str, by: str, trace_id: str | None = None
    ) -> Session:
        """Manual mode: the agent stays silent and the session waits for a person."""
        return await self._apply(
            session_id, lambda s: _requested(s, reason, by, trace_id), trace_id or ""
        )

    async def assign(self, session_id: str, operator: Operator, *, by: str) -> Session:
        """``operator`` takes the session (from the queue, from another operator, or from the
        agent: a session in automatic mode is handed off first)."""

        def step(session: Session) -> list[dict[str, Any]]:
            events = _requested(session, f"taken over by {operator.display_name}", by, None)
            assert session.handoff is not None
            if session.handoff.assignee == operator:
                return events
            session.handoff.assignee = operator
            session.handoff.assigned_utc = utcnow()
            taken = handoff_event(
                HandoffStep.TAKEN, by, operator=operator.model_dump(), waited_s=_waited(session)
            )
            return [*events, taken]

        return await self._apply(session_id, step)

    async def release(self, session_id: str, *, by: str) -> Session:
        """The operator gives the session back to the queue; it still waits for a person."""

        def step(session: Session) -> list[dict[str, Any]]:
            handoff = session.handoff
            if handoff is None or handoff.assignee is None:
                return []
            operator = handoff.assignee
            handoff.assignee, handoff.assigned_utc = None, None
            return [handoff_event(HandoffStep.RELEASED, by, operator=operator.model_dump())]

        return await self._apply(session_id, step)

    async def return_to_agent(self, session_id: str, *, by: str) -> Session:
        """Automatic mode: the agent answers the customer's next message."""

        def step(session: Session) -> list[dict[str, Any]]:
            if session.mode is SessionMode.AUTO:
                return []
            handoff = session.handoff
            session.mode, session.handoff = SessionMode.AUTO, None
            operator = handoff.assignee.model_dump() if handoff and handoff.assignee else None
            waited = round((utcnow() - handoff.since).total_seconds(), 3) if handoff else None
            return [handoff_event(HandoffStep.RETURNED, by, operator=operator, manual_s=waited)]

        return await self._apply(session_id, step)

    async def set_mode(
        self, session_id: str, mode: SessionMode, *, by: str, reason: str = ""
    ) -> Session:
        """Parlant's mode switch, as a handoff step: manual hands off, auto returns."""
        if mode is SessionMode.MANUAL:
            return await self.hand_off(session_id, reason=reason, by=by)
        return await self.return_to_agent(session_id, by=by)

    async def hand_off_within(
        self, session_id: str, *, reason: str, by: str, trace_id: str
    ) -> list[Event]:
        """``hand_off`` inside the caller's transaction (a turn that ends by handing off writes
        it with the turn's own writes); the caller publishes the events it returns once that
        transaction has committed."""
        _, written = await self._write(
            session_id, lambda s: _requested(s, reason, by, trace_id), trace_id
        )
        return written

    async def _apply(self, session_id: str, step: Step, trace_id: str = "") -> Session:
        async with self.timeline.store.transaction():
            saved, written = await self._write(session_id, step, trace_id)
        self.timeline.publish(written)
        return saved

    async def _write(
        self, session_id: str, step: Step, trace_id: str
    ) -> tuple[Session, list[Event]]:
        store = self.timeline.store
        session = await store.get(Session, session_id)
        events = step(session)
        if not events:
            return session, []
        written = await store.append_events(
            session_id,
            [NewEvent(EventKind.CUSTOM, EventSource.SYSTEM, e, trace_id) for e in events],
        )
        return await store.update(session), written


def _requested(
    session: Session, reason: str, by: str, trace_id: str | None
) -> list[dict[str, Any]]:
    """Manual mode with a handoff record, unless the session is there already."""
    if session.mode is SessionMode.MANUAL and session.handoff is not None:
        return []
    session.mode = SessionMode.MANUAL
    session.handoff = Handoff(reason=reason, since=utcnow(), by=by, trace_id=trace_id)
    return [handoff_event(HandoffStep.REQUESTED, by, reason=reason)]


def _waited(session: Session) -> float | None:
    if session.handoff is None:
        return None
    return round((utcnow() - session.handoff.since).total_seconds(), 3)
