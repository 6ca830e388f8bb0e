"""``/openapi.json`` tells the truth (``tactful.api.spec``): error statuses and bodies declared,
numbers bounded, ``OPTIONS`` and undeclared methods answered with the declared ``Allow``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tactful.api import create_app
from tactful.config import Settings
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import start_runtime

METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture
async def spec(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def numbers(spec: dict[str, Any], schema: Any, where: str, seen: set[str]) -> Iterator[str]:
    """Every integer or number in ``schema`` (refs followed), described as where it sits,
    unless it declares both a minimum and a maximum."""
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            yield from numbers(spec, resolve(spec, schema), f"{where}->{name}", seen | {name})
        return
    if schema.get("type") in ("integer", "number") and not (
        "minimum" in schema and "maximum" in schema
    ):
        yield where
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(key, []):
            yield from numbers(spec, branch, where, seen)
    for name, prop in schema.get("properties", {}).items():
        yield from numbers(spec, prop, f"{where}.{name}", seen)
    yield from numbers(spec, schema.get("items"), f"{where}[]", seen)
    yield from numbers(spec, schema.get("additionalProperties"), f"{where}{{}}", seen)


def test_every_operation_declares_its_errors(spec: dict[str, Any]) -> None:
    for path, method, operation in operations(spec):
        responses = operation["responses"]
        where = f"{method.upper()} {path}"
        validation = responses["422"]["content"]["application/json"]["schema"]
        assert validation == {"$ref": "#/components/schemas/HTTPValidationError"}, where
        if "requestBody" in operation:
            assert "413" in responses, where
        for code, response in responses.items():
            if code.startswith("4") and code != "422":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (where, code)
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["detail"]
    assert error["properties"]["detail"]["type"] == "string"


def test_routes_that_create_with_a_given_id_declare_409(spec: dict[str, Any]) -> None:
    for path in ("/agents", "/customers", "/guidelines", "/journeys", "/terms"):
        assert "409" in spec["paths"][path]["post"]["responses"], path
    assert "409" in spec["paths"]["/context-variables"]["post"]["responses"]


def test_every_number_a_request_carries_is_bounded(spec: dict[str, Any]) -> None:
    unbounded = []
    for path, method, operation in operations(spec):
        where = f"{method.upper()} {path}"
        for parameter in operation.get("parameters", []):
            unbounded += numbers(spec, parameter["schema"], f"{where} {parameter['name']}", set())
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        unbounded += numbers(spec, body.get("schema"), f"{where} body", set())
    assert unbounded == []


def test_events_declare_their_page_header(spec: dict[str, Any]) -> None:
    listing = spec["paths"]["/sessions/{session_id}/events"]["get"]
    assert "Tactful-Has-More" in listing["responses"]["200"]["headers"]
    limit = next(p for p in listing["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 1000)
    assert limit["schema"]["default"] == 100


async def test_options_lists_the_declared_methods(client: httpx.AsyncClient) -> None:
    collection = await client.options("/agents")
    assert collection.status_code == 204
    assert collection.headers["allow"] == "GET, OPTIONS, POST"
    one = await client.options("/sessions/abc/events")
    assert one.headers["allow"] == "DELETE, GET, OPTIONS, POST"
    assert (await client.options("/nowhere")).status_code == 404


async def test_an_undeclared_method_is_a_405_listing_every_declared_one(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put("/agents/abc", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, OPTIONS, PATCH"
    assert response.json() == {"detail": "Method Not Allowed"}
    # FastAPI answers no HEAD, so none is declared or allowed.
    head = await client.head("/agents")
    assert head.status_code == 405 and "HEAD" not in head.headers["allow"]


async def test_a_preflight_without_cors_gets_the_methods_but_no_permission() -> None:
    # Production mode without cors_origins: no CORS middleware, so a browser gets no
    # Access-Control-Allow-Origin and gives up; other clients still learn the methods.
    settings = Settings(transient=True, mode="production", secret_key="x" * 32)
    runtime = await start_runtime(settings, embedder=HashingEmbedder(), offline=True)
    try:
        app = create_app(runtime)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://tactful.example.com"
        ) as c:
            preflight = await c.options(
                "/sessions",
                headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
            )
        assert preflight.status_code == 204
        assert "access-control-allow-origin" not in preflight.headers
        assert preflight.headers["allow"] == "DELETE, GET, OPTIONS, POST"
    finally:
        await runtime.close()
