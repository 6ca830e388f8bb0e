"""``/guidelines``: when a condition holds, the agent follows the action (Parlant 3.3 shapes).

Our extensions: ``canned_responses`` (ids of canned responses the guideline prefers; the
offline tier answers only with these) and ``examples`` (customer utterances that help
retrieval find the guideline).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, Field

from tactful.api.auth import STAFF, Role, allow
from tactful.api.params import (
    Flag,
    Int32,
    LabelsUpdate,
    MetadataUpdate,
    Params,
    TagsUpdate,
    add_and_remove,
)
from tactful.api.references import split_tool_id
from tactful.api.runtime import RuntimeDep
from tactful.api.tags import TagDTO, tag_dto
from tactful.definitions import deletion, guidelines
from tactful.domain import (
    CompositionMode,
    Criticality,
    Endpoint,
    EndpointKind,
    Guideline,
    Relationship,
    RelationshipKind,
    Tag,
    ToolSpec,
)
from tactful.store.base import Store

router = APIRouter(prefix="/guidelines", tags=["guidelines"])


class GuidelineDTO(BaseModel):
    """A guideline, as Parlant's ``Guideline``."""

    id: str
    condition: str
    action: str | None = None
    description: str | None = None
    criticality: Criticality
    enabled: bool
    tags: list[str]
    metadata: dict[str, Any]
    composition_mode: CompositionMode | None = None
    labels: list[str]
    priority: int
    canned_responses: list[str]
    examples: list[str]
    always: bool
    always_check: bool | None = None
    about_reply: bool | None = None
    creation_utc: datetime


class ToolIdDTO(Params):
    service_name: str = Field(min_length=1)
    tool_name: str = Field(min_length=1)


class ToolParameterDTO(BaseModel):
    type: str
    description: str | None = None
    enum: list[Any] | None = None


class ToolDTO(BaseModel):
    """A tool, as Parlant's ``Tool``."""

    creation_utc: datetime
    name: str
    description: str
    parameters: dict[str, ToolParameterDTO]
    required: list[str]


class GuidelineToolAssociationDTO(BaseModel):
    id: str
    guideline_id: str
    tool_id: ToolIdDTO


class RelationshipDTO(BaseModel):
    """A relationship, as Parlant's ``Relationship``: one source and one target are set."""

    id: str
    kind: RelationshipKind
    source_guideline: GuidelineDTO | None = None
    source_tag: TagDTO | None = None
    source_tool: ToolDTO | None = None
    target_guideline: GuidelineDTO | None = None
    target_tag: TagDTO | None = None
    target_tool: ToolDTO | None = None


class GuidelineWithRelationshipsAndToolAssociations(BaseModel):
    guideline: GuidelineDTO
    relationships: list[RelationshipDTO]
    tool_associations: list[GuidelineToolAssociationDTO]


class GuidelineCreationParams(Params):
    condition: str = Field(min_length=1, max_length=4000)
    action: str | None = Field(default=None, min_length=1, max_length=4000)
    id: str | None = Field(default=None, min_length=1, max_length=128, description="Custom id")
    description: str | None = None
    criticality: Criticality | None = None
    metadata: dict[str, Any] | None = None
    enabled: Flag | None = None
    tags: list[str] | None = Field(default=None, description="Tag ids or agent:<agent id>")
    composition_mode: CompositionMode | None = None
    track: Flag | None = Field(default=None, description="Accepted for Parlant; ignored")
    labels: list[str] | None = None
    priority: Int32 | None = None
    canned_responses: list[str] | None = Field(default=None, description="Canned response ids")
    examples: list[str] | None = Field(default=None, description="Customer utterances")
    always: Flag | None = Field(default=None, description="Applies every turn, with no check")
    always_check: Flag | None = Field(
        default=None, description="Always check in detail (true), or never force it (false)"
    )
    about_reply: Flag | None = Field(
        default=None,
        description="The condition is about the agent's own reply: checked against the draft "
        "(true), or never (false); unset: recognised from the wording (ours)",
    )


class ToolAssociationsUpdate(Params):
    add: list[ToolIdDTO] | None = None
    remove: list[ToolIdDTO] | None = None


class IdsUpdate(Params):
    add: list[str] | None = None
    remove: list[str] | None = None


class GuidelineUpdateParams(Params):
    condition: str | None = Field(default=None, min_length=1, max_length=4000)
    action: str | None = Field(default=None, min_length=1, max_length=4000)
    description: str | None = None
    criticality: Criticality | None = None
    tool_associations: ToolAssociationsUpdate | None = None
    enabled: Flag | None = None
    tags: TagsUpdate | None = None
    metadata: MetadataUpdate | None = None
    composition_mode: CompositionMode | None = None
    labels: LabelsUpdate | None = None
    priority: Int32 | None = None
    canned_responses: IdsUpdate | None = None
    examples: list[str] | None = None
    always: Flag | None = None
    always_check: Flag | None = None
    about_reply: Flag | None = None


def guideline_dto(g: Guideline) -> GuidelineDTO:
    return GuidelineDTO(
        id=g.id,
        condition=g.condition,
        action=g.action,
        description=g.description,
        criticality=g.criticality,
        enabled=g.enabled,
        tags=g.tags,
        metadata=g.metadata,
        composition_mode=g.composition_mode,
        labels=g.labels,
        priority=g.priority,
        canned_responses=g.canned_responses,
        examples=g.examples,
        always=g.always,
        always_check=g.always_check,
        about_reply=g.about_reply,
        creation_utc=g.creation_utc,
    )


