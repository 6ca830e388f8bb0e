"""``/relationships``: how guidelines, tags and tools bear on each other (Parlant 3.3 shapes).

A relationship has exactly one source (``source_guideline``, ``source_tag`` or
``source_tool``) and one target; a tag end stands for every guideline carrying the tag
(``agent:<agent id>`` is a tag too). Responses embed the full ends, as Parlant's do.

Our extensions: the kinds ``dependency_any`` (the source is active only if ANY of its
``dependency_any`` targets is) and ``exclusion`` (source and target are never active
together). Entailment, priority and dependency relationships may not form a cycle: creating
one that would is refused with 422, naming the cycle. Creating a relationship that exists
(same kind, source and target) answers the stored one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import Field

from tactful.api.auth import STAFF, Role, allow
from tactful.api.guidelines import (
    GuidelineDTO,
    RelationshipDTO,
    ToolDTO,
    ToolIdDTO,
    guideline_dto,
    tool_dto,
)
from tactful.api.params import Params
from tactful.api.references import split_tool_id
from tactful.api.runtime import RuntimeDep
from tactful.api.tags import TagDTO, tag_dto
from tactful.definitions import deletion
from tactful.definitions.ends import check_end
from tactful.definitions.relationships import relate
from tactful.domain import (
    Agent,
    Endpoint,
    EndpointKind,
    Guideline,
    Journey,
    Relationship,
    RelationshipKind,
    Tag,
    ToolSpec,
    agent_id_of_tag,
)
from tactful.errors import NotFoundError, ValidationError
from tactful.store.base import Store

router = APIRouter(prefix="/relationships", tags=["relationships"])


class RelationshipCreationParams(Params):
    """Exactly one ``source_*`` and one ``target_*``."""

    source_guideline: str | None = Field(default=None, description="Guideline id")
    source_tag: str | None = Field(default=None, description="Tag id or agent:<agent id>")
    source_tool: ToolIdDTO | None = None
    target_guideline: str | None = Field(default=None, description="Guideline id")
    target_tag: str | None = Field(default=None, description="Tag id or agent:<agent id>")
    target_tool: ToolIdDTO | None = None
    kind: RelationshipKind


def _end(side: str, guideline: str | None, tag: str | None, tool: ToolIdDTO | None) -> Endpoint:
    given = [
        end
        for end in (
            Endpoint.guideline(guideline) if guideline is not None else None,
            Endpoint.tag(tag) if tag is not None else None,
            Endpoint.tool(f"{tool.service_name}:{tool.tool_name}") if tool is not None else None,
        )
        if end is not None
    ]
    if len(given) != 1:
        raise ValidationError(
            f"a relationship needs exactly one {side}: give one of {side}_guideline, "
            f"{side}_tag and {side}_tool (got {len(given)})"
        )
    return given[0]


async def _end_dto(store: Store, end: Endpoint) -> GuidelineDTO | TagDTO | ToolDTO | None:
    """The embedded end, or None when it no longer exists."""
    if end.kind is EndpointKind.GUIDELINE:
        g = await store.find(Guideline, end.id)
        return guideline_dto(g) if g else None
    if end.kind is EndpointKind.TAG:
        agent_id = agent_id_of_tag(end.id)
        if agent_id is not None:
            # An agent's tag is named after the agent, as in Parlant.
            agent = await store.find(Agent, agent_id)
            if agent is None:
                return None
            return TagDTO(id=end.id, name=agent.name, creation_utc=agent.creation_utc)
        if end.id.startswith("journey:"):
            journey = await store.find(Journey, end.id.removeprefix("journey:"))
            if journey is None:
                return None
            return TagDTO(id=end.id, name=journey.title, creation_utc=journey.creation_utc)
        t = await store.find(Tag, end.id)
        return tag_dto(t) if t else None
    service, name = split_tool_id(end.id)
    found = await store.list(ToolSpec, service_name=service, name=name)
    return tool_dto(found[0]) if found else None


async def relationship_dto(store: Store, r: Relationship) -> RelationshipDTO | None:
    """The relationship with its ends embedded, or None when an end no longer exists."""
    source, target = await _end_dto(store, r.source), await _end_dto(store, r.target)
    if source is None or target is None:
        return None
    ends: dict[str, Any] = {
        f"source_{r.source.kind.value}": source,
        f"target_{r.target.kind.value}": target,
    }
    return RelationshipDTO(id=r.id, kind=r.kind, **ends)


def _key(end: Endpoint) -> tuple[EndpointKind, str]:
    return end.kind, end.id


def connected(
    relationships: Sequence[Relationship], end: Endpoint, *, indirect: bool
) -> list[Relationship]:
    """The relationships ``end`` is the source or target of; with ``indirect``, also those
    reached by following relationships of the same kind onwards from it and back to it, as
    Parlant does. In the given order."""
    start = _key(end)
    picked = {r.id for r in relationships if start in (_key(r.source), _key(r.target))}
    if indirect:
        for kind in {r.kind for r in relationships}:
            of_kind = [r for r in relationships if r.kind is kind]
            for onwards in (True, False):
                seen = {start}
                queue = deque([start])
                while queue:
                    node = queue.popleft()
                    for r in of_kind:
                        here, there = (r.source, r.target) if onwards else (r.target, r.source)
                        if _key(here) == node:
                            picked.add(r.id)
                            if _key(there) not in seen:
                                seen.add(_key(there))
                                queue.append(_key(there))
    return [r for r in relationships if r.id in picked]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={
        404: {"description": "A guideline, tag or tool was not found"},
        422: {"description": "Not exactly one source and one target, or a cycle"},
    },
)
async def create_relationship(
    params: RelationshipCreationParams, runtime: RuntimeDep
) -> RelationshipDTO:
    """Create a relationship (or answer the existing one with the same kind and ends).

    Cycles of entailment, priority or dependency (``dependency`` and ``dependency_any``
    together) are refused with 422 naming the cycle.
    """
    source = _end("source", params.source_guideline, params.source_tag, params.source_tool)
    target = _end("target", params.target_guideline, params.target_tag, params.target_tool)
    store = runtime.store
    [stored] = await relate(store, params.kind, source, [target])
    dto = await relationship_dto(store, stored)
    assert dto is not None  # both ends were just checked
    return dto


@router.get(
    "",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "The guideline, tag or tool filtered on was not found"}},
)
async def list_relationships(
    runtime: RuntimeDep,
    kind: Annotated[RelationshipKind | None, Query(description="Only this kind")] = None,
    indirect: Annotated[
        bool, Query(description="With an entity: also relationships reached through others")
    ] = True,
    guideline_id: Annotated[
        str | None, Query(description="Relationships of this guideline")
    ] = None,
    tag_id: Annotated[str | None, Query(description="Relationships of this tag")] = None,
    tool_id: Annotated[
        str | None, Query(description="Relationships of this tool (service_name:tool_name)")
    ] = None,
) -> list[RelationshipDTO]:
    """Relationships in creation order: all of them, or those of one guideline, tag or tool."""
    store = runtime.store
    filters = [
        Endpoint(kind=k, id=v)
        for k, v in (
            (EndpointKind.GUIDELINE, guideline_id),
            (EndpointKind.TAG, tag_id),
            (EndpointKind.TOOL, tool_id),
        )
        if v is not None
    ]
    if len(filters) > 1:
        raise ValidationError(
            "filter on at most one of guideline_id, tag_id and tool_id", loc=("query",)
        )
    relationships = await store.list(Relationship)
    if kind is not None:
        relationships = [r for r in relationships if r.kind is kind]
    if filters:
        await check_end(store, filters[0])
        relationships = connected(relationships, filters[0], indirect=indirect)
    dtos = [await relationship_dto(store, r) for r in relationships]
    return [d for d in dtos if d is not None]


@router.get(
    "/{relationship_id}",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Relationship not found"}},
)
async def read_relationship(relationship_id: str, runtime: RuntimeDep) -> RelationshipDTO:
    """One relationship with its ends."""
    r = await runtime.store.get(Relationship, relationship_id)
    dto = await relationship_dto(runtime.store, r)
    if dto is None:
        raise NotFoundError("Relationship", relationship_id)
    return dto


@router.delete(
    "/{relationship_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Relationship not found"}},
)
async def delete_relationship(relationship_id: str, runtime: RuntimeDep) -> Response:
    """Delete a relationship."""
    if not await deletion.delete_relationship(runtime.store, relationship_id):
        raise NotFoundError("Relationship", relationship_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
