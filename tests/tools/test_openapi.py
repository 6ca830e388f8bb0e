"""OpenAPIService against a real FastAPI app served by uvicorn on loopback
(tests/tools/openapi_service.py), plus hand-written OpenAPI 3.0 specs for what FastAPI does
not emit."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from openapi_service import Served, serve_openapi_service

from tactful.tools.base import ToolContext, ToolError
from tactful.tools.openapi import OpenAPIService
from tactful.tools.outbound import OutboundPolicy

CONTEXT = ToolContext(agent_id="a", session_id="s", customer_id="c")
# The test servers listen on loopback, which tool services reach only when allowed explicitly.
LOOPBACK = OutboundPolicy(["127.0.0.1"])


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve_openapi_service() as running:
        yield running


@pytest.fixture
async def orders(served: Served) -> AsyncIterator[OpenAPIService]:
    """The orders API, its spec fetched from the running server."""
    service = OpenAPIService("orders", spec_url=served.spec_url, outbound=LOOPBACK)
    yield service
    await service.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_spec_from_url_makes_one_tool_per_operation(
    orders: OpenAPIService, served: Served
) -> None:
    specs = {spec.name: spec for spec in await orders.list_tools()}
    assert {"get_order", "refund_order", "health_health_get", "text_text_get"} <= set(specs)
    assert orders.base_url == served.base_url

    get = specs["get_order"]
    assert get.id == "orders:get_order"
    assert get.service_name == "orders"
    assert get.description == "Get an order\n\nLook an order up by its id."
    assert get.consequential is False
    assert get.required == ["order_id"]
    properties = get.parameters["properties"]
    assert properties["order_id"]["type"] == "string"
    assert properties["include_items"] == {
        "type": "boolean",
        "description": "Include the order's items",
        "default": True,
        "title": "Include Items",
    }

    refund = specs["refund_order"]
    assert refund.consequential is True
    assert refund.description == "Refund an order"
    # Path and header parameters, then the JSON body's properties, side by side.
    assert list(refund.parameters["properties"]) == [
        "order_id",
        "x-request-id",
        "amount",
        "reason",
        "items",
        "note",
    ]
    assert refund.required == ["order_id", "amount", "reason"]
    assert refund.parameters["required"] == refund.required
    body = refund.parameters["properties"]
    assert body["amount"]["exclusiveMinimum"] == 0
    assert body["amount"]["description"] == "Amount to refund, in the order's currency"
    # The $ref to RefundItem is inlined: the schema stands on its own.
    assert body["items"]["items"]["properties"]["sku"] == {"type": "string", "title": "Sku"}
    assert body["items"]["items"]["required"] == ["sku"]
    assert "$ref" not in json.dumps(refund.parameters)
    assert body["note"]["anyOf"] == [{"type": "string"}, {"type": "null"}]


async def test_calls_send_path_query_header_and_body(
    orders: OpenAPIService, served: Served
) -> None:
    found = await orders.call("get_order", {"order_id": "A1"}, CONTEXT)
    assert found.data == {"order_id": "A1", "status": "shipped", "total": 42.5, "items": ["kettle"]}
    assert found.metadata["status"] == 200

    lean = await orders.call("get_order", {"order_id": "A1", "include_items": False}, CONTEXT)
    assert lean.data["items"] == []

    # Path parameters are URL-encoded: spaces, '#', '/' and '?' arrive intact.
    odd = await orders.call("get_order", {"order_id": "gift card #7/b?"}, CONTEXT)
    assert odd.data["order_id"] == "gift card #7/b?"

    refunded = await orders.call(
        "refund_order",
        {
            "order_id": "A1",
            "amount": 10.0,
            "reason": "dented",
            "items": [{"sku": "kettle", "quantity": 1}],
            "x-request-id": "req-1",
        },
        CONTEXT,
    )
    assert refunded.metadata["status"] == 201
    assert refunded.data["refund_id"].startswith("R")
    granted = served.state.refunds[-1]
    assert granted.amount == 10.0
    assert granted.reason == "dented"
    assert granted.items[0].sku == "kettle"
    assert granted.request_id == "req-1"
    assert granted.note is None

    deleted = await orders.call(
        "delete_order_orders__order_id__delete", {"order_id": "A1"}, CONTEXT
    )
    assert deleted.data is None
    assert deleted.metadata["status"] == 204
    assert (await orders.call("text_text_get", {}, CONTEXT)).data == "plain words"


async def test_spec_as_a_dict(served: Served) -> None:
    service = OpenAPIService(
        "orders", served.app.openapi(), base_url=served.base_url, outbound=LOOPBACK
    )
    try:
        assert len(await service.list_tools()) >= 5
        assert (await service.call("health_health_get", {}, CONTEXT)).data == {"status": "ok"}
    finally:
        await service.close()


async def test_error_answers_name_the_status_and_operation(orders: OpenAPIService) -> None:
    with pytest.raises(ToolError) as missing:
        await orders.call("get_order", {"order_id": "nope"}, CONTEXT)
    assert str(missing.value) == (
        "OpenAPI service 'orders' answered 404 for GET /orders/{order_id}: Order nope not found"
    )
    with pytest.raises(ToolError, match=r"answered 409 for POST /orders/\{order_id\}/refunds: "):
        await orders.call(
            "refund_order", {"order_id": "A1", "amount": 1000, "reason": "x"}, CONTEXT
        )
    with pytest.raises(ToolError, match=r"answered 422 for POST .*body\.amount: Input should be"):
        await orders.call("refund_order", {"order_id": "A1", "amount": -1, "reason": "x"}, CONTEXT)
    with pytest.raises(ToolError, match=r"answered 500 for GET /boom: Internal Server Error"):
        await orders.call("boom_boom_get", {}, CONTEXT)


async def test_bad_calls_are_refused_before_sending(orders: OpenAPIService) -> None:
    with pytest.raises(ToolError, match=r"OpenAPI service 'orders' has no operation 'nope'"):
        await orders.call("nope", {}, CONTEXT)
    with pytest.raises(ToolError, match=r"'get_order' has no parameter 'colour'"):
        await orders.call("get_order", {"order_id": "A1", "colour": "red"}, CONTEXT)
    with pytest.raises(ToolError, match=r"'refund_order' needs 'amount', 'reason'"):
        await orders.call("refund_order", {"order_id": "A1"}, CONTEXT)


async def test_a_service_that_is_down_is_a_tool_error(served: Served) -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    service = OpenAPIService(
        "orders", served.app.openapi(), base_url=down, timeout_s=2, outbound=LOOPBACK
    )
    try:
        with pytest.raises(ToolError) as caught:
            await asyncio.wait_for(service.call("get_order", {"order_id": "A1"}, CONTEXT), 2)
    finally:
        await asyncio.wait_for(service.close(), 2)
    assert str(caught.value).startswith(f"OpenAPI service 'orders' is unreachable ({down}): ")
    assert "ConnectError" in str(caught.value)

    unreachable_spec = OpenAPIService(
        "orders", spec_url=f"{down}/openapi.json", timeout_s=2, outbound=LOOPBACK
    )
    try:
        with pytest.raises(ToolError, match=r"could not load its spec from .*ConnectError"):
            await unreachable_spec.list_tools()
    finally:
        await unreachable_spec.close()


async def test_a_service_that_does_not_answer_times_out(served: Served) -> None:
    # A socket that accepts connections (the kernel does) but never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        base_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        service = OpenAPIService(
            "orders", served.app.openapi(), base_url=base_url, timeout_s=0.3, outbound=LOOPBACK
        )
        try:
            with pytest.raises(
                ToolError, match=r"'orders' did not answer GET /orders/\{order_id\} within 0.3s"
            ):
                await asyncio.wait_for(service.call("get_order", {"order_id": "A1"}, CONTEXT), 2)
        finally:
            await asyncio.wait_for(service.close(), 2)


async def test_spec_url_that_is_not_a_spec(served: Served) -> None:
    service = OpenAPIService("orders", spec_url=f"{served.base_url}/health", outbound=LOOPBACK)
    try:
        with pytest.raises(
            ToolError, match=r"the spec at .*/health cannot be used: only OpenAPI 3"
        ):
            await service.list_tools()
        missing = OpenAPIService(
            "orders", spec_url=f"{served.base_url}/nothing.json", outbound=LOOPBACK
        )
        with pytest.raises(ToolError, match=r"could not load its spec .*answered 404"):
            await missing.list_tools()
        await missing.close()
    finally:
        await service.close()


def test_a_spec_needs_somewhere_to_send_requests() -> None:
    spec = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {}}
    with pytest.raises(ValueError, match="pass base_url="):
        OpenAPIService("x", spec)
    with pytest.raises(ValueError, match="a spec or a spec_url"):
        OpenAPIService("x")
    with pytest.raises(ValueError, match="only OpenAPI 3"):
        OpenAPIService("x", {"swagger": "2.0"}, base_url="http://h")
    assert OpenAPIService(
        "x", {**spec, "servers": [{"url": "https://api.example.com/v1"}]}
    ).base_url == ("https://api.example.com/v1")


PETS_30: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Pets", "version": "1"},
    "servers": [
        {"url": "https://{region}.pets.example/api", "variables": {"region": {"default": "eu"}}}
    ],
    "paths": {
        "/pets/{pet_id}": {
            "parameters": [{"$ref": "#/components/parameters/PetId"}],
            "get": {
                "parameters": [
                    {
                        "name": "fields",
                        "in": "query",
                        "schema": {"type": "array", "items": {"type": "string"}},
                    },
                    {"name": "session", "in": "cookie", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "ok"}},
            },
            "put": {
                "summary": "Replace a pet",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}
                    },
                },
                "responses": {"200": {"description": "ok"}},
            },
        },
        "/pets": {
            "post": {
                "operationId": "addPets",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Pet"},
                            }
                        }
                    }
                },
                "responses": {"201": {"description": "ok"}},
            }
        },
    },
    "components": {
        "parameters": {
            "PetId": {
                "name": "pet_id",
                "in": "path",
                "required": True,
                "schema": {"type": "integer"},
            }
        },
        "schemas": {
            "Pet": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "id": {"type": "integer", "readOnly": True},
                    "name": {"type": "string", "example": "Rex"},
                    "tag": {"type": "string", "nullable": True},
                    "owner": {"$ref": "#/components/schemas/Owner"},
                    "parent": {"$ref": "#/components/schemas/Pet"},
                },
            },
            "Owner": {
                "type": "object",
                "nullable": True,
                "properties": {"name": {"type": "string"}},
            },
        },
    },
}


async def test_openapi_30_refs_nullable_and_unnamed_operations() -> None:
    service = OpenAPIService("pets", PETS_30)
    assert service.base_url == "https://eu.pets.example/api"
    specs = {spec.name: spec for spec in await service.list_tools()}
    # Operations without an operationId are named after their method and path.
    assert set(specs) == {"get_pets_pet_id", "put_pets_pet_id", "addPets"}

    get = specs["get_pets_pet_id"].parameters["properties"]
    assert get["pet_id"] == {"type": "integer"}  # a path-level $ref parameter
    assert get["fields"]["items"] == {"type": "string"}
    assert specs["get_pets_pet_id"].required == ["pet_id"]

    put = specs["put_pets_pet_id"]
    assert put.consequential is True
    assert put.required == ["pet_id", "name"]
    props = put.parameters["properties"]
    assert "id" not in props  # readOnly: the server's to fill
    assert props["name"] == {"type": "string", "examples": ["Rex"]}
    assert props["tag"] == {"type": ["string", "null"]}
    assert props["owner"]["type"] == ["object", "null"]
    # A recursive schema is cut after one level instead of looping.
    assert props["parent"] == {"type": "object", "description": "(a nested Pet)"}
    assert "nullable" not in json.dumps(put.parameters)

    # A body that is not an object travels whole, as the "body" argument.
    add = specs["addPets"].parameters["properties"]
    assert list(add) == ["body"]
    assert add["body"]["type"] == "array"
    assert specs["addPets"].required == []


async def test_requests_are_built_from_the_spec() -> None:
    service = OpenAPIService("pets", PETS_30, headers={"x-api-key": "k"})
    operations = await service._load()
    request = service._request(
        operations["get_pets_pet_id"], {"pet_id": 7, "fields": ["name", "tag"], "session": "a b"}
    )
    assert str(request.url) == "https://eu.pets.example/api/pets/7?fields=name&fields=tag"
    assert request.headers["cookie"] == "session=a%20b"
    assert request.headers["x-api-key"] == "k"
    put = service._request(operations["put_pets_pet_id"], {"pet_id": 7, "name": "Rex", "tag": None})
    assert put.method == "PUT"
    assert json.loads(put.content) == {"name": "Rex", "tag": None}
    add = service._request(operations["addPets"], {"body": [{"name": "A"}, {"name": "B"}]})
    assert json.loads(add.content) == [{"name": "A"}, {"name": "B"}]
    await service.close()


async def test_a_required_body_is_sent_even_with_no_field_set() -> None:
    spec = {
        "openapi": "3.1.0",
        "servers": [{"url": "http://orders.example"}],
        "paths": {
            "/search": {
                "post": {
                    "operationId": "search",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"q": {"type": "string"}},
                                }
                            }
                        },
                    },
                }
            }
        },
    }
    service = OpenAPIService("orders", spec)
    operations = await service._load()
    assert json.loads(service._request(operations["search"], {}).content) == {}
    assert json.loads(service._request(operations["search"], {"q": "kettle"}).content) == {
        "q": "kettle"
    }
    await service.close()


def test_a_malformed_spec_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match=r"the spec cannot be used: it is malformed"):
        OpenAPIService("x", {"openapi": "3.1.0", "paths": ["/orders"]}, base_url="http://h")
