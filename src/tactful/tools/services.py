"""Tool services that outlive a process: built from their stored configuration."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from tactful.domain import ToolServiceConfig, ToolServiceKind, ToolSpec
from tactful.errors import ValidationError
from tactful.store.base import Store
from tactful.tools.base import ToolError, ToolService
from tactful.tools.outbound import OutboundRefused
from tactful.tools.registry import ToolRegistry

log = logging.getLogger("tactful.tools")


def build_service(config: ToolServiceConfig) -> ToolService:
    """The service a stored configuration describes (MCP over HTTP, or OpenAPI)."""
    if not config.url.startswith(("http://", "https://")):
        raise ValidationError(f"the url of service {config.name!r} must start with http(s)://")
    if config.kind is ToolServiceKind.MCP:
        # Imported here: the MCP SDK takes a moment to import and most agents never need it.
        from tactful.tools.mcp import MCPService

        return MCPService.http(config.name, config.url)
    if config.kind is ToolServiceKind.OPENAPI:
        from tactful.tools.openapi import OpenAPIService

        if not config.source:
            raise ValidationError("an OpenAPI service needs the 'source' of its specification")
        return OpenAPIService(config.name, spec_url=config.source, base_url=config.url)
    raise ValidationError(
        f"services of kind {config.kind.value!r} are not supported: use mcp or openapi, or "
        "@tactful.tool functions in the SDK"
    )


async def open_service(registry: ToolRegistry, config: ToolServiceConfig) -> list[ToolSpec]:
    """Connect a service and register its tools in ``registry``; returns their specs (storing
    them is the caller's). Raises ``ValidationError`` with the service's own words when it
    cannot be reached or understood, and ``OutboundRefused`` (a ``ValidationError``) when
    ``outbound_hosts`` does not allow its URLs (then nothing connected)."""
    service = build_service(config)
    try:
        registered = await registry.register_service(service)
    except OutboundRefused:
        await service.close()
        raise
    except (ToolError, ValueError) as e:
        await service.close()
        raise ValidationError(f"cannot use service {config.name!r}: {e}") from e
    return [r.spec for r in registered]


async def connect(
    registry: ToolRegistry, store: Store, config: ToolServiceConfig
) -> list[ToolSpec]:
    """Connect a service (``open_service``) and store its tools' specs."""
    specs = await open_service(registry, config)
    async with store.transaction():
        for spec in specs:
            await store.upsert(spec)
    return specs


async def reconnect_all(
    registry: ToolRegistry, store: Store, configs: Sequence[ToolServiceConfig]
) -> None:
    """At start-up, in the background: services stored earlier come back; one that is down is
    logged and its tools fail with a clear error until it is registered again."""
    for config in configs:
        try:
            await connect(registry, store, config)
        except Exception as e:
            log.warning("tool service %r is not available: %s", config.name, e)
