"""The one place where errors become HTTP responses.

Every 422 has FastAPI's standard shape ``{"detail": [{"loc", "msg", "type", ...}]}`` (Parlant's
client parses it), whether pydantic, the edge guard (``tactful.api.input``) or our own
``ValidationError`` refused the request; other errors answer ``{"detail": "<message>"}``.
Anything unexpected is logged and answers 500 ``{"detail": "internal error"}``, never a
traceback. What is echoed is truncated and escaped, and no response fails to encode.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tactful.api.input import InputGuard
from tactful.api.spec import DeclaredMethods, declare_errors
from tactful.domain.text import escaped, repaired
from tactful.errors import (
    ConfigurationError,
    ConflictError,
    ForbiddenError,
    ModelError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    StoreError,
    StoreUnavailableError,
    TactfulError,
    UnauthorizedError,
    ValidationError,
)

log = logging.getLogger("tactful.api")

STATUS_BY_ERROR: dict[type[TactfulError], int] = {
    UnauthorizedError: 401,
    ForbiddenError: 403,
    RateLimitedError: 429,
    NotFoundError: 404,
    ValidationError: 422,
    ConflictError: 409,
    PayloadTooLargeError: 413,
    ModelError: 502,
    StoreError: 503,
    # The server lacks a setting this request needs (e.g. a secret key to sign tokens).
    ConfigurationError: 503,
}

INTERNAL_ERROR = {"detail": "internal error"}
# How much of a refused value an error echoes: items per list or object, and nesting depth.
ECHO_MAX_ITEMS = 20
ECHO_MAX_DEPTH = 4
MSG_MAX_CHARS = 1000


class SafeJSONResponse(JSONResponse):
    """FastAPI's JSON response, except that text no UTF-8 encoder takes (a lone surrogate)
    becomes U+FFFD instead of failing the response."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return repaired(text).encode("utf-8")


def status_of(error: TactfulError) -> int:
    """The HTTP status of one of our errors (500 for a class without a mapping)."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def echo(value: Any, depth: int = 0) -> Any:
    """A value as an error may echo it: JSON, bounded in size, text truncated and escaped."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return escaped(value)
    if isinstance(value, bytes):
        return escaped(value.decode("utf-8", "replace"))
    if depth >= ECHO_MAX_DEPTH and isinstance(value, list | tuple | dict):
        return "…"
    if isinstance(value, list | tuple):
        items = [echo(v, depth + 1) for v in value[:ECHO_MAX_ITEMS]]
        return [*items, "…"] if len(value) > ECHO_MAX_ITEMS else items
    if isinstance(value, dict):
        pairs = list(value.items())[:ECHO_MAX_ITEMS]
        return {escaped(str(k)): echo(v, depth + 1) for k, v in pairs}
    # Error contexts may hold exception objects; the client only needs their text.
    return escaped(str(value))


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """Pydantic errors as JSON: loc, msg, type, input and ctx (no documentation URLs), with
    the echoed input and context bounded."""
    details = []
    for e in errors:
        item: dict[str, Any] = {}
        for key, value in dict(e).items():
            if key == "url":
                continue
            if key == "msg":
                item[key] = escaped(str(value), MSG_MAX_CHARS)
            elif key == "loc":
                item[key] = [p if isinstance(p, int) else escaped(str(p)) for p in value or ()]
            else:
                item[key] = echo(value)
        item.setdefault("loc", [])
        details.append(item)
    return details


def error_item(
    message: str, loc: tuple[str | int, ...] = (), type_: str = "value_error"
) -> dict[str, Any]:
    """One item of a 422's ``detail``."""
    return {
        "loc": [p if isinstance(p, int) else escaped(p) for p in loc],
        "msg": escaped(message, MSG_MAX_CHARS),
        "type": type_,
    }


async def _tactful_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TactfulError)
    code = status_of(exc)
    if code == 500:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return SafeJSONResponse(INTERNAL_ERROR, status_code=500)
    if code > 500:
        log.warning("%s %s failed: %s", request.method, request.url.path, exc)
    if isinstance(exc, ValidationError):
        items = [error_item(p, exc.loc) for p in exc.problems] or [error_item(str(exc), exc.loc)]
        return SafeJSONResponse({"detail": items}, status_code=code)
    headers = {}
    if isinstance(exc, UnauthorizedError):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimitedError | StoreUnavailableError):
        headers["Retry-After"] = str(exc.retry_after_s)
    return SafeJSONResponse({"detail": str(exc)}, status_code=code, headers=headers)


async def _request_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return SafeJSONResponse({"detail": validation_details(exc.errors())}, status_code=422)


async def _model_invalid(request: Request, exc: Exception) -> JSONResponse:
    # A domain model refused values that passed the request schema (e.g. a too-long name).
    assert isinstance(exc, pydantic.ValidationError)
    details = validation_details(exc.errors(include_url=False))
    for d in details:
        d["loc"] = ["body", *d["loc"]]
    return SafeJSONResponse({"detail": details}, status_code=422)


class BodyTooLargeError(HTTPException):
    """Raised while the body is read; FastAPI passes HTTP exceptions through to the handlers."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit} bytes")


class ErrorBoundary:
    """ASGI middleware: refuses oversized bodies (413) and turns any escaped exception into a
    logged 500 with a JSON body. Exceptions raised after the response started only get logged.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await send_json(send, 413, {"detail": BodyTooLargeError(limit).detail})
                return
        started = False
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLargeError as e:
            if not started:
                await send_json(send, 413, {"detail": e.detail})
        except Exception:
            log.exception("unexpected error in %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await send_json(send, 500, INTERNAL_ERROR)


async def send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def install_error_handling(app: FastAPI, *, max_body_bytes: int) -> None:
    """Map our errors and invalid requests to JSON responses (as the spec declares them),
    refuse bad text and undeclared methods at the edge, and guard the whole app."""
    app.add_exception_handler(TactfulError, _tactful_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(pydantic.ValidationError, _model_invalid)
    declare_errors(app)
    # Inside the boundary, so the guard reads bodies already bounded in size.
    app.add_middleware(InputGuard)
    app.add_middleware(DeclaredMethods, api=app)
    app.add_middleware(ErrorBoundary, max_body_bytes=max_body_bytes)
