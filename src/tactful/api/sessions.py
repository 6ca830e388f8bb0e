"""``/sessions``: conversations between an agent and a customer (Parlant 3.3 shapes).

Events live in ``events.py`` and traces in ``traces.py``; they share the ``/sessions`` prefix.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, Field

from tactful.api.auth import (
    EVERYONE,
    STAFF,
    OwnedSession,
    Principal,
    Role,
    allow,
    caller,
    session_changed,
)
from tactful.api.pagination import ordered, paginate
from tactful.api.params import (
    LabelsUpdate,
    MetadataUpdate,
    Offset,
    Params,
    SortDirection,
    page_size_query,
    unique,
)
from tactful.api.references import delete_sessions, ensure_guest
from tactful.api.runtime import RuntimeDep
from tactful.domain import (
    Agent,
    ConsumptionOffsets,
    Customer,
    Handoff,
    Journey,
    JourneyProgress,
    ProactiveKind,
    ProactiveRequest,
    Session,
    SessionMode,
    new_secret_id,
)
from tactful.engine.journeys import JourneyGraph
from tactful.errors import ForbiddenError, UnauthorizedError
from tactful.runtime import Runtime
from tactful.security.limits import RateLimiter
from tactful.store.base import SessionFilter

router = APIRouter(prefix="/sessions", tags=["sessions"])


class ConsumptionOffsetsDTO(Params):
    client: Offset | None = Field(default=None, description="Last offset the client read")


class SessionDTO(BaseModel):
    """A session, as Parlant's ``Session``."""

    id: str
    agent_id: str
    customer_id: str
    creation_utc: datetime
    title: str | None = None
    mode: SessionMode
    consumption_offsets: ConsumptionOffsetsDTO
    metadata: dict[str, Any]
    labels: list[str]
    handoff: Handoff | None = Field(
        default=None,
        description="Our extension, for staff (null for others): in manual mode, why and since "
        "when the session waits for a person, and the operator who took it (docs/handoff.md)",
    )


class SessionUsageDTO(BaseModel):
    """Our extension: what a session's model calls used and cost, over its saved traces."""

    model_calls: int
    prompt_tokens: int = Field(description="Cached prompt tokens included")
    cached_tokens: int
    completion_tokens: int
    cost_usd: float | None = Field(
        description="US dollars of the calls whose model has a price (the model_prices "
        "setting); null when calls were made and none had a price"
    )
    cost_complete: bool = Field(description="Whether every call that reported usage was priced")


class SessionDetailDTO(SessionDTO):
    """A session, as Parlant's ``Session``, and for staff its model usage."""

    usage: SessionUsageDTO | None = Field(
        default=None, description="Our extension, for staff only (absent for others)"
    )


class SessionListing(BaseModel):
    """One page of sessions (when ``limit`` is given)."""

    items: list[SessionDTO]
    total_count: int
    has_more: bool
    next_cursor: str | None = None


class SessionCreationParams(Params):
    agent_id: str = Field(min_length=1)
    customer_id: str | None = Field(
        default=None, description="Defaults to the guest customer (id 'guest')"
    )
    title: str | None = Field(default=None, max_length=500)
    metadata: dict[str, Any] | None = None
    labels: list[str] | None = None


class SessionUpdateParams(Params):
    consumption_offsets: ConsumptionOffsetsDTO | None = None
    title: str | None = Field(default=None, max_length=500)
    mode: SessionMode | None = Field(default=None, description="manual: the agent stays silent")
    customer_id: str | None = None
    agent_id: str | None = None
    metadata: MetadataUpdate | None = None
    labels: LabelsUpdate | None = None


def session_dto(s: Session, *, staff: bool = True) -> SessionDTO:
    """The session; its handoff only for staff (it names operators and internal reasons)."""
    return SessionDTO(
        id=s.id,
        agent_id=s.agent_id,
        customer_id=s.customer_id,
        creation_utc=s.creation_utc,
        title=s.title,
        mode=s.mode,
        consumption_offsets=ConsumptionOffsetsDTO(client=s.consumption_offsets.client),
        metadata=s.metadata,
        labels=s.labels,
        handoff=s.handoff if staff else None,
    )


