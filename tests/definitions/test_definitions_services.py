"""Tools and tool services through the definitions layer (``definitions.services``): what
``Server.register_tools``, ``Server.add_service`` and ``PUT``/``DELETE /services/{name}`` do."""

from __future__ import annotations

import pytest

import tactful
import tactful.tools.services
from tactful.definitions import services
from tactful.definitions.apply import apply_document, plan_document
from tactful.definitions.document import from_document
from tactful.domain import ToolServiceConfig, ToolServiceKind, ToolSpec
from tactful.errors import ConflictError, NotFoundError, ValidationError
from tactful.store.base import Store
from tactful.tools import PythonToolService, ToolRegistry


@tactful.tool
async def add(context: tactful.ToolContext, a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@tactful.tool(service="crm")
async def search(context: tactful.ToolContext, query: str) -> list[str]:
    """Search the customers."""
    return [query]


@pytest.fixture
def store(server: tactful.Server) -> Store:
    return server.runtime.store


@pytest.fixture
def registry(server: tactful.Server) -> ToolRegistry:
    return server.runtime.engine.tools


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[ToolServiceConfig]:
    """Stored services connect to an in-process stand-in (the ``crm`` tools) instead of the
    network; the configurations connected, in order."""
    connected: list[ToolServiceConfig] = []

    def build(config: ToolServiceConfig) -> PythonToolService:
        connected.append(config)
        return PythonToolService(config.name, [search])

    monkeypatch.setattr(tactful.tools.services, "build_service", build)
    return connected


def _crm(url: str) -> ToolServiceConfig:
    return ToolServiceConfig(name="crm", kind=ToolServiceKind.MCP, url=url)


def test_tool_ids_come_from_ids_or_tool_functions() -> None:
    assert services.tool_ids([add, "crm:search"]) == ["local:add", "crm:search"]
    with pytest.raises(ValidationError, match="is not a tool"):
        services.tool_ids([object()])


async def test_register_tools_serves_functions_and_stores_their_specs(
    store: Store, registry: ToolRegistry
) -> None:
    ids = await services.register_tools(store, registry, [add, "crm:search"])
    assert ids == ["local:add", "crm:search"]
    assert "local:add" in registry and "crm:search" not in registry
    assert [s.id for s in await store.list(ToolSpec)] == ["local:add"]
    # Again: nothing changes.
    assert await services.register_tools(store, registry, [add]) == ["local:add"]
    assert len(await store.list(ToolSpec)) == 1


async def test_add_service_stores_its_tools_specs_and_no_configuration(
    store: Store, registry: ToolRegistry
) -> None:
    specs = await services.add_service(store, registry, PythonToolService("crm", [search]))
    assert [s.id for s in specs] == ["crm:search"]
    assert "crm:search" in registry
    assert [s.id for s in await store.list(ToolSpec)] == ["crm:search"]
    assert await store.list(ToolServiceConfig) == []


async def test_put_connects_then_stores_and_replaces_the_service_of_that_name(
    store: Store, registry: ToolRegistry, served: list[ToolServiceConfig]
) -> None:
    first = await services.put_service(store, registry, _crm("http://crm.example/v1"))
    assert [s.id for s in await store.list(ToolSpec)] == ["crm:search"]
    old = registry.service("crm")
    replaced = await services.put_service(store, registry, _crm("http://crm.example/v2"))
    assert (replaced.id, replaced.url) == (first.id, "http://crm.example/v2")
    assert await store.list(ToolServiceConfig) == [replaced]
    assert registry.service("crm") is not old and "crm:search" in registry
    assert [c.url for c in served] == ["http://crm.example/v1", "http://crm.example/v2"]
    assert await services.get_service(store, "crm") == replaced


async def test_a_service_that_cannot_connect_stores_nothing(
    store: Store, registry: ToolRegistry
) -> None:
    # Loopback is refused by the default outbound policy, before anything connects.
    with pytest.raises(ValidationError):
        await services.put_service(store, registry, _crm("http://127.0.0.1:9/mcp"))
    assert await store.list(ToolServiceConfig) == []
    assert registry.service("crm") is None


async def test_a_name_taken_by_a_python_service_is_a_conflict(
    store: Store, registry: ToolRegistry, served: list[ToolServiceConfig]
) -> None:
    await services.add_service(store, registry, PythonToolService("crm", [search]))
    with pytest.raises(ConflictError):
        await services.put_service(store, registry, _crm("http://crm.example"))
    assert await store.list(ToolServiceConfig) == []


async def test_delete_forgets_and_disconnects_but_keeps_the_specs(
    store: Store, registry: ToolRegistry, served: list[ToolServiceConfig]
) -> None:
    await services.put_service(store, registry, _crm("http://crm.example"))
    await services.delete_service(store, registry, "crm")
    assert await store.list(ToolServiceConfig) == []
    assert registry.service("crm") is None and "crm:search" not in registry
    assert [s.id for s in await store.list(ToolSpec)] == ["crm:search"]
    with pytest.raises(NotFoundError, match="Service 'crm'"):
        await services.delete_service(store, registry, "crm")
    with pytest.raises(NotFoundError, match="Service 'crm'"):
        await services.get_service(store, "crm")


async def test_a_document_connects_the_services_it_names_and_reconnects_a_changed_one(
    store: Store, registry: ToolRegistry, served: list[ToolServiceConfig]
) -> None:
    document = {
        "agent": {"id": "shop", "name": "Shop"},
        "services": [{"name": "crm", "kind": "mcp", "url": "http://crm.example/v1"}],
        "guidelines": [{"condition": "asks about a customer", "tools": ["crm:search"]}],
    }
    wanted = from_document(document, "shop")
    # Not connected yet: the plan takes its tools on trust and writes nothing.
    planned = await plan_document(store, registry, wanted)
    assert {(c.action.value, c.kind) for c in planned.changes} >= {("create", "service")}
    assert served == [] and await store.list(ToolServiceConfig) == []

    await apply_document(store, registry, wanted, summary="crm")
    [config] = await store.list(ToolServiceConfig)
    assert (config.name, config.url) == ("crm", "http://crm.example/v1")
    assert "crm:search" in registry and [c.url for c in served] == ["http://crm.example/v1"]
    assert (await plan_document(store, registry, wanted)).empty

    document["services"][0]["url"] = "http://crm.example/v2"
    await apply_document(store, registry, from_document(document, "shop"), summary="moved")
    [config] = await store.list(ToolServiceConfig)
    assert config.url == "http://crm.example/v2"
    assert [c.url for c in served] == ["http://crm.example/v1", "http://crm.example/v2"]
