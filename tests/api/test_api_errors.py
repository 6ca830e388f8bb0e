"""Errors never fail on what they echo (``tactful.api.errors``): input is truncated and
escaped, and no response fails to encode."""

from __future__ import annotations

import json
import math

from tactful.api.errors import SafeJSONResponse, echo, validation_details


def test_echoed_values_are_bounded_json() -> None:
    assert echo("ab\ud800\x00c") == "ab\\ud800\\u0000c"
    assert echo("x" * 1000) == "x" * 200 + "…"
    assert echo(math.nan) == "nan" and echo(math.inf) == "inf"
    assert echo(list(range(100))) == [*range(20), "…"]
    assert echo({"k\ud800": ValueError("bad \udc00")}) == {"k\\ud800": "bad \\udc00"}
    deep: list[object] = []
    for _ in range(10):
        deep = [deep]
    assert json.dumps(echo(deep)) == '[[[["\\u2026"]]]]'


def test_validation_details_survive_any_input() -> None:
    errors = [
        {
            "type": "string_too_long",
            "loc": ("body", "name\x00"),
            "msg": "String should have at most 200 characters",
            "input": "\ud800" * 5000,
            "ctx": {"max_length": 200, "error": RuntimeError("\ud800")},
            "url": "https://errors.pydantic.dev/...",
        }
    ]
    [item] = validation_details(errors)
    assert item["loc"] == ["body", "name\\u0000"]
    assert len(item["input"]) == 200 * len("\\ud800") + 1
    assert item["ctx"] == {"max_length": 200, "error": "\\ud800"}
    assert "url" not in item
    body = SafeJSONResponse({"detail": [item]}).body
    assert json.loads(body)["detail"][0]["type"] == "string_too_long"


def test_a_response_with_a_lone_surrogate_still_encodes() -> None:
    body = SafeJSONResponse({"message": "hi \ud800", "ok": "\U0001f600"}).body
    assert json.loads(body) == {"message": "hi \ufffd", "ok": "\U0001f600"}
