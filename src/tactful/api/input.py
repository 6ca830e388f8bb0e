"""Input at the edge: text tactful refuses never reaches a route.

``InputGuard`` answers 422, in FastAPI's shape ``{"detail": [{"loc", "msg", "type"}]}``, to a
request whose path, query string or JSON body (keys and values, at any depth) holds NUL or a
lone surrogate, or bytes that are not UTF-8. Nothing is stored, and no route or error handler
ever sees such text. The body is already bounded by ``ErrorBoundary`` (outside this guard).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tactful.domain.text import bad_text_in, escaped, text_problem

# JSON escapes that can decode to refused text; a body without one needs no parsing here.
_RISKY_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89abcdefABCDEF])")
MAX_PROBLEMS = 20
Loc = list[str | int]


def _problem(loc: Loc, msg: str) -> dict[str, Any]:
    shown = [escaped(p) if isinstance(p, str) else p for p in loc]
    return {"loc": shown, "msg": msg, "type": "string_unicode"}


async def _refuse(send: Send, problems: list[dict[str, Any]]) -> None:
    payload = json.dumps({"detail": problems}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send({"type": "http.response.start", "status": 422, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _decoded(raw: bytes) -> tuple[str | None, str | None]:
    """Percent-decoded UTF-8 text, or why it is refused."""
    data = unquote_to_bytes(raw)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"not valid UTF-8 once percent-decoded (byte {e.start})"
    return text, text_problem(text)


def path_problems(scope: Scope) -> list[dict[str, Any]]:
    raw = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    _, problem = _decoded(raw)
    return [_problem(["path"], f"the path: {problem}")] if problem else []


def query_problems(query_string: bytes) -> list[dict[str, Any]]:
    found = []
    for pair in query_string.split(b"&"):
        name_raw, _, value_raw = pair.partition(b"=")
        name, name_problem = _decoded(name_raw.replace(b"+", b" "))
        shown = name if name is not None else name_raw.decode("latin-1")
        if name_problem:
            found.append(_problem(["query", shown], f"a parameter name: {name_problem}"))
            continue
        _, value_problem = _decoded(value_raw.replace(b"+", b" "))
        if value_problem:
            found.append(_problem(["query", shown], value_problem))
    return found[:MAX_PROBLEMS]


def body_problems(body: bytes) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return [_problem(["body"], f"the body is not valid UTF-8 (byte {e.start})")]
    if _RISKY_ESCAPE.search(body) is None:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []  # not JSON: FastAPI answers its own 422 (json_invalid)
    found = []
    for loc, problem in bad_text_in(value, ("body",)):
        found.append(_problem(list(loc), problem))
        if len(found) == MAX_PROBLEMS:
            break
    return found


def _json_or_unspecified(scope: Scope) -> bool:
    # FastAPI parses a body as JSON when its type says so, or says nothing.
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            media = bytes(value).split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return True


class InputGuard:
    """ASGI middleware: refuses NUL, lone surrogates and non-UTF-8 bytes in the path, the query
    string and JSON bodies with 422 before any route runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problems = path_problems(scope) + query_problems(scope.get("query_string", b""))
        if problems:
            await _refuse(send, problems)
            return
        if not _json_or_unspecified(scope):
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        messages: list[Message] = []
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if body and (problems := body_problems(body)):
            await _refuse(send, problems)
            return
        await self.app(scope, _replay(messages, body, receive), send)


def _replay(messages: list[Message], body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the buffered body once, then defers to the real one."""
    pending = (
        [{"type": "http.request", "body": body, "more_body": False}]
        if messages and messages[-1]["type"] == "http.request"
        else messages
    )

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