def _is_staff(request: Request) -> bool:
    principal = caller(request)
    return principal is not None and principal.is_staff


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(allow(*EVERYONE, Role.GUEST))],
    responses={404: {"description": "Agent or customer not found"}},
)
async def create_session(
    params: SessionCreationParams,
    request: Request,
    runtime: RuntimeDep,
    allow_greeting: Annotated[
        bool, Query(description="The agent speaks first: a greeting turn starts at once")
    ] = False,
) -> SessionDTO:
    """Start a session with an agent, for a customer (by default the guest customer). With
    ``allow_greeting`` the agent speaks first, under its guidelines and canned responses (a
    turn without a customer message; it stays silent when nothing applies).

    A customer token starts sessions for its own customer only; without credentials, a
    production server starts a guest session when the agent takes them (``guest_sessions``):
    its id is the only way back into it."""
    store = runtime.store
    agent = await store.get(Agent, params.agent_id)
    principal = caller(request)
    assert principal is not None  # allow() admits no one without a principal here
    guest = False
    if not principal.is_staff:
        if params.metadata or params.labels:
            raise ForbiddenError("only staff set a session's metadata and labels")
        if Role.CUSTOMER in principal.roles:
            if params.customer_id not in (None, principal.customer_id):
                raise ForbiddenError("a customer token starts sessions for its own customer only")
            params = params.model_copy(update={"customer_id": principal.customer_id})
        else:
            await _admit_guest(runtime, request, agent, params)
            guest = True
    if params.customer_id is None:
        customer_id = (await ensure_guest(store)).id
    else:
        customer_id = (await store.get(Customer, params.customer_id)).id
    session = Session(
        agent_id=params.agent_id,
        customer_id=customer_id,
        title=params.title,
        metadata=params.metadata or {},
        labels=unique(params.labels or []),
        guest=guest,
        **({"id": new_secret_id()} if guest else {}),
    )
    created = await store.create(session)
    if allow_greeting:
        await runtime.engine.speak(created.id, ProactiveRequest(kind=ProactiveKind.GREETING))
    return session_dto(created, staff=principal.is_staff)


async def _admit_guest(
    runtime: Runtime, request: Request, agent: Agent, params: SessionCreationParams
) -> None:
    """An anonymous caller may start a guest session: with an agent that takes them, as the
    guest customer, within the per-client rate limit."""
    if not agent.guest_sessions:
        raise UnauthorizedError(
            "this agent takes no guest sessions: send an API key or a customer token "
            "('Authorization: Bearer <credential>')"
        )
    if params.customer_id is not None:
        raise ForbiddenError("a guest session belongs to no named customer: leave customer_id out")
    client = request.client.host if request.client else "unknown"
    await RateLimiter(runtime.store).hit(
        f"guest-sessions:{client}",
        runtime.settings.rate_guest_sessions_per_client,
        "guest sessions from this address",
    )


@router.get("", dependencies=[Depends(allow(*EVERYONE))])
async def list_sessions(
    request: Request,
    runtime: RuntimeDep,
    agent_id: Annotated[str | None, Query(description="Only this agent's sessions")] = None,
    customer_id: Annotated[str | None, Query(description="Only this customer's sessions")] = None,
    # A list, not "list or null": a query string has no null (and the spec says so).
    labels: Annotated[
        tuple[str, ...], Query(description="Only sessions with all these labels")
    ] = (),
    limit: Annotated[int | None, page_size_query()] = None,
    cursor: Annotated[str | None, Query(description="From a previous page")] = None,
    sort: Annotated[SortDirection | None, Query(description="By creation time")] = None,
    mode: Annotated[
        SessionMode | None,
        Query(description="Only sessions in this mode (manual: with a person, or waiting for one)"),
    ] = None,
    assignee_id: Annotated[
        str | None, Query(description="Only sessions this operator took (staff only)")
    ] = None,
    assigned: Annotated[
        bool | None,
        Query(description="Only sessions an operator took (true) or nobody took (false)"),
    ] = None,
) -> SessionListing | list[SessionDTO]:
    """Sessions matching the filters; with ``limit``, one page of them (``SessionListing``).
    A customer token lists its own customer's sessions only. The handoff queue is
    ``mode=manual&assigned=false`` (docs/handoff.md)."""
    principal = caller(request)
    staff = principal is not None and principal.is_staff
    if not staff and (assignee_id is not None or assigned is not None):
        raise ForbiddenError("only staff filter sessions by operator")
    where = SessionFilter(
        agent_id=agent_id,
        customer_id=_own_customer(principal, customer_id),
        mode=mode,
        assignee_id=assignee_id,
        assigned=assigned,
        labels=tuple(labels),
    )
    # Filtered in the query (labels, mode and handoff included), before any paging.
    sessions = await runtime.store.find_sessions(where)
    if limit is None:
        return [session_dto(s, staff=staff) for s in ordered(sessions, sort)]
    page = paginate(sessions, limit=limit, cursor=cursor, sort=sort)
    return SessionListing(
        items=[session_dto(s, staff=staff) for s in page.items],
        total_count=page.total_count,
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


def _own_customer(principal: Principal | None, customer_id: str | None) -> str | None:
    if principal is None or principal.is_staff:
        return customer_id
    if customer_id not in (None, principal.customer_id):
        raise ForbiddenError("a customer token lists its own customer's sessions only")
    return principal.customer_id


@router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(*STAFF))],
)
async def delete_matching_sessions(
    runtime: RuntimeDep,
    agent_id: str | None = None,
    customer_id: str | None = None,
) -> Response:
    """Delete every session matching the filters (all sessions when none is given), with
    their events and traces."""
    async with runtime.store.transaction():
        where = SessionFilter(agent_id=agent_id, customer_id=customer_id)
        sessions = await runtime.store.find_sessions(where)
        await delete_sessions(runtime.store, sessions)
    for s in sessions:
        session_changed(runtime, s.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{session_id}",
    dependencies=[Depends(allow(*EVERYONE, Role.GUEST))],
    responses={404: {"description": "Session not found"}},
    # Customers and guests get no "usage" key at all (every other field is always set).
    response_model_exclude_unset=True,
)
async def read_session(
    session: OwnedSession, request: Request, runtime: RuntimeDep
) -> SessionDetailDTO:
    """One session; for staff, with its model usage (calls, tokens, cost) over its turns."""
    principal = caller(request)
    if principal is None or not principal.is_staff:
        return SessionDetailDTO(**dict(session_dto(session, staff=False)))
    fields = dict(session_dto(session))
    usage = await runtime.store.session_usage(session.id)
    return SessionDetailDTO(**fields, usage=SessionUsageDTO(**usage.model_dump()))


