"""``/sessions/{id}/events``: a session's timeline. Post messages, read with long-poll or SSE.

Waiting is driven by the bus (``tactful.engine.timeline.wait_for_events``): a request returns
as soon as a matching event exists, never by polling the store. A waiter woken by this process's
own write is answered from the events it just wrote (``tactful.engine.recent_events``) when they
tell all; else, and once more before giving up, from the store. What each caller sees of an
event is ``api/event_views.py``'s; server-sent events are ``api/event_stream.py``'s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import Field

from tactful.api.auth import (
    EVERYONE,
    STAFF,
    OwnedSessionRef,
    Principal,
    Role,
    SessionRef,
    allow,
    caller,
    require,
)
from tactful.api.event_stream import SSE_HEADERS, stream_events, until_complete
from tactful.api.event_views import CUSTOMER_SOURCES, EventDTO, event_dto, is_staff, shown, visible
from tactful.api.params import (
    PAGE_MAX,
    Params,
    offset_query,
    page_size_query,
    seconds_query,
)
from tactful.api.runtime import RuntimeDep
from tactful.api.utterances import (
    AgentMessageGuidelineDTO,
    ParticipantDTO,
    ask_agent,
    human_participant,
)
from tactful.domain import (
    GUEST_CUSTOMER_ID,
    Agent,
    Customer,
    Event,
    EventKind,
    EventSource,
    ModerationMode,
    Session,
    SessionStatus,
)
from tactful.domain.proactive import ACTIONS_MAX
from tactful.engine.timeline import wait_for_events
from tactful.errors import ForbiddenError, NotFoundError, PayloadTooLargeError, ValidationError
from tactful.runtime import Runtime
from tactful.security.limits import RateLimiter

router = APIRouter(prefix="/sessions", tags=["events"])

HUMAN_SOURCES = (EventSource.HUMAN_AGENT, EventSource.HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT)
# Parlant's default: a GET without wait_for_data waits up to a minute (capped by the settings).
DEFAULT_WAIT_S = 60.0
# What ``kinds`` may hold, so that the spec says which values are refused.
_KIND = "(?:" + "|".join(k.value for k in EventKind) + ")"
KINDS = f"^ *(?:{_KIND} *)?(?:, *(?:{_KIND} *)?)*$"
# A listing answers one page; Parlant's clients follow with min_offset = last offset + 1.
DEFAULT_PAGE = 100
HAS_MORE_HEADER = "Tactful-Has-More"
PAGE_HEADERS = {
    HAS_MORE_HEADER: {
        "description": "true when more matching events follow this page: ask again with "
        "min_offset = the last offset + 1",
        "schema": {"type": "string", "enum": ["true", "false"]},
    }
}


class EventCreationParams(Params):
    """Parlant's event creation body. Supported: ``message`` from customer, human_agent or
    human_agent_on_behalf_of_ai_agent, and from ai_agent without ``message`` (the agent is asked
    to speak, following ``guidelines`` when given); ``custom`` with ``data``; ``status`` with
    ``status``."""

    kind: EventKind
    source: EventSource
    message: str | None = None
    data: Any = None
    metadata: dict[str, Any] | None = None
    guidelines: list[AgentMessageGuidelineDTO] | None = Field(default=None, max_length=ACTIONS_MAX)
    participant: ParticipantDTO | None = None
    status: SessionStatus | None = None


def combination_problem(p: EventCreationParams) -> str | None:
    """Why this kind/source/field combination cannot be posted, or None."""
    if p.guidelines and not (p.kind is EventKind.MESSAGE and p.source is EventSource.AI_AGENT):
        return "'guidelines' apply only to a message from ai_agent (asking the agent to speak)"
    if p.kind is EventKind.TOOL:
        return "tool events are written by the engine; post message, custom or status events"
    if p.kind is not EventKind.MESSAGE and (p.message is not None or p.participant is not None):
        return "'message' and 'participant' apply only to message events"
    if p.kind is not EventKind.STATUS and p.status is not None:
        return "'status' applies only to status events"
    if p.kind is EventKind.MESSAGE:
        if p.source is EventSource.AI_AGENT:
            if p.message is not None or p.data is not None or p.participant is not None:
                return (
                    "the agent writes its own message: leave 'message', 'data' and "
                    "'participant' out, and say what it should do in 'guidelines'"
                )
            return None
        if p.source not in (*CUSTOMER_SOURCES, *HUMAN_SOURCES):
            return (
                "a message's source must be customer, human_agent or "
                "human_agent_on_behalf_of_ai_agent"
            )
        if p.message is None or not p.message.strip():
            return "a message event needs a non-empty 'message'"
        if p.data is not None:
            return "a message event takes its text in 'message', not in 'data'"
    if p.kind is EventKind.CUSTOM and p.data is None:
        return "a custom event needs 'data'"
    if p.kind is EventKind.STATUS:
        if p.status is None:
            return "a status event needs 'status'"
        if p.status is SessionStatus.CANCELLED:
            return (
                "cancelling a turn through the API is not supported yet; a newer customer "
                "message cancels a turn that has not replied"
            )
        if p.data is not None and not isinstance(p.data, dict):
            return "a status event's 'data' must be a JSON object"
    return None


async def _participant(runtime: Runtime, entity: type[Agent | Customer], id: str) -> dict[str, Any]:
    found = await runtime.store.find(entity, id)
    return {"id": id, "display_name": found.name} if found else {"id": id}


@router.post(
    "/{session_id}/events",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(allow(*EVERYONE, Role.GUEST))],
    responses={
        404: {"description": "Session not found"},
        413: {"description": "Message over the size limit"},
        422: {"description": "Unsupported kind, source or field combination"},
    },
)
async def create_event(
    session: OwnedSessionRef,
    params: EventCreationParams,
    request: Request,
    runtime: RuntimeDep,
    moderation: Annotated[
        ModerationMode,
        Query(
            description="How a customer message is checked: auto (the content check), paranoid "
            "(and the jailbreak check) or none; ignored for other events"
        ),
    ] = ModerationMode.NONE,
) -> EventDTO:
    """Post an event. A customer message is acknowledged at once and starts the agent's turn;
    follow its progress with ``GET .../events?min_offset=<offset+1>&wait_for_data=<s>``.
    Human-agent messages and status events are appended without a turn (staff only); custom
    events too (customers and guests may post them from ``customer_ui``).

    ``moderation`` checks a customer message first: its data then says ``flagged`` and
    ``tags``, and its turn refuses it, hands the session to a person or answers with care
    (docs/moderation.md). A check that fails lets the message through.
    """
    if problem := combination_problem(params):
        raise ValidationError(problem, loc=("body",))
    session_id = session.id
    principal = caller(request)
    if params.kind is EventKind.MESSAGE and params.source in CUSTOMER_SOURCES:
        assert params.message is not None
        if params.participant is not None and not is_staff(principal):
            raise ForbiddenError(
                "the server names the customer of a message; leave participant out"
            )
        await _count_customer_message(runtime, session)
        participant = (
            params.participant.model_dump(exclude_none=True)
            if params.participant
            else await _participant(runtime, Customer, session.customer_id)
        )
        event = await runtime.engine.post_customer_message(
            session_id,
            params.message,
            source=params.source,
            participant=participant,
            metadata=params.metadata,
            moderation=moderation,
        )
        return shown(event, principal)
    if not (params.kind is EventKind.CUSTOM and params.source in CUSTOMER_SOURCES):
        require(request, STAFF)
    if params.kind is EventKind.MESSAGE and params.source is EventSource.AI_AGENT:
        return event_dto(await ask_agent(runtime, session_id, params.guidelines or []))
    data: Any = params.data
    if params.kind is EventKind.MESSAGE:
        assert params.message is not None
        limit = runtime.settings.max_message_chars
        if len(params.message) > limit:
            raise PayloadTooLargeError(
                f"the message has {len(params.message)} characters; the limit is {limit}"
            )
        if params.source is EventSource.HUMAN_AGENT:
            who = await human_participant(runtime, session_id, params.participant)
        else:
            who = await _participant(runtime, Agent, session.agent_id)
        data = {"message": params.message, "participant": who}
    elif params.kind is EventKind.STATUS:
        assert params.status is not None
        data = {"status": params.status.value, "data": params.data or {}}
    event = await runtime.engine.timeline.append(
        session_id, params.kind, params.source, data, metadata=params.metadata
    )
    return event_dto(event)


async def _count_customer_message(runtime: Runtime, session: SessionRef) -> None:
    """Customer messages are rate-limited per session and per customer (the shared guest
    customer is limited per session only), whoever posts them."""
    limiter, settings = RateLimiter(runtime.store), runtime.settings
    await limiter.hit(
        f"session:{session.id}", settings.rate_messages_per_session, "messages in this session"
    )
    if session.customer_id != GUEST_CUSTOMER_ID:
        await limiter.hit(
            f"customer:{session.customer_id}",
            settings.rate_messages_per_customer,
            "messages from this customer",
        )


def parse_kinds(kinds: str | None) -> list[EventKind] | None:
    """Parlant sends kinds comma-separated: ``message,status``."""
    if not kinds:
        return None
    parsed = []
    for name in (k.strip(" ") for k in kinds.split(",")):
        if not name:
            continue
        try:
            parsed.append(EventKind(name))
        except ValueError:
            allowed = ", ".join(k.value for k in EventKind)
            raise ValidationError(
                f"unknown event kind {name!r}; use {allowed}", loc=("query", "kinds")
            ) from None
    return parsed or None


@router.get(
    "/{session_id}/events",
    response_model=list[EventDTO],
    dependencies=[Depends(allow(*EVERYONE, Role.GUEST))],
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Events (JSON, or SSE)",
            "headers": PAGE_HEADERS,
        },
        404: {"description": "Session not found"},
        504: {"description": "No matching event within wait_for_data seconds"},
    },
)
async def list_events(
    session: OwnedSessionRef,
    request: Request,
    runtime: RuntimeDep,
    response: Response,
    min_offset: Annotated[int, offset_query("Only events from this offset on")] = 0,
    source: Annotated[EventSource | None, Query(description="Only events from this source")] = None,
    trace_id: Annotated[str | None, Query(description="Only events of this turn")] = None,
    correlation_id: Annotated[str | None, Query(description="Alias of trace_id (Parlant)")] = None,
    kinds: Annotated[
        str | None,
        # In the spec only: parse_kinds refuses the same values with a clearer message.
        Query(
            description="Comma-separated: message,status,...", json_schema_extra={"pattern": KINDS}
        ),
    ] = None,
    wait_for_data: Annotated[
        float, seconds_query("Seconds to wait for a first matching event")
    ] = DEFAULT_WAIT_S,
    sse: Annotated[bool, Query(description="Stream events as Server-Sent Events")] = False,
    limit: Annotated[
        int,
        page_size_query(
            f"Most events in one answer (default {DEFAULT_PAGE}, at most {PAGE_MAX}); "
            "SSE sends every event, reading this many at a time"
        ),
    ] = DEFAULT_PAGE,
) -> list[EventDTO] | StreamingResponse:
    """Events in offset order, filtered, ``limit`` at a time: the ``Tactful-Has-More: true``
    header says more follow (ask again from the last offset + 1).

    Long-poll: with ``wait_for_data`` > 0 the request returns as soon as a matching event exists
    and answers 504 if none arrives in time (``wait_for_data=0`` answers at once, maybe with an
    empty list). The wait is capped by the server's ``long_poll_max_s``.

    SSE (``sse=true``): ``text/event-stream``, one ``data: <event JSON>`` per matching event,
    pushed as it is appended; the stream closes after ``wait_for_data`` seconds without one.

    Customers and guests see their timeline without tool events.
    """
    if trace_id and correlation_id and trace_id != correlation_id:
        raise ValidationError(
            "trace_id and correlation_id differ; give one of them", loc=("query", "correlation_id")
        )
    trace_id = trace_id or correlation_id or None
    session_id = session.id
    principal = caller(request)
    kind_list = parse_kinds(kinds)
    if not is_staff(principal):
        kind_list = [k for k in kind_list or EventKind if k is not EventKind.TOOL]
        if not kind_list:
            return _page(response, [], limit, principal)
    wait = min(wait_for_data, runtime.settings.long_poll_max_s)
    if sse:
        stream = stream_events(
            runtime,
            session_id,
            min_offset=min_offset,
            kinds=kind_list,
            source=source,
            trace_id=trace_id,
            idle_timeout=wait,
            principal=principal,
            page=limit,
        )
        return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)
    if wait == 0:
        found = await runtime.store.list_events(
            session_id,
            min_offset=min_offset,
            kinds=kind_list,
            source=source,
            trace_id=trace_id,
            limit=limit + 1,
        )
        return _page(response, found, limit, principal)
    try:
        found = await wait_for_events(
            runtime.store,
            runtime.bus,
            session_id,
            min_offset=min_offset,
            kinds=kind_list,
            source=source,
            trace_id=trace_id,
            timeout=wait,
            limit=limit + 1,
            recent=runtime.engine.timeline.recent,
        )
    except TimeoutError:
        raise HTTPException(
            status.HTTP_504_GATEWAY_TIMEOUT,
            f"no matching event from offset {min_offset} within {wait:g} s; ask again",
        ) from None
    return _page(response, found, limit, principal)


def _page(
    response: Response, found: list[Event], limit: int, principal: Principal | None
) -> list[EventDTO]:
    """The first ``limit`` events (``limit + 1`` were read), saying whether more follow."""
    response.headers[HAS_MORE_HEADER] = "true" if len(found) > limit else "false"
    return [shown(e, principal) for e in found[:limit]]


@router.delete(
    "/{session_id}/events",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Session not found"}},
)
async def delete_events(
    session_id: str,
    runtime: RuntimeDep,
    min_offset: Annotated[int, offset_query("Delete events from this offset on")],
) -> Response:
    """Mark the events from ``min_offset`` on as deleted; they no longer appear in listings."""
    await runtime.store.get(Session, session_id)
    await runtime.store.delete_events(session_id, min_offset=min_offset)
    # Waiters (and the events kept for them, in every process) learn the timeline changed.
    runtime.bus.publish(session_id, -1)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{session_id}/events/{event_id}",
    response_model=EventDTO,
    dependencies=[Depends(allow(*EVERYONE, Role.GUEST))],
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event (JSON, or SSE)"},
        404: {"description": "Session or event not found"},
    },
)
async def read_event(
    session: OwnedSessionRef,
    event_id: str,
    request: Request,
    runtime: RuntimeDep,
    wait_for_completion: Annotated[
        bool, Query(description="Wait until a streamed message is complete")
    ] = False,
    wait_for_data: Annotated[
        float, seconds_query("Seconds to wait for the next piece of a stream")
    ] = DEFAULT_WAIT_S,
    sse: Annotated[
        bool, Query(description="Send the event as it grows, as Server-Sent Events")
    ] = False,
) -> EventDTO | StreamingResponse:
    """One event. A message being streamed carries ``chunks`` (ending with null once it is
    complete) and the text so far in ``message``. ``wait_for_completion`` answers when it is
    complete (or when no new piece came for ``wait_for_data`` seconds, with what there is);
    ``sse`` sends the event, then again each time it grows, and closes when it is complete.
    Other events are always complete."""
    session_id = session.id
    principal = caller(request)
    event = await runtime.store.get_event(session_id, event_id)
    if not visible(event, principal):
        raise NotFoundError("Event", event_id)
    wait = min(wait_for_data, runtime.settings.long_poll_max_s)
    if sse:

        async def states() -> AsyncIterator[str]:
            async for state in until_complete(runtime, session_id, event, wait):
                yield f"data: {shown(state, principal).model_dump_json()}\n\n"

        return StreamingResponse(states(), media_type="text/event-stream", headers=SSE_HEADERS)
    if wait_for_completion:
        async for state in until_complete(runtime, session_id, event, wait):
            event = state
    return shown(event, principal)
