"""The one place where errors become HTTP responses.

Our own errors answer ``{"detail": "<message>"}``; invalid requests keep FastAPI's standard 422
shape ``{"detail": [{"loc", "msg", "type", ...}]}`` (Parlant's client parses it); anything
unexpected is logged and answers 500 ``{"detail": "internal error"}``, never a traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tactful.errors import (
    ConfigurationError,
    ConflictError,
    ForbiddenError,
    ModelError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    StoreError,
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


def status_of(error: TactfulError) -> int:
    """The HTTP status of one of our errors (500 for a class without a mapping)."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def _plain(value: Any) -> Any:
    # Error contexts may hold exception objects; the client only needs their text.
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """Pydantic errors as JSON: loc, msg, type, input and ctx (no documentation URLs)."""
    details = []
    for e in errors:
        item = {k: _plain(v) for k, v in dict(e).items() if k != "url"}
        item["loc"] = list(item.get("loc") or [])
        details.append(item)
    return details


async def _tactful_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TactfulError)
    code = status_of(exc)
    if code == 500:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(INTERNAL_ERROR, status_code=500)
    if code > 500:
        log.warning("%s %s failed: %s", request.method, request.url.path, exc)
    headers = {}
    if isinstance(exc, UnauthorizedError):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(exc.retry_after_s)
    return JSONResponse({"detail": str(exc)}, status_code=code, headers=headers)


async def _request_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": validation_details(exc.errors())}, status_code=422)


async def _model_invalid(request: Request, exc: Exception) -> JSONResponse:
    # A domain model refused values that passed the request schema (e.g. a too-long name).
    assert isinstance(exc, pydantic.ValidationError)
    details = validation_details(exc.errors(include_url=False))
    for d in details:
        d["loc"] = ["body", *d["loc"]]
    return JSONResponse({"detail": details}, status_code=422)


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
    """Map our errors and invalid requests to JSON responses, and guard the whole app."""
    app.add_exception_handler(TactfulError, _tactful_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(pydantic.ValidationError, _model_invalid)
    app.add_middleware(ErrorBoundary, max_body_bytes=max_body_bytes)
