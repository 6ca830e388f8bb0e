"""The trace's JSON schema in ``/openapi.json`` is complete: every object says what it holds,
every value has a type (the web inspector's types and the Python client come from it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

# A schema with one of these says what its value is.
TYPED = ("type", "$ref", "anyOf", "oneOf", "allOf", "enum", "const")
SCALARS = ("string", "integer", "number", "boolean", "null")


@pytest.fixture
async def spec(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec


def untyped(spec: dict[str, Any], schema: Any, where: str, seen: frozenset[str]) -> Iterator[str]:
    """Where ``schema`` (refs followed) leaves a value or an object's content untyped, each
    as ``Trace.composition.tool_calls[].result.data``-style paths and what is wrong there."""
    if not isinstance(schema, dict) or not any(k in schema for k in TYPED):
        yield f"{where}: a value of any type"
        return
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            found = spec["components"]["schemas"].get(name)
            if found is None:
                yield f"{where}: a reference to no schema ({name})"
            else:
                yield from untyped(spec, found, where, seen | {name})
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(key, []):
            yield from untyped(spec, branch, where, seen)
    kinds = schema.get("type")
    for kind in kinds if isinstance(kinds, list) else [kinds]:
        if kind == "object":
            yield from _object(spec, schema, where, seen)
        elif kind == "array":
            if "items" not in schema and "prefixItems" not in schema:
                yield f"{where}: an array of anything"
            for i, item in enumerate(schema.get("prefixItems", [])):
                yield from untyped(spec, item, f"{where}[{i}]", seen)
            if "items" in schema:
                yield from untyped(spec, schema["items"], f"{where}[]", seen)
        elif kind is not None and kind not in SCALARS:
            yield f"{where}: an unknown type {kind!r}"


def _object(
    spec: dict[str, Any], schema: dict[str, Any], where: str, seen: frozenset[str]
) -> Iterator[str]:
    properties: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    if not properties and not isinstance(extra, dict):
        yield f"{where}: an object of anything"
        return
    for name, prop in properties.items():
        yield from untyped(spec, prop, f"{where}.{name}", seen)
    if isinstance(extra, dict):
        yield from untyped(spec, extra, f"{where}{{}}", seen)
    elif extra is True:
        yield f"{where}: any other key, of any type"


def response_schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["paths"][path]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    return schema


def test_a_trace_is_typed_all_the_way_down(spec: dict[str, Any]) -> None:
    one = response_schema(spec, "/traces/{trace_id}")
    assert one == {"$ref": "#/components/schemas/Trace"}
    assert list(untyped(spec, one, "Trace", frozenset())) == []
    listed = response_schema(spec, "/sessions/{session_id}/traces")
    assert listed["items"] == {"$ref": "#/components/schemas/Trace"}


def test_states_are_enums(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    trace = schemas["Trace"]["properties"]
    status = schemas[trace["status"]["$ref"].rsplit("/", 1)[-1]]
    assert set(status["enum"]) >= {"running", "done", "error", "cancelled", "dropped"}
    step = schemas["JourneyStep"]["properties"]
    kinds = schemas[step["kind"]["$ref"].rsplit("/", 1)[-1]]
    assert {"start", "advance", "stay", "end"} <= set(kinds["enum"])


@pytest.mark.parametrize(
    ("schema", "problems"),
    [
        ({}, ["T: a value of any type"]),
        ({"type": "object"}, ["T: an object of anything"]),
        ({"type": "array"}, ["T: an array of anything"]),
        (
            {"type": "object", "properties": {"a": {"type": "array", "items": {}}}},
            ["T.a[]: a value of any type"],
        ),
        ({"type": "object", "additionalProperties": True}, ["T: an object of anything"]),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "additionalProperties": True,
            },
            ["T: any other key, of any type"],
        ),
        ({"anyOf": [{"type": "string"}, {"title": "Data"}]}, ["T: a value of any type"]),
        (
            {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Any"}},
            ["T{}: a value of any type"],
        ),
        ({"type": "object", "additionalProperties": {"type": "integer"}}, []),
        ({"$ref": "#/components/schemas/Tree"}, []),
    ],
)
def test_the_walk_finds_what_is_untyped(schema: dict[str, Any], problems: list[str]) -> None:
    # Its own check: a walk that found nothing anywhere would pass the test above.
    spec = {
        "components": {
            "schemas": {
                "Any": {"description": "anything"},
                "Tree": {
                    "type": "object",
                    "properties": {
                        "children": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Tree"},
                        }
                    },
                },
            }
        }
    }
    assert list(untyped(spec, schema, "T", frozenset())) == problems
