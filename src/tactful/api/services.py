"""``/services``: tool services (MCP over HTTP, OpenAPI), in Parlant's shapes.

``PUT /services/{name}`` connects the service and lists its tools before anything is stored;
a service that cannot be reached is a 422 naming why, and nothing is written. Stored services
are reconnected in the background when tactful starts.

Services defined in code (``@tactful.tool`` functions, ``Server.add_service``) are listed too,
``read_only``: Python ones as Parlant's ``sdk`` kind (tools written in code) with an empty
``url`` (they run in the server's process). Replacing or deleting one over REST is a 409.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel, Field

from tactful.api.auth import STAFF, Role, allow
from tactful.api.guidelines import ToolDTO, tool_dto
from tactful.api.params import Params
from tactful.api.runtime import RuntimeDep
from tactful.definitions import services
from tactful.domain import ToolServiceConfig, ToolServiceKind
from tactful.errors import NotFoundError, ValidationError
from tactful.runtime import Runtime
from tactful.tools.base import ToolService

router = APIRouter(prefix="/services", tags=["services"])


class ServiceDTO(BaseModel):
    """A tool service, as Parlant's ``Service``; ``tools`` only when reading one service."""

    name: str
    kind: ToolServiceKind
    url: str = Field(description="Empty for a service that runs in the server's process")
    tools: list[ToolDTO] | None = None
    read_only: bool = Field(
        default=False,
        description="Our extension: defined in code on the server (not over the API), so it "
        "cannot be replaced or deleted here",
    )


class UrlParams(Params):
    url: str = Field(min_length=1, description="http:// or https:// URL")


class OpenAPIParams(Params):
    url: str = Field(min_length=1, description="Base URL of the service")
    source: str = Field(min_length=1, description="URL of its OpenAPI specification")


class ServiceUpdateParams(Params):
    """Parlant's ``ServiceUpdateParams``: the kind, and that kind's parameters."""

    kind: ToolServiceKind
    sdk: UrlParams | None = None
    openapi: OpenAPIParams | None = None
    mcp: UrlParams | None = None


def _config(name: str, params: ServiceUpdateParams) -> ToolServiceConfig:
    if params.kind is ToolServiceKind.OPENAPI and params.openapi is not None:
        return ToolServiceConfig(
            name=name, kind=params.kind, url=params.openapi.url, source=params.openapi.source
        )
    if params.kind is ToolServiceKind.MCP and params.mcp is not None:
        return ToolServiceConfig(name=name, kind=params.kind, url=params.mcp.url)
    if params.kind is ToolServiceKind.SDK:
        raise ValidationError(
            "Parlant SDK services are not supported: use an MCP or OpenAPI service, or "
            "@tactful.tool functions in the SDK"
        )
    raise ValidationError(f"a {params.kind.value} service needs its '{params.kind.value}' object")


def _tools(runtime: Runtime, name: str) -> list[ToolDTO]:
    return [tool_dto(s) for s in runtime.engine.tools.specs() if s.service_name == name]


def _dto(runtime: Runtime, config: ToolServiceConfig, *, tools: bool) -> ServiceDTO:
    return ServiceDTO(
        name=config.name,
        kind=config.kind,
        url=config.url,
        tools=_tools(runtime, config.name) if tools else None,
    )


def _code_dto(runtime: Runtime, service: ToolService, *, tools: bool) -> ServiceDTO:
    return ServiceDTO(
        name=service.name,
        kind=service.kind,
        url=service.service_url(),
        tools=_tools(runtime, service.name) if tools else None,
        read_only=True,
    )


@router.put(
    "/{name}",
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={
        409: {"description": "A tool service defined in code has this name"},
        422: {"description": "Bad parameters, or the service cannot be reached"},
    },
)
async def update_service(name: str, params: ServiceUpdateParams, runtime: RuntimeDep) -> ServiceDTO:
    """Add (or replace) a tool service: its operations or tools become tools named
    ``<name>:<tool>`` that guidelines can use."""
    config = _config(name, params)
    stored = await services.put_service(runtime.store, runtime.engine.tools, config)
    return _dto(runtime, stored, tools=True)


@router.get("", dependencies=[Depends(allow(*STAFF))])
async def list_services(runtime: RuntimeDep) -> list[ServiceDTO]:
    """The tool services (without their tools): those stored, then those defined in code on
    this server (``read_only``)."""
    store, registry = runtime.store, runtime.engine.tools
    stored = [_dto(runtime, c, tools=False) for c in await store.list(ToolServiceConfig)]
    code = await services.code_services(store, registry)
    return stored + [_code_dto(runtime, s, tools=False) for s in code]


@router.get(
    "/{name}",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Service not found"}},
)
async def read_service(name: str, runtime: RuntimeDep) -> ServiceDTO:
    """One service with the tools it offers now (none while it is unreachable); a service
    defined in code too."""
    found = await runtime.store.list(ToolServiceConfig, name=name)
    if found:
        return _dto(runtime, found[0], tools=True)
    service = runtime.engine.tools.service(name)
    if service is None:
        raise NotFoundError("Service", name)
    return _code_dto(runtime, service, tools=True)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={
        404: {"description": "Service not found"},
        409: {"description": "The service is defined in code"},
    },
)
async def delete_service(name: str, runtime: RuntimeDep) -> Response:
    """Disconnect and forget a stored service; guidelines that name its tools keep the ids.
    One defined in code cannot be deleted here (409)."""
    await services.delete_service(runtime.store, runtime.engine.tools, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
