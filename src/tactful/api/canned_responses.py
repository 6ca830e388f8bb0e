"""``/canned_responses``: exact reply templates (Jinja2 ``{{field}}``), Parlant 3.3 shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, Field

from tactful.api.auth import STAFF, Role, allow
from tactful.api.params import MetadataUpdate, Params, TagsUpdate
from tactful.api.runtime import RuntimeDep
from tactful.definitions import canned, deletion
from tactful.domain import CannedResponse, CannedResponseField

router = APIRouter(prefix="/canned_responses", tags=["canned responses"])


class CannedResponseFieldDTO(Params):
    name: str = Field(min_length=1)
    description: str = ""
    examples: list[str] = Field(default_factory=list)


class CannedResponseDTO(BaseModel):
    """A canned response, as Parlant's ``CannedResponse``."""

    id: str
    creation_utc: datetime
    value: str
    fields: list[CannedResponseFieldDTO]
    tags: list[str]
    signals: list[str]
    metadata: dict[str, Any]
    field_dependencies: list[str]


class CannedResponseCreationParams(Params):
    value: str = Field(min_length=1, max_length=8000, description="The template")
    fields: list[CannedResponseFieldDTO] | None = None
    tags: list[str] | None = Field(default=None, description="Tag ids or agent:<agent id>")
    signals: list[str] | None = Field(default=None, description="Phrases that help matching")
    metadata: dict[str, Any] | None = None
    field_dependencies: list[str] | None = None


class CannedResponseUpdateParams(Params):
    value: str | None = Field(default=None, min_length=1, max_length=8000)
    fields: list[CannedResponseFieldDTO] | None = Field(default=None, description="Replaces all")
    tags: TagsUpdate | None = None
    metadata: MetadataUpdate | None = None
    signals: list[str] | None = Field(default=None, description="Replaces all (ours)")


def canned_response_dto(c: CannedResponse) -> CannedResponseDTO:
    return CannedResponseDTO(
        id=c.id,
        creation_utc=c.creation_utc,
        value=c.value,
        fields=[CannedResponseFieldDTO(**f.model_dump()) for f in c.fields],
        tags=c.tags,
        signals=c.signals,
        metadata=c.metadata,
        field_dependencies=c.field_dependencies,
    )


def _fields(fields: list[CannedResponseFieldDTO]) -> list[CannedResponseField]:
    return [CannedResponseField(**f.model_dump()) for f in fields]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={
        404: {"description": "A tag or agent was not found"},
        422: {"description": "Invalid template"},
    },
)
async def create_canned_response(
    params: CannedResponseCreationParams, runtime: RuntimeDep
) -> CannedResponseDTO:
    """Create a canned response. ``value`` is a Jinja2 template such as
    ``Hello {{customer_name}}``; a template whose fields are missing in a turn is not used.
    One that does not compile is refused (422), with the message the SDK raises."""
    response = CannedResponse(
        value=params.value,
        fields=_fields(params.fields or []),
        tags=params.tags or [],
        signals=params.signals or [],
        metadata=params.metadata or {},
        field_dependencies=params.field_dependencies or [],
    )
    return canned_response_dto(await canned.create_canned_response(runtime.store, response))


@router.get("", dependencies=[Depends(allow(*STAFF))])
async def list_canned_responses(
    runtime: RuntimeDep,
    # A list, not "list or null": a query string has no null (and the spec says so).
    tags: Annotated[tuple[str, ...], Query(description="Only those with any of these tags")] = (),
) -> list[CannedResponseDTO]:
    """Every canned response (or those carrying one of ``tags``), in creation order."""
    wanted = set(tags)
    return [
        canned_response_dto(c)
        for c in await runtime.store.list(CannedResponse)
        if not wanted or wanted & set(c.tags)
    ]


@router.get(
    "/{canned_response_id}",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Canned response not found"}},
)
async def read_canned_response(canned_response_id: str, runtime: RuntimeDep) -> CannedResponseDTO:
    """One canned response."""
    return canned_response_dto(await runtime.store.get(CannedResponse, canned_response_id))


@router.patch(
    "/{canned_response_id}",
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Canned response or tag not found"}},
)
async def update_canned_response(
    canned_response_id: str, params: CannedResponseUpdateParams, runtime: RuntimeDep
) -> CannedResponseDTO:
    """Change the template, fields or signals; add or remove tags; set or unset metadata."""
    c = await runtime.store.get(CannedResponse, canned_response_id)
    changes: dict[str, Any] = params.model_dump(
        exclude_none=True, exclude={"fields", "tags", "metadata"}
    )
    if params.fields is not None:
        changes["fields"] = _fields(params.fields)
    if params.tags is not None:
        changes["tags"] = params.tags.apply(c.tags)
    if params.metadata is not None:
        changes["metadata"] = params.metadata.apply(c.metadata)
    updated = await canned.update_canned_response(runtime.store, canned_response_id, changes)
    return canned_response_dto(updated)


@router.delete(
    "/{canned_response_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Canned response not found"}},
)
async def delete_canned_response(canned_response_id: str, runtime: RuntimeDep) -> Response:
    """Delete a canned response; guidelines that preferred it forget it."""
    await runtime.store.get(CannedResponse, canned_response_id)
    async with runtime.store.transaction():
        await deletion.delete_canned_response(runtime.store, canned_response_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
