"""``/capabilities``: what an agent can do for a customer, offered when relevant to a turn."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, Field, StringConstraints

from tactful.api.auth import STAFF, Role, allow
from tactful.api.params import Params, TagsUpdate
from tactful.api.runtime import RuntimeDep
from tactful.definitions import capabilities, deletion
from tactful.domain import Capability

router = APIRouter(prefix="/capabilities", tags=["capabilities"])

Signal = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Signals = Annotated[list[Signal], Field(max_length=100)]


class CapabilityDTO(BaseModel):
    """A capability, as Parlant's ``Capability``."""

    id: str
    title: str
    description: str
    signals: list[str]
    tags: list[str]
    creation_utc: datetime


class CapabilityCreationParams(Params):
    title: str = Field(min_length=1, max_length=100, examples=["Replace a broken phone"])
    description: str = Field(min_length=1, max_length=4000)
    signals: Signals | None = Field(
        default=None, description="What a customer says when they need it", examples=[["it broke"]]
    )
    tags: list[str] | None = Field(default=None, description="Tag ids or agent:<agent id>")
    id: str | None = Field(default=None, min_length=1, max_length=128, description="Custom id")


class CapabilityUpdateParams(Params):
    title: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, min_length=1, max_length=4000)
    signals: Signals | None = Field(default=None, description="Replaces the signals")
    tags: TagsUpdate | None = None


def capability_dto(c: Capability) -> CapabilityDTO:
    return CapabilityDTO(
        id=c.id,
        title=c.title,
        description=c.description,
        signals=c.signals,
        tags=c.tags,
        creation_utc=c.creation_utc,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={
        404: {"description": "A tag or agent was not found"},
        409: {"description": "Id taken"},
    },
)
async def create_capability(params: CapabilityCreationParams, runtime: RuntimeDep) -> CapabilityDTO:
    """Create a capability. Tag it ``agent:<agent id>`` to make it one agent's; untagged, every
    agent has it."""
    capability = Capability(
        title=params.title,
        description=params.description,
        signals=params.signals or [],
        tags=params.tags or [],
        **({"id": params.id} if params.id else {}),
    )
    return capability_dto(await capabilities.create_capability(runtime.store, capability))


@router.get("", dependencies=[Depends(allow(*STAFF))])
async def list_capabilities(
    runtime: RuntimeDep,
    tag_id: Annotated[str | None, Query(description="Only capabilities with this tag")] = None,
) -> list[CapabilityDTO]:
    """Every capability (or those carrying ``tag_id``), in creation order."""
    found = await runtime.store.list(Capability)
    return [capability_dto(c) for c in found if tag_id is None or tag_id in c.tags]


@router.get(
    "/{capability_id}",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Capability not found"}},
)
async def read_capability(capability_id: str, runtime: RuntimeDep) -> CapabilityDTO:
    """One capability."""
    return capability_dto(await runtime.store.get(Capability, capability_id))


@router.patch(
    "/{capability_id}",
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Capability or tag not found"}},
)
async def update_capability(
    capability_id: str, params: CapabilityUpdateParams, runtime: RuntimeDep
) -> CapabilityDTO:
    """Change the given attributes; tags are added and removed by id."""
    capability = await runtime.store.get(Capability, capability_id)
    changes = params.model_dump(exclude_none=True, exclude={"tags"})
    if params.tags is not None:
        changes["tags"] = params.tags.apply(capability.tags)
    updated = await capabilities.update_capability(runtime.store, capability_id, changes)
    return capability_dto(updated)


@router.delete(
    "/{capability_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Capability not found"}},
)
async def delete_capability(capability_id: str, runtime: RuntimeDep) -> Response:
    """Delete a capability."""
    await runtime.store.get(Capability, capability_id)
    async with runtime.store.transaction():
        await deletion.delete_capability(runtime.store, capability_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
