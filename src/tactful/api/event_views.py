"""What each caller sees of a session's events: staff everything; customers and guests their
timeline without tool events, and without the agent's working data (an error's internals, what
moderation fired, the actions asked of a proactive turn, who handed a session off and why, the
values a tool changed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from tactful.api.auth import Principal
from tactful.domain import Event, EventKind, EventSource
from tactful.domain.handoff import HANDOFF_KEY, customer_view
from tactful.domain.proactive import PROACTIVE_KEY
from tactful.domain.tool_updates import TOOL_UPDATE_KEY
from tactful.domain.tool_updates import customer_view as tool_update_view

CUSTOMER_SOURCES = (EventSource.CUSTOMER, EventSource.CUSTOMER_UI)


class EventDTO(BaseModel):
    """An event, as Parlant's ``Event``. ``correlation_id`` repeats ``trace_id``."""

    id: str
    source: EventSource
    kind: EventKind
    offset: int
    creation_utc: datetime
    trace_id: str
    correlation_id: str
    data: Any = None
    metadata: dict[str, Any]
    deleted: bool


def event_dto(e: Event) -> EventDTO:
    return EventDTO(
        id=e.id,
        source=e.source,
        kind=e.kind,
        offset=e.offset,
        creation_utc=e.creation_utc,
        trace_id=e.trace_id,
        correlation_id=e.trace_id,
        data=e.data,
        metadata=e.metadata,
        deleted=e.deleted,
    )


def is_staff(principal: Principal | None) -> bool:
    return principal is not None and principal.is_staff


def visible(event: Event, principal: Principal | None) -> bool:
    """Customers and guests see their timeline without tool events (tool results are the
    agent's working data, not the customer's)."""
    return is_staff(principal) or event.kind is not EventKind.TOOL


def shown(event: Event, principal: Principal | None) -> EventDTO:
    """The event as this caller may see it: an error status keeps its internals from
    customers and guests (the trace has them, for staff), and so does a checked customer
    message its moderation record."""
    dto = event_dto(event)
    data = dto.data
    if (
        not is_staff(principal)
        and event.kind is EventKind.MESSAGE
        and event.source in CUSTOMER_SOURCES
        and isinstance(data, dict)
        and "moderation" in data
    ):
        # What fired, and how, is for staff: the customer sees Parlant's flagged and tags.
        data = {k: v for k, v in data.items() if k != "moderation"}
        dto.data = data
    if (
        not is_staff(principal)
        and event.kind is EventKind.STATUS
        and isinstance(data, dict)
        and isinstance(data.get("data"), dict)
        and "exception" in data["data"]
    ):
        inner = {**data["data"], "exception": "the agent could not answer; please try again"}
        dto.data = {**data, "data": inner}
    if not is_staff(principal):
        dto.data = _for_customers(event, dto.data)
    return dto


def _for_customers(event: Event, data: Any) -> Any:
    """What customers see of the agent's working data on their timeline: a proactive turn's
    kind without the actions asked for; a handoff step without its reason or who did it; a
    tool's change to them or their session without the values (the kind of change only)."""
    if not isinstance(data, dict):
        return data
    if event.kind is EventKind.CUSTOM and event.source is EventSource.SYSTEM:
        if HANDOFF_KEY in data:
            return customer_view(data)
        if TOOL_UPDATE_KEY in data:
            return tool_update_view(data)
    inner = data.get("data")
    if event.kind is EventKind.STATUS and isinstance(inner, dict) and PROACTIVE_KEY in inner:
        request = inner[PROACTIVE_KEY]
        kind = request.get("kind") if isinstance(request, dict) else None
        return {**data, "data": {**inner, PROACTIVE_KEY: {"kind": kind}}}
    return data
