"""Server-sent events of a session's timeline: every new event, and each new piece of a
message being streamed, as it comes (``GET /sessions/{id}/events`` with
``Accept: text/event-stream``, and one event's states with ``GET .../events/{id}``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from tactful.api.auth import Principal
from tactful.api.event_views import shown
from tactful.domain import Event, EventKind, EventSource
from tactful.runtime import Runtime

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def streaming(event: Event) -> bool:
    """A message still being streamed: its chunks do not end with None yet."""
    data = event.data
    if event.kind is not EventKind.MESSAGE or not isinstance(data, dict):
        return False
    chunks = data.get("chunks")
    return isinstance(chunks, list) and (not chunks or chunks[-1] is not None)


def _state(event: Event) -> int:
    data = event.data if isinstance(event.data, dict) else {}
    chunks = data.get("chunks")
    return len(chunks) if isinstance(chunks, list) else 0


async def stream_events(
    runtime: Runtime,
    session_id: str,
    *,
    min_offset: int,
    kinds: Sequence[EventKind] | None,
    source: EventSource | None,
    trace_id: str | None,
    idle_timeout: float,
    principal: Principal | None,
    page: int,
) -> AsyncIterator[str]:
    # Each appended event, and each new piece of a streamed message, wakes the listener; a
    # streamed message is sent again as it grows, until its chunks end with null. The stream
    # ends after idle_timeout without anything new (or when the client goes away: Starlette
    # cancels this generator).
    store, bus, recent = runtime.store, runtime.bus, runtime.engine.timeline.recent
    loop = asyncio.get_running_loop()
    offset = min_offset
    growing: dict[str, int] = {}
    quiet_since = loop.time()
    # Once quiet for idle_timeout, the store is read once more before closing: a wake-up lost
    # on the bus (another process's) never hides a stored event.
    last_look = False
    while True:
        # Subscribe before reading so that a change in between still wakes us.
        listener = bus.listen(session_id)
        try:
            out: list[Event] = []
            for event_id, seen in list(growing.items()):
                known = None if last_look else recent.event(session_id, event_id)
                event = known if known is not None else await store.get_event(session_id, event_id)
                if _state(event) != seen:
                    out.append(event)
            # A page at a time: a long backlog goes out in pieces, never read whole.
            query: dict[str, Any] = {
                "min_offset": offset,
                "kinds": kinds,
                "source": source,
                "trace_id": trace_id,
                "limit": page,
            }
            fresh = None if last_look else recent.events(session_id, **query)
            out += fresh if fresh is not None else await store.list_events(session_id, **query)
            for event in out:
                yield f"data: {shown(event, principal).model_dump_json()}\n\n"
                offset = max(offset, event.offset + 1)
                if streaming(event):
                    growing[event.id] = _state(event)
                else:
                    growing.pop(event.id, None)
            if out:
                quiet_since = loop.time()
                last_look = False
                continue
            if last_look:
                return
            remaining = idle_timeout - (loop.time() - quiet_since)
            if remaining <= 0 or not await listener.wait(remaining):
                last_look = True
        finally:
            listener.close()


async def until_complete(
    runtime: Runtime, session_id: str, event: Event, timeout: float
) -> AsyncIterator[Event]:
    """The event's states as it grows, until it is complete or ``timeout`` passes quietly."""
    loop = asyncio.get_running_loop()
    recent = runtime.engine.timeline.recent
    yield event
    seen = _state(event)
    deadline = loop.time() + timeout
    last_look = False  # as in stream_events: read once more before giving up
    while streaming(event):
        listener = runtime.bus.listen(session_id)
        try:
            known = None if last_look else recent.event(session_id, event.id)
            event = (
                known if known is not None else await runtime.store.get_event(session_id, event.id)
            )
            if _state(event) != seen:
                seen = _state(event)
                deadline = loop.time() + timeout
                last_look = False
                yield event
                continue
            if last_look:
                return
            remaining = deadline - loop.time()
            if remaining <= 0 or not await listener.wait(remaining):
                last_look = True
        finally:
            listener.close()
