"""Stage 8, emit: the agent's message with its trace id, the journey progress it makes, the
trace, then ``ready``.

A turn's reply goes out once: the transaction that writes it also marks the turn's record as
emitting, which fails when a newer customer message superseded the turn (``Superseded``) or
the reply went out already. A streamed reply goes out from its first piece.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from tactful.domain import (
    Event,
    EventKind,
    EventSource,
    JourneyProgress,
    SessionStatus,
    TraceStatus,
)
from tactful.engine.preamble import Preamble
from tactful.engine.runner import Turn
from tactful.engine.timeline import Timeline
from tactful.engine.trace import TraceRecorder


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
            # The reply goes out from its first piece (once per turn, checked in the same
            # transaction): a newer message no longer supersedes it.
            async with store.transaction():
                self.event = await store.append_event(
                    session_id,
                    kind=EventKind.MESSAGE,
                    source=EventSource.AI_AGENT,
                    data=data,
                    trace_id=self.turn.trace_id,
                )
                # After the append (the session's lock first, as a posted message takes it).
                await self.turn.start_emitting()
            self.timeline.recent.publish_append(self.event)
        else:
            grown = await store.update_event_data(session_id, self.event.id, data)
            self.timeline.recent.publish_update(grown)


async def emit_reply(
    timeline: Timeline,
    turn: Turn,
    data: dict[str, Any],
    progress: JourneyProgress | None,
    *,
    streamed: Event | None = None,
) -> Event:
    """Append the agent's message (or complete the one streamed so far) and, in the same
    transaction, the session's journey progress: a turn that never replied changes no
    journey. The turn's record says the reply went out in that transaction too, so a turn
    replies once, and never after a newer message superseded it (``Superseded``)."""
    store, session_id = timeline.store, turn.session_id
    async with store.transaction():
        if streamed is not None:
            event = await store.update_event_data(session_id, streamed.id, data)
        else:
            event = await store.append_event(
                session_id,
                kind=EventKind.MESSAGE,
                source=EventSource.AI_AGENT,
                data=data,
                trace_id=turn.trace_id,
            )
        # After the append, which locks the session first, as a posted message does: the
        # two transactions never wait for each other's locks in opposite orders.
        await turn.start_emitting()
        if progress is not None:
            await store.upsert(progress)
    if streamed is not None:
        timeline.recent.publish_update(event)
    else:
        timeline.recent.publish_append(event)
    return event


async def conclude(timeline: Timeline, rec: TraceRecorder) -> None:
    """The trace is saved, then ``ready``: a client that reads the trace on ``ready`` finds
    it. Neither is left half-done by a stop that lands meanwhile."""
    rec.trace.status = TraceStatus.DONE
    await asyncio.shield(rec.save(timeline.store))
    await asyncio.shield(timeline.status(rec.trace.session_id, SessionStatus.READY, rec.trace.id))


def shielded(work: Awaitable[Event]) -> Awaitable[Event]:
    """``asyncio.shield``, whose work's outcome is still taken when the waiter was cancelled
    (a refused reply raises ``Superseded`` after the turn already stopped)."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return asyncio.shield(task)
