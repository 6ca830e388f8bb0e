"""``/customers``: who agents talk to (Parlant 3.3 shapes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, Field

from tactful.api.auth import STAFF, allow, session_changed
from tactful.api.pagination import ordered, paginate
from tactful.api.params import (
    JSON_INTEGER,
    Params,
    SortDirection,
    TagsUpdate,
    add_and_remove,
    page_size_query,
)
from tactful.api.references import check_tags, delete_sessions
from tactful.api.runtime import RuntimeDep
from tactful.definitions.deletion import forget_values
from tactful.domain import GUEST_CUSTOMER_ID, Customer, Session
from tactful.errors import ValidationError
from tactful.security import tokens

router = APIRouter(prefix="/customers", tags=["customers"])


class CustomerDTO(BaseModel):
    """A customer, as Parlant's ``Customer``."""

    id: str
    creation_utc: datetime
    name: str
    metadata: dict[str, str]
    tags: list[str]


class PaginatedCustomers(BaseModel):
    """One page of customers (when ``limit`` is given)."""

    items: list[CustomerDTO]
    total_count: int
    has_more: bool
    next_cursor: str | None = None


class CustomerCreationParams(Params):
    name: str = Field(min_length=1, max_length=200)
    id: str | None = Field(default=None, min_length=1, max_length=128, description="Custom id")
    metadata: dict[str, str] | None = None
    tags: list[str] | None = Field(default=None, description="Tag ids")


class CustomerMetadataUpdate(Params):
    set: dict[str, str] | None = None
    unset: list[str] | None = None


class CustomerUpdateParams(Params):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: CustomerMetadataUpdate | None = None
    tags: TagsUpdate | None = None


def customer_dto(c: Customer) -> CustomerDTO:
    return CustomerDTO(
        id=c.id, creation_utc=c.creation_utc, name=c.name, metadata=c.metadata, tags=c.tags
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "A tag was not found"}, 409: {"description": "Id taken"}},
)
async def create_customer(params: CustomerCreationParams, runtime: RuntimeDep) -> CustomerDTO:
    """Create a customer with a name, optional metadata (``str: str``) and tag ids."""
    tags = await check_tags(runtime.store, params.tags or [], agent_tags=False)
    customer = Customer(
        name=params.name,
        metadata=params.metadata or {},
        tags=tags,
        **({"id": params.id} if params.id else {}),
    )
    return customer_dto(await runtime.store.create(customer))


@router.get("", dependencies=[Depends(allow(*STAFF))])
async def list_customers(
    runtime: RuntimeDep,
    limit: Annotated[int | None, page_size_query()] = None,
    cursor: Annotated[str | None, Query(description="From a previous page")] = None,
    sort: Annotated[SortDirection | None, Query(description="By creation time")] = None,
) -> PaginatedCustomers | list[CustomerDTO]:
    """All customers; with ``limit``, one page of them (``PaginatedCustomers``)."""
    customers = await runtime.store.list(Customer)
    if limit is None:
        return [customer_dto(c) for c in ordered(customers, sort)]
    page = paginate(customers, limit=limit, cursor=cursor, sort=sort)
    return PaginatedCustomers(
        items=[customer_dto(c) for c in page.items],
        total_count=page.total_count,
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@router.get(
    "/{customer_id}",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Customer not found"}},
)
async def read_customer(customer_id: str, runtime: RuntimeDep) -> CustomerDTO:
    """One customer."""
    return customer_dto(await runtime.store.get(Customer, customer_id))


@router.patch(
    "/{customer_id}",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Customer or tag not found"}},
)
async def update_customer(
    customer_id: str, params: CustomerUpdateParams, runtime: RuntimeDep
) -> CustomerDTO:
    """Change the name, set or unset metadata keys, add or remove tags."""
    customer = await runtime.store.get(Customer, customer_id)
    changes: dict[str, object] = {}
    if params.name is not None:
        changes["name"] = params.name
    if params.metadata is not None:
        metadata = {**customer.metadata, **(params.metadata.set or {})}
        for key in params.metadata.unset or []:
            metadata.pop(key, None)
        changes["metadata"] = metadata
    if params.tags is not None:
        added = await check_tags(runtime.store, params.tags.add or [], agent_tags=False)
        changes["tags"] = add_and_remove(customer.tags, added, params.tags.remove)
    updated = Customer.model_validate({**customer.model_dump(), **changes})
    return customer_dto(await runtime.store.update(updated))


@router.delete(
    "/{customer_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Customer not found"}},
)
async def delete_customer(customer_id: str, runtime: RuntimeDep) -> Response:
    """Delete a customer **and their sessions** (with their events and traces)."""
    await runtime.store.get(Customer, customer_id)
    async with runtime.store.transaction():
        sessions = await runtime.store.list(Session, customer_id=customer_id)
        await delete_sessions(runtime.store, sessions)
        await forget_values(runtime.store, customer_id)
        await runtime.store.delete(Customer, customer_id)
    for s in sessions:
        session_changed(runtime, s.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class TokenCreationParams(Params):
    expires_in: Annotated[int, Field(ge=60, le=365 * 24 * 3600), JSON_INTEGER] = Field(
        default=3600,
        description="Seconds until the token expires (at most the server's "
        "customer_token_max_ttl_s)",
    )


class CustomerTokenDTO(BaseModel):
    """A customer token (ours): send it as ``Authorization: Bearer <token>``."""

    token: str
    customer_id: str
    expires_utc: datetime


@router.post(
    "/{customer_id}/tokens",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(allow(*STAFF))],
    responses={
        404: {"description": "Customer not found"},
        422: {"description": "The guest customer, or an expiry over the server's maximum"},
    },
)
async def create_customer_token(
    customer_id: str, params: TokenCreationParams, runtime: RuntimeDep
) -> CustomerTokenDTO:
    """Mint a token for one customer (our addition): it may start sessions for that customer,
    read their events (long-poll and SSE), post their messages and custom events, and nothing
    else. Tokens cannot be revoked one by one: keep them short."""
    customer = await runtime.store.get(Customer, customer_id)
    if customer.id == GUEST_CUSTOMER_ID:
        raise ValidationError(
            "the guest customer is shared by every anonymous visitor: mint tokens for named "
            "customers only"
        )
    settings = runtime.settings
    if params.expires_in > settings.customer_token_max_ttl_s:
        raise ValidationError(
            f"expires_in is over this server's maximum of {settings.customer_token_max_ttl_s} s "
            "(customer_token_max_ttl_s)"
        )
    minted = tokens.mint(tokens.signing_secret(settings), customer.id, params.expires_in)
    return CustomerTokenDTO(
        token=minted.token, customer_id=minted.customer_id, expires_utc=minted.expires_utc
    )