@router.patch(
    "/{session_id}",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Session, agent or customer not found"}},
)
async def update_session(
    session_id: str, params: SessionUpdateParams, request: Request, runtime: RuntimeDep
) -> SessionDTO:
    """Change the title, mode, consumption offsets, agent or customer; set or unset metadata;
    add or remove labels. A change of mode is a handoff step on the timeline (manual: handed
    to a person; auto: returned to the agent; docs/handoff.md)."""
    store = runtime.store
    s = await store.get(Session, session_id)
    changes: dict[str, Any] = {}
    if params.title is not None:
        changes["title"] = params.title
    if params.consumption_offsets is not None and params.consumption_offsets.client is not None:
        changes["consumption_offsets"] = ConsumptionOffsets(
            client=params.consumption_offsets.client
        )
    if params.agent_id is not None:
        changes["agent_id"] = (await store.get(Agent, params.agent_id)).id
    if params.customer_id is not None:
        changes["customer_id"] = (await store.get(Customer, params.customer_id)).id
    if params.metadata is not None:
        changes["metadata"] = params.metadata.apply(s.metadata)
    if params.labels is not None:
        changes["labels"] = params.labels.apply(s.labels)
    updated = Session.model_validate({**s.model_dump(), **changes})
    saved = await store.update(updated) if changes else s
    if (saved.customer_id, saved.agent_id) != (s.customer_id, s.agent_id):
        session_changed(runtime, session_id)  # who may use it changed
    if params.mode is not None:
        # Last, once everything else was found valid: a step of its own on the timeline.
        by = principal.id if (principal := caller(request)) else ""
        saved = await runtime.engine.handoffs.set_mode(
            session_id, params.mode, by=by, reason="set to manual mode (PATCH /sessions)"
        )
    return session_dto(saved)


@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Session not found"}},
)
async def delete_session(session_id: str, runtime: RuntimeDep) -> Response:
    """Delete a session with its events and traces."""
    await delete_sessions(runtime.store, [await runtime.store.get(Session, session_id)])
    session_changed(runtime, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class JourneyRunDTO(BaseModel):
    """Our extension: where a session stands in one journey."""

    journey_id: str
    title: str
    # active, paused (the customer turned to something else), waiting (for a sub-journey),
    # ended.
    status: str
    current_state_id: str | None
    # The current state as people read it: "2 (Ask for the order number)".
    current_state: str | None
    # States entered, oldest first (a backtrack enters a state again).
    path: list[str]
    ended_reason: str | None
    parent_journey_id: str | None
    updated_offset: int


@router.get(
    "/{session_id}/journeys",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Session not found"}},
)
async def list_session_journeys(session_id: str, runtime: RuntimeDep) -> list[JourneyRunDTO]:
    """The journeys this session has entered, and where it stands in each (our extension).
    Journeys deleted since are left out."""
    store = runtime.store
    await store.get(Session, session_id)
    progress = await store.find(JourneyProgress, session_id)
    if progress is None:
        return []
    runs = []
    for run in progress.runs.values():
        journey = await store.find(Journey, run.journey_id)
        if journey is None:
            continue
        graph = JourneyGraph(journey)
        runs.append(
            JourneyRunDTO(
                journey_id=run.journey_id,
                title=journey.title,
                status=run.status.value,
                current_state_id=run.current,
                current_state=graph.label(run.current) if run.current else None,
                path=run.path,
                ended_reason=run.ended_reason,
                parent_journey_id=run.parent_journey_id,
                updated_offset=run.updated_offset,
            )
        )
    return runs
