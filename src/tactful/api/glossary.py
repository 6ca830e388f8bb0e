"""``/terms``: the glossary, words the agent must understand the company's way."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, Field

from tactful.api.auth import STAFF, Role, allow
from tactful.api.params import Params, TagsUpdate
from tactful.api.runtime import RuntimeDep
from tactful.definitions import deletion, glossary
from tactful.domain import Term

router = APIRouter(prefix="/terms", tags=["glossary"])


class TermDTO(BaseModel):
    """A glossary term, as Parlant's ``Term``."""

    id: str
    name: str
    description: str
    synonyms: list[str]
    tags: list[str]
    creation_utc: datetime


class TermCreationParams(Params):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=4000)
    synonyms: list[str] | None = None
    tags: list[str] | None = Field(default=None, description="Tag ids or agent:<agent id>")
    id: str | None = Field(default=None, min_length=1, max_length=128, description="Custom id")


class TermUpdateParams(Params):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, min_length=1, max_length=4000)
    synonyms: list[str] | None = Field(default=None, description="Replaces the synonyms")
    tags: TagsUpdate | None = None


def term_dto(t: Term) -> TermDTO:
    return TermDTO(
        id=t.id,
        name=t.name,
        description=t.description,
        synonyms=t.synonyms,
        tags=t.tags,
        creation_utc=t.creation_utc,
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
async def create_term(params: TermCreationParams, runtime: RuntimeDep) -> TermDTO:
    """Create a term. Tag it ``agent:<agent id>`` to scope it to one agent."""
    term = Term(
        name=params.name,
        description=params.description,
        synonyms=params.synonyms or [],
        tags=params.tags or [],
        **({"id": params.id} if params.id else {}),
    )
    return term_dto(await glossary.create_term(runtime.store, term))


@router.get("", dependencies=[Depends(allow(*STAFF))])
async def list_terms(
    runtime: RuntimeDep,
    tag_id: Annotated[str | None, Query(description="Only terms with this tag")] = None,
) -> list[TermDTO]:
    """Every term (or those carrying ``tag_id``), in creation order."""
    terms = await runtime.store.list(Term)
    return [term_dto(t) for t in terms if tag_id is None or tag_id in t.tags]


@router.get(
    "/{term_id}",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Term not found"}},
)
async def read_term(term_id: str, runtime: RuntimeDep) -> TermDTO:
    """One term."""
    return term_dto(await runtime.store.get(Term, term_id))


@router.patch(
    "/{term_id}",
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Term or tag not found"}},
)
async def update_term(term_id: str, params: TermUpdateParams, runtime: RuntimeDep) -> TermDTO:
    """Change the given attributes; tags are added and removed by id."""
    term = await runtime.store.get(Term, term_id)
    changes = params.model_dump(exclude_none=True, exclude={"tags"})
    if params.tags is not None:
        changes["tags"] = params.tags.apply(term.tags)
    return term_dto(await glossary.update_term(runtime.store, term_id, changes))


@router.delete(
    "/{term_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Term not found"}},
)
async def delete_term(term_id: str, runtime: RuntimeDep) -> Response:
    """Delete a term."""
    await runtime.store.get(Term, term_id)
    async with runtime.store.transaction():
        await deletion.delete_term(runtime.store, term_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
