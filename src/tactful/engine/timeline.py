"""Reading a session's timeline, waiting for new events through the bus (no polling)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tactful.bus.base import Bus
from tactful.domain import Event, EventKind, EventSource
from tactful.store.base import Store


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
) -> list[Event]:
    """Events matching the filter (the first ``limit`` of them when given); waits up to
    ``timeout`` seconds for the first one.

    Returns as soon as at least one matching event exists. Raises ``TimeoutError`` when none
    exists once the time is up (the store is read once more then: a wake-up lost on the bus
    never hides a stored event).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_look = False
    while True:
        # Subscribe before reading so that an event appended in between still wakes us.
        listener = bus.listen(session_id)
        try:
            found = await store.list_events(
                session_id,
                min_offset=min_offset,
                kinds=kinds,
                source=source,
                trace_id=trace_id,
                limit=limit,
            )
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
