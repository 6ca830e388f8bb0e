"""Tools and tool services: what makes a tool callable in this process and known to the store.

- ``register_tools``: ``@tactful.tool`` functions become callable through the process's
  ``ToolRegistry`` and their specs are stored (``Server.register_tools``, and every SDK
  definition that is given tool functions);
- ``add_service``: an in-process ``ToolService`` (``Server.add_service``); its configuration is
  the program's, so only its tools' specs are stored;
- ``put_service`` / ``delete_service``: a stored service (MCP over HTTP, OpenAPI;
  ``PUT``/``DELETE /services/{name}``), reconnected when tactful starts. It is connected and its
  tools listed before anything is stored: one that cannot be reached writes nothing.

A stored spec is what makes a tool id known to definitions (``references.check_tool``). Specs
stay stored when their service is deleted: definitions naming the tools keep their ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tactful.domain import ToolServiceConfig, ToolSpec
from tactful.errors import ConflictError, NotFoundError, ValidationError
from tactful.store.base import Store
from tactful.tools.base import ToolService
from tactful.tools.python import PythonTool, register_python
from tactful.tools.registry import ToolRegistry
from tactful.tools.services import open_service


def service_key(name: str) -> str:
    """The key a stored service is kept under: one per name."""
    return f"service:{name}"


def tool_ids(tools: Iterable[Any]) -> list[str]:
    """Tool ids from strings (``service:name``) or objects carrying a ``tool_id``."""
    ids = []
    for t in tools:
        tid = t if isinstance(t, str) else getattr(t, "tool_id", None)
        if not isinstance(tid, str) or not tid:
            raise ValidationError(
                f"{t!r} is not a tool: pass a tool id or a @tactful.tool function"
            )
        ids.append(tid)
    return ids


async def register_tools(store: Store, registry: ToolRegistry, tools: Iterable[Any]) -> list[str]:
    """The ids of ``tools``; the ``@tactful.tool`` functions among them are registered in
    ``registry`` and their specs stored. Strings are taken as ids of tools registered otherwise
    (e.g. an MCP service's). Raises ``ValidationError`` for something that is not a tool."""
    tools = list(tools)
    ids = tool_ids(tools)
    specs = [register_python(registry, t).spec for t in tools if isinstance(t, PythonTool)]
    if specs:
        async with store.transaction():
            for spec in specs:
                await store.upsert(spec)
    return ids


async def add_service(store: Store, registry: ToolRegistry, service: ToolService) -> list[ToolSpec]:
    """Connect ``service`` in ``registry`` (where its ``outbound_hosts`` allow: else
    ``OutboundRefused``, before it connects) and store its tools' specs."""
    registered = await registry.register_service(service)
    async with store.transaction():
        for r in registered:
            await store.upsert(r.spec)
    return [r.spec for r in registered]


async def get_service(store: Store, name: str) -> ToolServiceConfig:
    """The stored service named ``name``. Raises ``NotFoundError``."""
    found = await store.list(ToolServiceConfig, name=name)
    if not found:
        raise NotFoundError("Service", name)
    return found[0]


def code_service_conflict(name: str) -> ConflictError:
    return ConflictError(
        f"tool service {name!r} is defined in code (Python) on this server: it cannot be "
        "replaced or deleted over the API; change the code that registers it"
    )


async def code_services(store: Store, registry: ToolRegistry) -> list[ToolService]:
    """The services this process serves that are not stored: defined in code (``@tactful.tool``
    functions, ``Server.add_service``), in registration order."""
    stored = {c.name for c in await store.list(ToolServiceConfig)}
    return [s for s in registry.services() if s.name not in stored]


async def put_service(
    store: Store, registry: ToolRegistry, config: ToolServiceConfig
) -> ToolServiceConfig:
    """Connect the service ``config`` describes, then store it with its tools' specs, replacing
    the stored one of that name (which is disconnected first). Raises ``ValidationError`` when
    it cannot be reached (nothing is stored), ``ConflictError`` when a service not stored (one
    defined in code) has that name."""
    if await store.list(ToolServiceConfig, name=config.name):
        await registry.remove_service(config.name)
    elif registry.service(config.name) is not None:
        raise code_service_conflict(config.name)
    specs = await open_service(registry, config)
    async with store.transaction():
        for spec in specs:
            await store.upsert(spec)
        stored, _ = await store.upsert(config, key=service_key(config.name))
    return stored


async def delete_service(store: Store, registry: ToolRegistry, name: str) -> None:
    """Forget the stored service ``name`` and disconnect it. Raises ``NotFoundError``, and
    ``ConflictError`` for a service defined in code."""
    async with store.transaction():
        if not await store.list(ToolServiceConfig, name=name) and registry.service(name):
            raise code_service_conflict(name)
        config = await get_service(store, name)
        await store.delete(ToolServiceConfig, config.id)
    await registry.remove_service(name)


async def known_tools(store: Store, tools: ToolRegistry) -> set[str]:
    """Ids of the tools registered in this process or stored (``Runtime.known_tools``): those
    definitions may name."""
    known = {s.id for s in tools.specs()}
    known.update(s.id for s in await store.list(ToolSpec))
    return known
