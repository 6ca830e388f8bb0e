"""``/audit``: who changed which definition, when, and to what (our addition, admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from tactful.api.auth import Role, allow
from tactful.api.runtime import RuntimeDep
from tactful.domain import AuditEntry

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", dependencies=[Depends(allow(Role.ADMIN))])
async def list_audit(
    runtime: RuntimeDep,
    kind: Annotated[
        str | None, Query(max_length=64, description="Only this collection, e.g. guidelines")
    ] = None,
    entity_id: Annotated[
        str | None, Query(max_length=128, description="Only changes to this definition")
    ] = None,
    before: Annotated[
        int | None,
        Query(ge=1, le=2**31 - 1, description="Only entries older than this id (the next page)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size")] = 100,
) -> list[AuditEntry]:
    """Changes to definitions (agents, guidelines, relationships, journeys, canned responses,
    terms, variables, tags, services, tools, keys), newest first. ``actor`` is who made the
    change: ``key:<id> (<name>)`` over REST, ``cli:...`` from the command line, ``sdk`` from
    code in the server's process, ``development`` in development mode."""
    return await runtime.store.list_audit(
        limit=limit, before=before, kind=kind, entity_id=entity_id
    )
