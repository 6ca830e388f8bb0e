"""Traces (our extension): why the agent said what it said, one record per turn.

The record is ``tactful.domain.Trace`` as stored: retrieval candidates with scores, match
verdicts with rationales, the composition decision, model calls and stage timings. A turn's
trace is stored when the turn ends; its id is the ``trace_id`` of the turn's events.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from tactful.api.auth import STAFF, allow
from tactful.api.runtime import RuntimeDep
from tactful.domain import Session, Trace

router = APIRouter(tags=["traces"])


@router.get(
    "/sessions/{session_id}/traces",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Session not found"}},
)
async def list_traces(session_id: str, runtime: RuntimeDep) -> list[Trace]:
    """The traces of a session's finished turns, oldest first."""
    await runtime.store.get(Session, session_id)
    return await runtime.store.list(Trace, session_id=session_id)


@router.get(
    "/traces/{trace_id}",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Trace not found (or its turn is still running)"}},
)
async def read_trace(trace_id: str, runtime: RuntimeDep) -> Trace:
    """One turn's trace, by the ``trace_id`` its events carry."""
    return await runtime.store.get(Trace, trace_id)
