"""``/context-variables``: values the agent knows per customer, per tag or globally.

A value's key is a customer id, ``tag:<tag id>`` or ``DEFAULT`` (everyone), as in Parlant 3.3.
A variable with a ``tool_id`` gets its customers' values from that tool, refreshed when its
``freshness_rules`` (a cron expression) ticked since the value was written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, Field, field_validator

from tactful.api.auth import STAFF, Role, allow
from tactful.api.guidelines import ToolIdDTO
from tactful.api.params import Params, TagsUpdate
from tactful.api.references import check_tags, ensure_guest, split_tool_id
from tactful.api.runtime import RuntimeDep
from tactful.definitions import variables
from tactful.domain import GUEST_CUSTOMER_ID, ContextVariable, ContextVariableValue, Customer
from tactful.domain.variables import GLOBAL_KEY, tag_id_of_key
from tactful.engine.variables import (
    check_freshness_rules,
    read_value,
    write_value,
)
from tactful.errors import NotFoundError, ValidationError
from tactful.store.base import Store

router = APIRouter(prefix="/context-variables", tags=["context variables"])

FRESHNESS_DESCRIPTION = (
    "Cron expression: when a tick passed since a customer's value was written, the tool is "
    "called again (e.g. '*/5 * * * *': at most once per five minutes)"
)


class ContextVariableDTO(BaseModel):
    """A context variable, as Parlant's ``ContextVariable``."""

    id: str
    name: str
    description: str | None = None
    tool_id: ToolIdDTO | None = None
    freshness_rules: str | None = None
    tags: list[str]


class ContextVariableValueDTO(BaseModel):
    """One stored value, as Parlant's ``ContextVariableValue``."""

    id: str
    last_modified: datetime
    data: Any = None


class ContextVariableReadResult(BaseModel):
    context_variable: ContextVariableDTO
    key_value_pairs: dict[str, ContextVariableValueDTO | None] | None = None


def _valid_rules(value: str | None) -> str | None:
    try:
        return check_freshness_rules(value)
    except ValidationError as e:
        raise ValueError(str(e)) from None


class ContextVariableCreationParams(Params):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    tool_id: ToolIdDTO | None = None
    freshness_rules: str | None = Field(default=None, description=FRESHNESS_DESCRIPTION)
    tags: list[str] | None = Field(default=None, description="Tag ids or agent:<agent id>")
    id: str | None = Field(default=None, min_length=1, max_length=128, description="Custom id")

    _rules = field_validator("freshness_rules")(_valid_rules)


class ContextVariableUpdateParams(Params):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    tool_id: ToolIdDTO | None = Field(default=None, description="null removes the tool")
    freshness_rules: str | None = Field(
        default=None, description=FRESHNESS_DESCRIPTION + "; null removes the rule"
    )
    tags: TagsUpdate | None = None

    _rules = field_validator("freshness_rules")(_valid_rules)


class ContextVariableValueUpdateParams(Params):
    data: Any = None


def variable_dto(v: ContextVariable) -> ContextVariableDTO:
    tool = None
    if v.tool_id:
        service, name = split_tool_id(v.tool_id)
        tool = ToolIdDTO(service_name=service, tool_name=name)
    return ContextVariableDTO(
        id=v.id,
        name=v.name,
        description=v.description,
        tool_id=tool,
        freshness_rules=v.freshness_rules,
        tags=v.tags,
    )


def value_dto(v: ContextVariableValue) -> ContextVariableValueDTO:
    return ContextVariableValueDTO(id=v.id, last_modified=v.last_modified, data=v.data)


def _tool_id(tool: ToolIdDTO | None) -> str | None:
    return None if tool is None else f"{tool.service_name}:{tool.tool_name}"


async def _check_key(store: Store, key: str) -> None:
    """A value's key must name an existing customer or tag, or be ``DEFAULT``."""
    if key == GLOBAL_KEY:
        return
    tag_id = tag_id_of_key(key)
    if tag_id is not None:
        await check_tags(store, [tag_id], agent_tags=False)
    elif key == GUEST_CUSTOMER_ID:
        await ensure_guest(store)
    elif await store.find(Customer, key) is None:
        raise NotFoundError("Customer", key)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={
        404: {"description": "A tag, agent or tool was not found"},
        409: {"description": "Id taken"},
    },
)
async def create_context_variable(
    params: ContextVariableCreationParams, runtime: RuntimeDep
) -> ContextVariableDTO:
    """Create a variable. Tag it ``agent:<agent id>`` to scope it to one agent."""
    variable = ContextVariable(
        name=params.name,
        description=params.description or "",
        tool_id=_tool_id(params.tool_id),
        freshness_rules=params.freshness_rules,
        tags=params.tags or [],
        **({"id": params.id} if params.id else {}),
    )
    return variable_dto(await variables.create_variable(runtime.store, variable))


