"""The Voltmart example's Python tools (service ``voltmart``) in ``/services``: listed, found by
name with their tools, and read-only over REST (they are the program's, not the store's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import ModuleType

import httpx
import pytest
import pytest_asyncio
from parlant.client import AsyncParlantClient
from parlant.client.core.api_error import ApiError
from voltmart_example import load_example

import tactful
from tactful.api import create_app
from tactful.domain import ToolServiceConfig
from tactful.llm.scripted import HashingEmbedder


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load_example("voltmart_services_example")


@pytest_asyncio.fixture
async def server(example: ModuleType) -> AsyncIterator[tactful.Server]:
    async with tactful.Server(transient=True, offline=True, embedder=HashingEmbedder()) as s:
        await example.attach(s)  # what define() and `--agent voltmart.yaml` do for the tools
        yield s


@pytest_asyncio.fixture
async def client(server: tactful.Server) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(create_app(server.runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
        yield c


async def test_the_code_service_is_listed_and_found_by_name(
    client: httpx.AsyncClient, example: ModuleType
) -> None:
    listed = await client.get("/services")
    assert listed.status_code == 200, listed.text
    assert listed.json() == [
        {"name": "voltmart", "kind": "sdk", "url": "", "tools": None, "read_only": True}
    ]
    one = await client.get("/services/voltmart")
    assert one.status_code == 200, one.text
    body = one.json()
    assert (body["name"], body["kind"], body["read_only"]) == ("voltmart", "sdk", True)
    names = {t["name"] for t in body["tools"]}
    assert names == {
        "find_order",
        "order_status",
        "refund",
        "start_return",
        "change_address",
        "hand_off_to_person",
    }
    assert (await client.get("/services/nothing")).status_code == 404


async def test_the_code_service_cannot_be_replaced_or_deleted_over_rest(
    client: httpx.AsyncClient, server: tactful.Server
) -> None:
    replaced = await client.put(
        "/services/voltmart", json={"kind": "mcp", "mcp": {"url": "https://mcp.example.com"}}
    )
    assert replaced.status_code == 409, replaced.text
    assert "defined in code" in replaced.json()["detail"]
    deleted = await client.delete("/services/voltmart")
    assert deleted.status_code == 409, deleted.text
    assert "defined in code" in deleted.json()["detail"]
    # Still there, still serving, nothing stored.
    assert "voltmart:find_order" in server.runtime.engine.tools
    assert await server.runtime.store.list(ToolServiceConfig) == []
    assert [s["name"] for s in (await client.get("/services")).json()] == ["voltmart"]


async def test_the_official_client_sees_the_code_service(client: httpx.AsyncClient) -> None:
    parlant = AsyncParlantClient(base_url="http://localhost", httpx_client=client)
    [service] = await parlant.services.list()
    assert (service.name, service.kind, service.url) == ("voltmart", "sdk", "")
    found = await parlant.services.retrieve("voltmart")
    assert found.tools and "find_order" in {t.name for t in found.tools}
    with pytest.raises(ApiError) as refused:
        await parlant.services.delete("voltmart")
    assert refused.value.status_code == 409
