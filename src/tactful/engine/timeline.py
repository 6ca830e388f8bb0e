"""A session's timeline: writing events (each wakes its waiters), and waiting for new ones
through the bus (no polling), answered from this process's recent writes when they tell all."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from tactful.bus.base import Bus
from tactful.domain import Event, EventKind, EventSource, SessionStatus
from tactful.engine.recent_events import RecentEvents
from tactful.store.base import NewEvent, Store


async def wait_for_events(
    store: Store,
    bus: Bus,
    session_id: str,
    *,
    min_offset: int = 0,
    kinds: Sequence[EventKind] | None = None,
    source: EventSource | None = None,
    trace_id: str | None = None,
    timeout: float,
    limit: int | None = None,
    recent: RecentEvents | None = None,
) -> list[Event]:
    """Events matching the filter (the first ``limit`` of them when given); waits up to
    ``timeout`` seconds for the first one.

    Returns as soon as at least one matching event exists. Raises ``TimeoutError`` when none
    exists once the time is up (the store is read once more then: a wake-up lost on the bus
    never hides a stored event). ``recent`` answers instead of the store when it can vouch for
    its answer.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_look = False
    while True:
        # Subscribe before reading so that an event appended in between still wakes us.
        listener = bus.listen(session_id)
        try:
            query: dict[str, Any] = {
                "min_offset": min_offset,
                "kinds": kinds,
                "source": source,
                "trace_id": trace_id,
                "limit": limit,
            }
            known = None if recent is None or last_look else recent.events(session_id, **query)
            found = known if known is not None else await store.list_events(session_id, **query)
            if found:
                return found
            if last_look:
                raise TimeoutError(f"no matching event in session {session_id!r} within {timeout}s")
            remaining = deadline - loop.time()
            if remaining <= 0 or not await listener.wait(remaining):
                # A notification can be lost (another process's, while its connection was
                # down): the store, not the bus, says whether there is nothing to answer.
                last_look = True
        finally:
            listener.close()


class Timeline:
    """Writes to sessions' timelines: each event appended wakes whoever waits on its session."""

    def __init__(self, store: Store, bus: Bus) -> None:
        self.store = store
        self.bus = bus
        # Publishes what this timeline writes, keeping it for this process's waiters.
        self.recent = RecentEvents(bus)

    async def append(
        self,
        session_id: str,
        kind: EventKind,
        source: EventSource,
        data: Any,
        *,
        trace_id: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> Event:
        """Append an event and wake whoever waits on the session."""
        event = await self.store.append_event(
            session_id, kind=kind, source=source, data=data, trace_id=trace_id, metadata=metadata
        )
        self.recent.publish_append(event)
        return event

    async def status(
        self, session_id: str, status: SessionStatus, trace_id: str, **data: Any
    ) -> Event:
        """Append the agent's status (``ready``, ``typing``, ...) for one turn."""
        [event] = await self.store.append_events(
            session_id, [status_event(status, trace_id, **data)]
        )
        self.recent.publish_append(event)
        return event

    def publish(self, written: Sequence[Event]) -> None:
        """Publish events appended in a transaction, once it committed (``recent``: kept for
        this process's waiters)."""
        for event in written:
            self.recent.publish_append(event)


def status_event(status: SessionStatus, trace_id: str, **data: Any) -> NewEvent:
    """The agent's status for one turn, to append."""
    return NewEvent(
        EventKind.STATUS,
        EventSource.AI_AGENT,
        {"status": status.value, "data": data},
        trace_id=trace_id,
    )