@router.get("", dependencies=[Depends(allow(*STAFF))])
async def list_context_variables(
    runtime: RuntimeDep,
    tag_id: Annotated[str | None, Query(description="Only variables with this tag")] = None,
) -> list[ContextVariableDTO]:
    """Every variable (or those carrying ``tag_id``), in creation order."""
    variables = await runtime.store.list(ContextVariable)
    return [variable_dto(v) for v in variables if tag_id is None or tag_id in v.tags]


@router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(Role.ADMIN))],
)
async def delete_context_variables(
    runtime: RuntimeDep,
    tag_id: Annotated[str | None, Query(description="Only variables with this tag")] = None,
) -> Response:
    """Delete the variables carrying ``tag_id`` (every variable without it), with their values."""
    await variables.delete_variables(runtime.store, tag_id=tag_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{variable_id}",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Context variable not found"}},
)
async def read_context_variable(
    variable_id: str,
    runtime: RuntimeDep,
    include_values: Annotated[
        bool, Query(description="Include every value, by key (customer id, tag:<id>, DEFAULT)")
    ] = True,
) -> ContextVariableReadResult:
    """One variable, with its values by key."""
    store = runtime.store
    variable = await store.get(ContextVariable, variable_id)
    pairs: dict[str, ContextVariableValueDTO | None] | None = None
    if include_values:
        values = await store.list(ContextVariableValue, variable_id=variable_id)
        pairs = {v.key: value_dto(v) for v in values}
    return ContextVariableReadResult(context_variable=variable_dto(variable), key_value_pairs=pairs)


@router.patch(
    "/{variable_id}",
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Context variable, tag or tool not found"}},
)
async def update_context_variable(
    variable_id: str, params: ContextVariableUpdateParams, runtime: RuntimeDep
) -> ContextVariableDTO:
    """Change the given attributes; tags are added and removed by id. An explicit null
    ``tool_id`` or ``freshness_rules`` removes it."""
    given = params.model_fields_set
    changes: dict[str, Any] = {}
    if params.name is not None:
        changes["name"] = params.name
    if "description" in given:
        changes["description"] = params.description or ""
    if "tool_id" in given:
        changes["tool_id"] = _tool_id(params.tool_id)
    if "freshness_rules" in given:
        changes["freshness_rules"] = params.freshness_rules
    tags = params.tags or TagsUpdate()
    updated = await variables.update_variable(
        runtime.store, variable_id, changes, add_tags=tags.add or [], remove_tags=tags.remove or []
    )
    return variable_dto(updated)


@router.delete(
    "/{variable_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Context variable not found"}},
)
async def delete_context_variable(variable_id: str, runtime: RuntimeDep) -> Response:
    """Delete a variable and its values."""
    await variables.delete_variable(runtime.store, variable_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{variable_id}/{key}",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Context variable or value not found"}},
)
async def read_context_variable_value(
    variable_id: str, key: str, runtime: RuntimeDep
) -> ContextVariableValueDTO:
    """The value stored at ``key`` (exactly: no fallback to tags or ``DEFAULT``)."""
    store = runtime.store
    await store.get(ContextVariable, variable_id)
    value = await read_value(store, variable_id, key)
    if value is None:
        raise NotFoundError("Context variable value", f"{variable_id}/{key}")
    return value_dto(value)


@router.put(
    "/{variable_id}/{key}",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Context variable, customer or tag not found"}},
)
async def set_context_variable_value(
    variable_id: str,
    key: str,
    params: ContextVariableValueUpdateParams,
    runtime: RuntimeDep,
) -> ContextVariableValueDTO:
    """Set the value at ``key``: a customer id, ``tag:<tag id>`` or ``DEFAULT``."""
    store = runtime.store
    await store.get(ContextVariable, variable_id)
    await _check_key(store, key)
    return value_dto(await write_value(store, variable_id, key, params.data))


@router.delete(
    "/{variable_id}/{key}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Context variable or value not found"}},
)
async def delete_context_variable_value(
    variable_id: str, key: str, runtime: RuntimeDep
) -> Response:
    """Delete the value at ``key``."""
    store = runtime.store
    await store.get(ContextVariable, variable_id)
    value = await read_value(store, variable_id, key)
    if value is None:
        raise NotFoundError("Context variable value", f"{variable_id}/{key}")
    await store.delete(ContextVariableValue, value.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
