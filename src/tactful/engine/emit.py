"""Stage 8, emit: ``typing`` and the agent's message with its trace id, with the journey
progress it makes; then the trace with ``ready``.

A turn's reply goes out once: the transaction that writes it also marks the turn's record as
emitting, which fails when a newer customer message superseded the turn (``Superseded``) or
the reply went out already. A streamed reply goes out from its first piece.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

from tactful.domain import (
    Event,
    EventKind,
    EventSource,
    Guideline,
    JourneyProgress,
    SessionStatus,
    Trace,
    TraceStatus,
)
from tactful.domain.turns import TurnStatus
from tactful.engine.lifecycle import write_ending
from tactful.engine.preamble import Preamble
from tactful.engine.runner import Turn
from tactful.engine.timeline import Timeline, status_event
from tactful.engine.trace import TraceRecorder
from tactful.store.base import NewEvent


class ReplyStream:
    """A reply streamed into one message event as the model writes it: the event is appended
    with the first piece and updated with each next one (clients see it grow)."""

    def __init__(
        self, timeline: Timeline, turn: Turn, participant: dict[str, Any], preamble: Preamble
    ) -> None:
        self.timeline = timeline
        self.turn = turn
        self.participant = participant
        self.preamble = preamble
        self.chunks: list[str] = []
        self.event: Event | None = None

    async def __call__(self, piece: str) -> None:
        self.preamble.stop()
        self.chunks.append(piece)
        data = {
            "message": "".join(self.chunks),
            "participant": self.participant,
            "chunks": list(self.chunks),
            "canned_responses": [],
            "guidelines": [],
        }
        store, session_id = self.timeline.store, self.turn.session_id
        if self.event is None:
            # The reply goes out from its first piece, after ``typing`` (once per turn, checked
            # in the same transaction): a newer message no longer supersedes it.
            async with store.transaction():
                written = await store.append_events(session_id, reply_events(self.turn, data))
                # After the append (the session's lock first, as a posted message takes it).
                await self.turn.start_emitting()
            self.event = written[-1]
            self.timeline.publish(written)
        else:
            grown = await store.update_event_data(session_id, self.event.id, data)
            self.timeline.recent.publish_update(grown)


def reply_events(turn: Turn, data: dict[str, Any]) -> list[NewEvent]:
    """``typing`` and the agent's message, appended together: one write for both."""
    return [
        status_event(SessionStatus.TYPING, turn.trace_id),
        NewEvent(EventKind.MESSAGE, EventSource.AI_AGENT, data, trace_id=turn.trace_id),
    ]


def session_labels(guidelines: Iterable[Guideline]) -> list[str]:
    """The labels a turn gives its session: those of its active guidelines and of the
    journeys it follows (a followed journey's synthetic guideline carries them), in order,
    once each."""
    return list(dict.fromkeys(label for g in guidelines for label in g.labels))


async def emit_reply(
    timeline: Timeline,
    turn: Turn,
    data: dict[str, Any],
    progress: JourneyProgress | None,
    *,
    streamed: Event | None = None,
    labels: Sequence[str] = (),
    trace: Trace | None = None,
) -> Event:
    """Append ``typing`` and the agent's message (or complete the one streamed so far) and,
    in the same transaction, the session's journey progress and ``labels``: a turn that never
    replied changes no journey and labels nothing. The turn's record says the reply went out
    in that transaction too, so a turn replies once, and never after a newer message
    superseded it (``Superseded``). The labels that were new go in ``trace``."""
    store, session_id = timeline.store, turn.session_id
    async with store.transaction():
        # First: the labels are read and written under the session's lock, which a posted
        # message (and the append below) also takes first.
        added = await store.add_session_labels(session_id, labels) if labels else []
        if streamed is not None:
            written = [await store.update_event_data(session_id, streamed.id, data)]
        else:
            written = await store.append_events(session_id, reply_events(turn, data))
        # After the append, which locks the session first, as a posted message does: the
        # two transactions never wait for each other's locks in opposite orders.
        await turn.start_emitting()
        if progress is not None:
            await store.put(progress)
    if trace is not None:
        trace.session_labels_added = added
    if streamed is not None:
        timeline.recent.publish_update(written[-1])
    else:
        timeline.publish(written)
    return written[-1]


async def conclude(timeline: Timeline, rec: TraceRecorder, turn: Turn, **data: Any) -> None:
    """The trace, ``ready`` (with ``data``) and the end of the turn's record, in one
    transaction: a client that reads the trace on ``ready`` finds it. Not left half-done by a
    stop that lands meanwhile."""
    rec.trace.status = TraceStatus.DONE
    ready = [status_event(SessionStatus.READY, rec.trace.id, **data)]
    await asyncio.shield(write_ending(timeline, rec, ready, turn, TurnStatus.DONE))


def shielded(work: Awaitable[Event]) -> Awaitable[Event]:
    """``asyncio.shield``, whose work's outcome is still taken when the waiter was cancelled
    (a refused reply raises ``Superseded`` after the turn already stopped)."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return asyncio.shield(task)
