"""``/tags``: labels for agents, customers, guidelines and other definitions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, Field

from tactful.api.auth import STAFF, Role, allow
from tactful.api.params import Params
from tactful.api.runtime import RuntimeDep
from tactful.definitions import deletion, tags
from tactful.domain import Tag

router = APIRouter(prefix="/tags", tags=["tags"])


class TagDTO(BaseModel):
    """A tag, as Parlant's ``Tag`` (plus its creation time)."""

    id: str
    name: str
    creation_utc: datetime


class TagCreationParams(Params):
    name: str = Field(min_length=1, max_length=200)


class TagUpdateParams(Params):
    name: str = Field(min_length=1, max_length=200)


def tag_dto(tag: Tag) -> TagDTO:
    return TagDTO(id=tag.id, name=tag.name, creation_utc=tag.creation_utc)


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[Depends(allow(Role.ADMIN))])
async def create_tag(params: TagCreationParams, runtime: RuntimeDep) -> TagDTO:
    """Create a tag."""
    return tag_dto(await tags.create_tag(runtime.store, Tag(name=params.name)))


@router.get("", dependencies=[Depends(allow(*STAFF))])
async def list_tags(
    runtime: RuntimeDep,
    name: Annotated[str | None, Query(description="Only tags with exactly this name")] = None,
) -> list[TagDTO]:
    """Every tag (or those with the given name), in creation order."""
    found = await runtime.store.list(Tag, name=name) if name else await runtime.store.list(Tag)
    return [tag_dto(t) for t in found]


@router.get(
    "/{tag_id}",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Tag not found"}},
)
async def read_tag(tag_id: str, runtime: RuntimeDep) -> TagDTO:
    """One tag."""
    return tag_dto(await runtime.store.get(Tag, tag_id))


@router.patch(
    "/{tag_id}",
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Tag not found"}},
)
async def update_tag(tag_id: str, params: TagUpdateParams, runtime: RuntimeDep) -> TagDTO:
    """Rename a tag (its id, which entities refer to, stays)."""
    return tag_dto(await tags.update_tag(runtime.store, tag_id, {"name": params.name}))


@router.delete(
    "/{tag_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Tag not found"}},
)
async def delete_tag(tag_id: str, runtime: RuntimeDep) -> Response:
    """Delete a tag; it is removed from every entity carrying it, with relationships naming it."""
    await runtime.store.get(Tag, tag_id)
    async with runtime.store.transaction():
        await deletion.delete_tag(runtime.store, tag_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