def tool_dto(spec: ToolSpec) -> ToolDTO:
    properties: dict[str, Any] = spec.parameters.get("properties", {})
    parameters = {}
    for name, schema in properties.items():
        kind = schema.get("type", "string")
        parameters[name] = ToolParameterDTO(
            type=kind[0] if isinstance(kind, list) and kind else str(kind),
            description=schema.get("description"),
            enum=schema.get("enum"),
        )
    return ToolDTO(
        creation_utc=spec.creation_utc,
        name=spec.name,
        description=spec.description,
        parameters=parameters,
        required=spec.required,
    )


async def _endpoint(store: Store, end: Endpoint) -> GuidelineDTO | TagDTO | ToolDTO | None:
    if end.kind is EndpointKind.GUIDELINE:
        g = await store.find(Guideline, end.id)
        return guideline_dto(g) if g else None
    if end.kind is EndpointKind.TAG:
        t = await store.find(Tag, end.id)
        return tag_dto(t) if t else None
    service, name = split_tool_id(end.id)
    found = await store.list(ToolSpec, service_name=service, name=name)
    return tool_dto(found[0]) if found else None


async def with_relationships(
    store: Store, g: Guideline
) -> GuidelineWithRelationshipsAndToolAssociations:
    """The guideline, the relationships it is an end of, and the tools it makes available."""
    relationships = []
    for r in await store.list(Relationship):
        if g.id not in {e.id for e in (r.source, r.target) if e.kind is EndpointKind.GUIDELINE}:
            continue
        source, target = await _endpoint(store, r.source), await _endpoint(store, r.target)
        if source is None or target is None:
            continue  # an end was deleted; the relationship means nothing now
        ends: dict[str, Any] = {
            f"source_{r.source.kind.value}": source,
            f"target_{r.target.kind.value}": target,
        }
        relationships.append(RelationshipDTO(id=r.id, kind=r.kind, **ends))
    associations = []
    for tool in g.tools:
        service, name = split_tool_id(tool)
        associations.append(
            GuidelineToolAssociationDTO(
                id=f"{g.id}:{tool}",
                guideline_id=g.id,
                tool_id=ToolIdDTO(service_name=service, tool_name=name),
            )
        )
    return GuidelineWithRelationshipsAndToolAssociations(
        guideline=guideline_dto(g), relationships=relationships, tool_associations=associations
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={
        404: {"description": "A tag, agent or canned response was not found"},
        409: {"description": "Id taken"},
    },
)
async def create_guideline(params: GuidelineCreationParams, runtime: RuntimeDep) -> GuidelineDTO:
    """Create a guideline (without ``action``: an observation).

    Tag it ``agent:<agent id>`` to scope it to one agent; untagged guidelines apply to all.
    """
    values = params.model_dump(exclude_none=True, exclude={"track"})
    return guideline_dto(await guidelines.create_guideline(runtime.store, Guideline(**values)))


@router.get("", dependencies=[Depends(allow(*STAFF))])
async def list_guidelines(
    runtime: RuntimeDep,
    tag_id: Annotated[str | None, Query(description="Only guidelines with this tag")] = None,
) -> list[GuidelineDTO]:
    """Every guideline (or those carrying ``tag_id``), in creation order."""
    stored = await runtime.store.list(Guideline)
    return [guideline_dto(g) for g in stored if tag_id is None or tag_id in g.tags]


@router.get(
    "/{guideline_id}",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Guideline not found"}},
)
async def read_guideline(
    guideline_id: str, runtime: RuntimeDep
) -> GuidelineWithRelationshipsAndToolAssociations:
    """One guideline with its relationships and tool associations."""
    g = await runtime.store.get(Guideline, guideline_id)
    return await with_relationships(runtime.store, g)


@router.patch(
    "/{guideline_id}",
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Guideline, tag, tool or canned response not found"}},
)
async def update_guideline(
    guideline_id: str, params: GuidelineUpdateParams, runtime: RuntimeDep
) -> GuidelineWithRelationshipsAndToolAssociations:
    """Change the given attributes; tags, labels, metadata, tools and canned responses are
    added and removed item by item."""
    store = runtime.store
    g = await store.get(Guideline, guideline_id)
    changes: dict[str, Any] = params.model_dump(
        exclude_none=True,
        exclude={"tool_associations", "tags", "metadata", "labels", "canned_responses"},
    )
    if params.tags is not None:
        changes["tags"] = params.tags.apply(g.tags)
    if params.metadata is not None:
        changes["metadata"] = params.metadata.apply(g.metadata)
    if params.labels is not None:
        changes["labels"] = params.labels.apply(g.labels)
    if params.canned_responses is not None:
        update = params.canned_responses
        changes["canned_responses"] = add_and_remove(g.canned_responses, update.add, update.remove)
    if params.tool_associations is not None:
        add = [f"{t.service_name}:{t.tool_name}" for t in params.tool_associations.add or []]
        remove = [f"{t.service_name}:{t.tool_name}" for t in params.tool_associations.remove or []]
        changes["tools"] = add_and_remove(g.tools, add, remove)
    updated = await guidelines.update_guideline(store, guideline_id, changes)
    return await with_relationships(store, updated)


@router.delete(
    "/{guideline_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Guideline not found"}},
)
async def delete_guideline(guideline_id: str, runtime: RuntimeDep) -> Response:
    """Delete a guideline and the relationships it is an end of."""
    await runtime.store.get(Guideline, guideline_id)
    async with runtime.store.transaction():
        await deletion.delete_guideline(runtime.store, guideline_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
