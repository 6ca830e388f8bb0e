"""``/keys``: API keys of back ends (operators) and of the people who define agents (admins).

Our addition. A key's token is shown once, when it is created; tactful keeps only its digest.
The same operations exist on the command line: ``tactful keys create|list|revoke``.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, Field

from tactful.api.auth import Role, allow, caller
from tactful.api.params import Params
from tactful.api.runtime import RuntimeDep
from tactful.domain import ApiKey, KeyRole
from tactful.security.keys import create_key, get_key, list_keys, revoke_key

router = APIRouter(prefix="/keys", tags=["keys"])


class ApiKeyDTO(BaseModel):
    """A key, without its secret."""

    id: str
    name: str
    role: KeyRole
    creation_utc: datetime
    created_by: str
    revoked_utc: datetime | None = None


class IssuedKeyDTO(ApiKeyDTO):
    """A key just created, with the token to send as ``Authorization: Bearer``: shown once."""

    key: str


class KeyCreationParams(Params):
    name: str = Field(min_length=1, max_length=200, description="Who holds it, e.g. 'bff'")
    role: KeyRole = Field(description="admin or operator")


def key_dto(key: ApiKey) -> ApiKeyDTO:
    return ApiKeyDTO(
        id=key.id,
        name=key.name,
        role=key.role,
        creation_utc=key.creation_utc,
        created_by=key.created_by,
        revoked_utc=key.revoked_utc,
    )


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[Depends(allow(Role.ADMIN))])
async def create_api_key(
    params: KeyCreationParams, request: Request, runtime: RuntimeDep
) -> IssuedKeyDTO:
    """Create a key. Its ``key`` is in this response only: store it now."""
    principal = caller(request)
    issued = await create_key(
        runtime.store, params.name, params.role, principal.id if principal else "anonymous"
    )
    return IssuedKeyDTO(**key_dto(issued.key).model_dump(), key=issued.token)


@router.get("", dependencies=[Depends(allow(Role.ADMIN))])
async def list_api_keys(runtime: RuntimeDep) -> list[ApiKeyDTO]:
    """Every key, revoked ones included, without their secrets."""
    return [key_dto(k) for k in await list_keys(runtime.store)]


@router.get(
    "/{key_id}",
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Key not found"}},
)
async def read_api_key(key_id: str, runtime: RuntimeDep) -> ApiKeyDTO:
    """One key, without its secret."""
    return key_dto(await get_key(runtime.store, key_id))


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Key not found"}},
)
async def revoke_api_key(key_id: str, runtime: RuntimeDep) -> Response:
    """Revoke a key at once, in every server process; it stays listed as revoked."""
    await get_key(runtime.store, key_id)
    await revoke_key(runtime.store, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
