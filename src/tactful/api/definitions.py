"""``/definitions``: an agent's definitions as one document (export), what applying a document
would change (plan), applying it in one transaction (apply), the revisions of definitions
(history) and going back to one (rollback). Our addition; ``tactful export|plan|apply|history|
rollback`` are its command line. The document format is docs/definitions.md's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from tactful.api.auth import STAFF, Role, allow
from tactful.api.params import Params
from tactful.api.runtime import RuntimeDep
from tactful.definitions.apply import apply_document, holdings, plan_document, read_document
from tactful.definitions.document import (
    collect,
    to_document,
)
from tactful.definitions.plan import Plan
from tactful.definitions.revisions import RevisionInfo, history, holdings_at, rollback
from tactful.errors import NotFoundError

router = APIRouter(prefix="/definitions", tags=["definitions"])


class DocumentParams(Params):
    document: dict[str, Any] = Field(
        description="One agent's definitions in the file format (docs/definitions.md)"
    )
    summary: str | None = Field(
        default=None, max_length=500, description="What the change is for, kept in history"
    )


class AppliedDTO(BaseModel):
    plan: Plan
    # The revision the changes form; None when nothing changed.
    revision: int | None


class RollbackParams(Params):
    agent_id: str = Field(min_length=1, max_length=128)


@router.get(
    "/agents/{agent_id}",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Agent or revision not found"}},
)
async def export_agent(
    agent_id: str,
    runtime: RuntimeDep,
    revision: Annotated[
        int | None,
        Query(ge=1, le=2**31 - 1, description="As of this revision (default: as it is now)"),
    ] = None,
) -> dict[str, Any]:
    """The agent's definitions as a document: what ``apply`` takes back."""
    store = runtime.store
    held = await (holdings(store) if revision is None else holdings_at(store, revision))
    found = collect(held, agent_id)
    if found is None:
        raise NotFoundError("Agent", agent_id)
    return to_document(found)


@router.post(
    "/plan",
    dependencies=[Depends(allow(*STAFF))],
    responses={422: {"description": "The document's problems, one item each"}},
)
async def plan_definitions(params: DocumentParams, runtime: RuntimeDep) -> Plan:
    """What applying the document would create, update and delete (pruning included); writes
    nothing. Every problem of the document answers 422, one ``detail`` item each."""
    wanted = await read_document(runtime.store, params.document)
    return await plan_document(runtime.store, runtime.engine.tools, wanted)


@router.post(
    "/apply",
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={422: {"description": "The document's problems, one item each"}},
)
async def apply_definitions(params: DocumentParams, runtime: RuntimeDep) -> AppliedDTO:
    """Apply the document in one transaction, as one revision: the agent's stored definitions
    become the document's, and what it no longer has is deleted (the plan said so)."""
    wanted = await read_document(runtime.store, params.document)
    summary = params.summary or f"apply definitions of {wanted.agent.name!r}"
    applied = await apply_document(runtime.store, runtime.engine.tools, wanted, summary=summary)
    return AppliedDTO(plan=applied.plan, revision=applied.revision)


@router.get("/revisions", dependencies=[Depends(allow(Role.ADMIN))])
async def list_revisions(
    runtime: RuntimeDep,
    agent_id: Annotated[
        str | None, Query(max_length=128, description="Only those touching this agent")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many, newest first")] = 50,
) -> list[RevisionInfo]:
    """Revisions of definitions, newest first: who, when, what for, what changed."""
    return await history(runtime.store, agent_id=agent_id, limit=limit)


@router.post(
    "/revisions/{revision_id}/rollback",
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={
        404: {"description": "Revision not found"},
        422: {"description": "The agent did not exist then, or its definitions cannot return"},
    },
)
async def rollback_definitions(
    revision_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    params: RollbackParams,
    runtime: RuntimeDep,
) -> AppliedDTO:
    """Return the agent's definitions to what they were once the revision was made, as a new
    revision (the history keeps everything)."""
    applied = await rollback(
        runtime.store, runtime.engine.tools, revision=revision_id, agent_id=params.agent_id
    )
    return AppliedDTO(plan=applied.plan, revision=applied.revision)
