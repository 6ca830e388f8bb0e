"""What ``/openapi.json`` promises, kept true in one place.

- Error bodies: every 422 has FastAPI's ``HTTPValidationError`` shape (the edge guard can
  answer it on any route), a route with a body can answer 413, and every other error status a
  route declares carries ``{"detail": "<message>"}`` (``Error``).
- Methods: ``OPTIONS`` on a path answers 204 with ``Allow`` listing the methods the spec
  declares there, and a method the spec does not declare answers 405 with the same ``Allow``.
  (CORS preflights never get here in development mode: ``CORSMiddleware`` answers them.)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import (
    validation_error_definition,
    validation_error_response_definition,
)
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REF = "#/components/schemas/"
ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"title": "Detail", "type": "string"}},
    "required": ["detail"],
}
VALIDATION_REF = {"$ref": REF + "HTTPValidationError"}
ERROR_REF = {"$ref": REF + "Error"}
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
DESCRIPTIONS = {
    413: "The request body is over the size limit",
    422: "Validation Error",
}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _declare_errors(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    codes = {422} | ({413} if "requestBody" in operation else set())
    for code in codes:
        responses.setdefault(str(code), {"description": DESCRIPTIONS[code]})
    for code, response in responses.items():
        if not code.isdigit() or int(code) < 400:
            continue
        schema = VALIDATION_REF if code == "422" else ERROR_REF
        content = response.get("content") or {}
        declared = content.get("application/json", {}).get("schema")
        # A route's own model for an error status stays; an empty or missing one is filled in.
        if not declared:
            response["content"] = {**content, **_json_content(schema)}


def with_errors_declared(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with every operation's error statuses and bodies declared (see module doc)."""
    for path in spec.get("paths", {}).values():
        for method, operation in path.items():
            if method in HTTP_METHODS:
                _declare_errors(operation)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR_SCHEMA)
    schemas.setdefault("ValidationError", validation_error_definition)
    schemas.setdefault("HTTPValidationError", validation_error_response_definition)
    return spec


def declare_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` declare every error status and body (once, then cached)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_errors_declared(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


class DeclaredMethods:
    """ASGI middleware: ``OPTIONS`` lists a path's methods; an undeclared method is a 405
    whose ``Allow`` lists them all (Starlette's own 405 names only one route's methods)."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self._paths: list[tuple[re.Pattern[str], frozenset[str]]] | None = None

    def allowed(self, path: str) -> frozenset[str] | None:
        """The methods the spec declares for ``path`` (and OPTIONS), or None."""
        if self._paths is None:
            self._paths = []
            for template, operations in self.api.openapi().get("paths", {}).items():
                methods = {m.upper() for m in operations if m in HTTP_METHODS}
                pattern, _, _ = compile_path(template)
                self._paths.append((pattern, frozenset(methods | {"OPTIONS"})))
        found = [methods for pattern, methods in self._paths if pattern.match(path)]
        return frozenset().union(*found) if found else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] != "OPTIONS":
            # Routing finds an undeclared method; only then are the declared ones looked up.
            await self.app(scope, receive, self._full_allow(scope, send))
            return
        allowed = self.allowed(scope["path"])
        if allowed is None:
            await self.app(scope, receive, send)
            return
        headers = [(b"allow", _allow(allowed)), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    def _full_allow(self, scope: Scope, send: Send) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                allowed = self.allowed(scope["path"])
                if allowed is not None:
                    kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                    message = {**message, "headers": [*kept, (b"allow", _allow(allowed))]}
            await send(message)

        return sending


def _allow(methods: frozenset[str]) -> bytes:
    return ", ".join(sorted(methods)).encode()
