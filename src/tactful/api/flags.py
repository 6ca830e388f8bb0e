"""``/flags`` (our addition): agent replies that staff marked with a note, kept so that a builder
can turn them into tests later.

A flag names one agent message of a session; the turn's ``trace_id`` and the session's
``agent_id`` are copied into it, so a listing filtered by agent needs no other read. Flags go
with their session when it is deleted (the store cascades, as for traces). Flags are not in the
audit trail: they are notes about conversations, not definitions of an agent.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, Field

from tactful.api.auth import STAFF, allow
from tactful.api.pagination import ordered, paginate
from tactful.api.params import Params, SortDirection, page_size_query
from tactful.api.runtime import RuntimeDep
from tactful.domain import EventKind, EventSource, Flag, Session
from tactful.domain.flags import NOTE_MAX_CHARS
from tactful.errors import NotFoundError, ValidationError

router = APIRouter(prefix="/flags", tags=["flags"])


class FlagCreationParams(Params):
    session_id: str = Field(min_length=1, max_length=128, description="The reply's session")
    event_id: str = Field(
        min_length=1, max_length=128, description="The reply: an agent message of that session"
    )
    note: str = Field(
        default="", max_length=NOTE_MAX_CHARS, description="What is wrong with the reply"
    )


class PaginatedFlags(BaseModel):
    """One page of flags (when ``limit`` is given)."""

    items: list[Flag]
    total_count: int
    has_more: bool
    next_cursor: str | None = None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(allow(*STAFF))],
    responses={
        404: {"description": "Session not found, or no such event in it"},
        422: {"description": "The event is not a message of the agent"},
    },
)
async def create_flag(params: FlagCreationParams, runtime: RuntimeDep) -> Flag:
    """Flag one of the agent's messages with a note. Any agent message can be flagged, as
    often as needed; the flag records the turn's ``trace_id`` and the session's agent."""
    session = await runtime.store.get(Session, params.session_id)
    event = await runtime.store.get_event(session.id, params.event_id)
    if event.deleted:  # no longer on the session's timeline
        raise NotFoundError("Event", event.id)
    if event.kind is not EventKind.MESSAGE or event.source is not EventSource.AI_AGENT:
        raise ValidationError(
            f"event {event.id!r} is a {event.kind.value} event from {event.source.value}: "
            "only the agent's messages (kind message, source ai_agent) can be flagged",
            loc=("body", "event_id"),
        )
    flag = Flag(
        session_id=session.id,
        event_id=event.id,
        trace_id=event.trace_id,
        agent_id=session.agent_id,
        note=params.note,
    )
    return await runtime.store.create(flag)


@router.get("", dependencies=[Depends(allow(*STAFF))])
async def list_flags(
    runtime: RuntimeDep,
    session_id: Annotated[str | None, Query(description="Only this session's flags")] = None,
    agent_id: Annotated[str | None, Query(description="Only flags of this agent's replies")] = None,
    limit: Annotated[int | None, page_size_query()] = None,
    cursor: Annotated[str | None, Query(description="From a previous page")] = None,
    sort: Annotated[
        SortDirection | None, Query(description="By creation time (default: newest first)")
    ] = None,
) -> PaginatedFlags | list[Flag]:
    """Flags matching the filters, newest first; with ``limit``, one page of them
    (``PaginatedFlags``)."""
    where = {
        k: v for k, v in {"session_id": session_id, "agent_id": agent_id}.items() if v is not None
    }
    flags = await runtime.store.list(Flag, **where)
    direction = sort or SortDirection.DESC
    if limit is None:
        return ordered(flags, direction)
    page = paginate(flags, limit=limit, cursor=cursor, sort=direction)
    return PaginatedFlags(
        items=page.items,
        total_count=page.total_count,
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@router.delete(
    "/{flag_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Flag not found"}},
)
async def delete_flag(flag_id: str, runtime: RuntimeDep) -> Response:
    """Delete a flag (the reply it named stays)."""
    if not await runtime.store.delete(Flag, flag_id):
        raise NotFoundError("Flag", flag_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
