"""``PATCH /sessions/{id}/events/{event_id}``: annotate an event (Parlant's ``update_event``).

Only the metadata changes (keys set, keys removed); an event's kind, source, data and offset
are the timeline's record and stay. Who may annotate:

- staff (operator and admin keys): any event;
- a customer token, and the guest in a guest session: the events of their own session that
  they can see (every kind but ``tool``), except the keys the engine reads
  (``ENGINE_METADATA_KEYS``): a frontend may mark a reply helpful, it may not make the agent
  forget it.

The update is one read-modify-write under the event's lock (``Store.update_event_metadata``),
then published like a streamed message's growth: waiters wake, and the events this process
keeps for them hold the new state.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import Field

from tactful.api.auth import EVERYONE, OwnedSessionRef, Role, allow, caller
from tactful.api.event_views import EventDTO, shown, visible
from tactful.api.params import MetadataUpdate, Params
from tactful.api.runtime import RuntimeDep
from tactful.domain.events import (
    ENGINE_METADATA_KEYS,
    EVENT_METADATA_KEY_MAX_CHARS,
    EVENT_METADATA_MAX_BYTES,
)
from tactful.errors import ForbiddenError, NotFoundError, PayloadTooLargeError, ValidationError

router = APIRouter(prefix="/sessions", tags=["events"])


class EventUpdateParams(Params):
    """Parlant's ``EventUpdateParams``: only the metadata can change."""

    metadata: MetadataUpdate | None = Field(
        default=None, description="Metadata keys to set and keys to remove"
    )


def _problem(update: MetadataUpdate) -> str | None:
    keys = [*(update.set or {}), *(update.unset or [])]
    for key in keys:
        if not 1 <= len(key) <= EVENT_METADATA_KEY_MAX_CHARS:
            return f"a metadata key has 1 to {EVENT_METADATA_KEY_MAX_CHARS} characters"
    if both := sorted(set(update.set or {}) & set(update.unset or [])):
        return f"metadata keys both set and unset: {', '.join(both)}"
    return None


def _check_size(metadata: dict[str, Any]) -> None:
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > EVENT_METADATA_MAX_BYTES:
        raise PayloadTooLargeError(
            f"the event's metadata would take {size} bytes as JSON; "
            f"the limit is {EVENT_METADATA_MAX_BYTES}"
        )


@router.patch(
    "/{session_id}/events/{event_id}",
    dependencies=[Depends(allow(*EVERYONE, Role.GUEST))],
    responses={
        403: {"description": "A key the engine reads, changed by a customer or guest"},
        404: {"description": "Session or event not found"},
        413: {"description": "The metadata would be over the size limit"},
        422: {"description": "Bad keys, or a field that cannot change"},
    },
)
async def update_event(
    session: OwnedSessionRef,
    event_id: str,
    request: Request,
    runtime: RuntimeDep,
    # Optional: Parlant's client sends no body when it is given no metadata.
    params: Annotated[EventUpdateParams | None, Body()] = None,
) -> EventDTO:
    """Set and unset keys of an event's metadata (annotations: a rating, a read mark, a
    reviewer's note). Staff annotate any event; customers and guests the events they see in
    their own session, except the keys the engine reads (``preamble``). The metadata may take
    16 KiB as JSON; keys have 1 to 200 characters, and a key cannot be both set and unset."""
    principal = caller(request)
    update = (params.metadata if params else None) or MetadataUpdate()
    if problem := _problem(update):
        raise ValidationError(problem, loc=("body", "metadata"))
    store = runtime.store
    staff = principal is not None and principal.is_staff
    if not staff:
        event = await store.get_event(session.id, event_id)
        if not visible(event, principal):
            raise NotFoundError("Event", event_id)
        touched = {*(update.set or {}), *(update.unset or [])} & ENGINE_METADATA_KEYS
        if touched:
            names = ", ".join(sorted(touched))
            raise ForbiddenError(f"only staff change the metadata keys the engine reads: {names}")
    updated = await store.update_event_metadata(
        session.id,
        event_id,
        set=update.set,
        unset=update.unset or (),
        check=_check_size if update.set else None,
    )
    # Waiters wake, and the events kept for them (in this process) hold the new state.
    runtime.engine.timeline.recent.publish_update(updated)
    return shown(updated, principal)
