"""``/sessions/{id}/handoff``: a session handed to a person, taken by an operator, given back
to the queue, returned to the agent (our extension; docs/handoff.md).

Parlant's ``PATCH /sessions/{id}`` with ``mode`` does the first and the last too. The queue is
``GET /sessions?mode=manual&assigned=false``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from tactful.api.auth import STAFF, allow, caller
from tactful.api.params import Params
from tactful.api.runtime import RuntimeDep
from tactful.api.sessions import SessionDTO, session_dto
from tactful.domain import Operator
from tactful.domain.handoff import REASON_MAX

router = APIRouter(prefix="/sessions", tags=["handoff"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Session not found"}}


class HandoffParams(Params):
    reason: str = Field(
        default="", max_length=REASON_MAX, description="Why a person should take it"
    )


class OperatorParams(Params):
    """The person taking the session; by default, the caller's credential names them."""

    id: str | None = Field(default=None, min_length=1, max_length=200)
    display_name: str | None = Field(default=None, min_length=1, max_length=200)


def _by(request: Request) -> str:
    principal = caller(request)
    return principal.id if principal is not None else ""


@router.post("/{session_id}/handoff", dependencies=[Depends(allow(*STAFF))], responses=NOT_FOUND)
async def hand_off(
    session_id: str, params: HandoffParams, request: Request, runtime: RuntimeDep
) -> SessionDTO:
    """Hand the session to a person: manual mode (the agent stays silent), with a ``handoff``
    saying why and since when, and a ``requested`` event on the timeline. A session already
    in manual mode is left as it is."""
    handoffs = runtime.engine.handoffs
    return session_dto(await handoffs.hand_off(session_id, reason=params.reason, by=_by(request)))


@router.delete("/{session_id}/handoff", dependencies=[Depends(allow(*STAFF))], responses=NOT_FOUND)
async def return_to_agent(session_id: str, request: Request, runtime: RuntimeDep) -> SessionDTO:
    """Return the session to the agent: automatic mode, a ``returned`` event on the timeline;
    the agent answers the customer's next message."""
    return session_dto(await runtime.engine.handoffs.return_to_agent(session_id, by=_by(request)))


@router.put(
    "/{session_id}/handoff/assignee", dependencies=[Depends(allow(*STAFF))], responses=NOT_FOUND
)
async def take(
    session_id: str, params: OperatorParams, request: Request, runtime: RuntimeDep
) -> SessionDTO:
    """An operator takes the session (a ``taken`` event): from the queue, from another
    operator, or from the agent (a session in automatic mode is handed off first). Without an
    ``id`` the caller's credential names the operator."""
    by = _by(request)
    operator_id = params.id or by
    operator = Operator(id=operator_id, display_name=params.display_name or operator_id)
    return session_dto(await runtime.engine.handoffs.assign(session_id, operator, by=by))


@router.delete(
    "/{session_id}/handoff/assignee", dependencies=[Depends(allow(*STAFF))], responses=NOT_FOUND
)
async def release(session_id: str, request: Request, runtime: RuntimeDep) -> SessionDTO:
    """The operator gives the session back to the queue (a ``released`` event); it stays in
    manual mode, waiting for a person."""
    return session_dto(await runtime.engine.handoffs.release(session_id, by=_by(request)))
