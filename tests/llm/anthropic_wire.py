"""A scripted server that speaks Anthropic's Messages wire protocol, for testing the adapter
end to end through the official SDK.

Tests queue what ``POST /v1/messages`` answers (a ``Reply``, a ``Fail`` or a raw ``Body``) and
read back every request the client sent. Like the real API the server checks the request
(required fields, no sampling parameters under API version 2026-10-21, a forced tool that
exists, a ``tool_result`` for every earlier ``tool_use``) and answers 400 when it is wrong;
it streams Server-Sent Events when asked; and it plays the prompt cache: a request whose
system prompt carries ``cache_control`` reads the prefix (tools and system) from the cache when
the same prefix was sent before, and writes it otherwise. ``serve_anthropic_wire`` runs the
app in a real uvicorn server on 127.0.0.1 in a background thread.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tactful.server import listening_socket

# The error ``type`` Anthropic sends with each HTTP status.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# The API version whose requests may not carry sampling parameters.
NO_SAMPLING_VERSION = "2026-10-21"


@dataclass(frozen=True)
class StreamError:
    """An ``error`` event sent in place of the rest of a stream that had started."""

    type: str = "overloaded_error"
    message: str = "Overloaded"


@dataclass(frozen=True)
class Reply:
    """A successful message: ``text`` and, with ``tool_input``, a call of the request's tool
    (the one ``tool_choice`` forces, else the first)."""

    text: str | None = None
    tool_input: dict[str, Any] | None = None
    # Default: "tool_use" with a tool call, else "end_turn".
    stop_reason: str | None = None
    # Why the model refused (``stop_details`` of a "refusal").
    refusal: str | None = None
    # Input tokens after the cached prefix (the whole input when nothing is cached).
    input_tokens: int = 11
    output_tokens: int = 7
    # Seconds to wait before answering (returns early if the client hangs up).
    delay_s: float = 0.0
    # Streaming only: after the text, an ``error`` event instead of the end of the message.
    stream_error: StreamError | None = None


@dataclass(frozen=True)
class Fail:
    """An error response in Anthropic's ``{"type": "error", "error": {...}}`` shape."""

    status: int
    message: str = "scripted failure"
    type: str | None = None  # by default the one Anthropic sends with ``status``


@dataclass(frozen=True)
class Body:
    """HTTP 200 with this raw body (say, one that is not JSON at all)."""

    text: str
    content_type: str = "application/json"


@dataclass(frozen=True)
class Recorded:
    """One request the server received, and the usage it answered with."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    usage: dict[str, int] | None = None


def tokens_of(text: str) -> int:
    """The wire's token count: words and punctuation marks."""
    return len(re.findall(r"\w+|[^\w\s]", text))


@dataclass
class AnthropicWire:
    """The scripted state shared by the app (server thread) and the test (test thread)."""

    replies: deque[Reply | Fail | Body] = field(default_factory=deque)
    requests: list[Recorded] = field(default_factory=list)
    # Prefixes (tools and system up to the cache breakpoint) already written to the cache.
    cached: set[str] = field(default_factory=set)
    base_url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def script(self, *items: str | dict[str, Any] | Reply | Fail | Body | int) -> None:
        """Queue answers: text (a string), a tool call's input (a dict), a ``Reply``, a
        ``Fail``, a raw ``Body`` or an HTTP status."""
        with self._lock:
            for item in items:
                if isinstance(item, str):
                    self.replies.append(Reply(text=item))
                elif isinstance(item, dict):
                    self.replies.append(Reply(tool_input=item))
                elif isinstance(item, int):
                    self.replies.append(Fail(item))
                else:
                    self.replies.append(item)

    def reset(self) -> None:
        with self._lock:
            self.replies.clear()
            self.requests.clear()
            self.cached.clear()

    @property
    def message_requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.path == "/v1/messages"]

    def _record(self, request: Request, body: dict[str, Any]) -> int:
        with self._lock:
            self.requests.append(Recorded(request.url.path, body, dict(request.headers)))
            return len(self.requests) - 1

    def _answered(self, index: int, usage: dict[str, int]) -> None:
        with self._lock:
            old = self.requests[index]
            self.requests[index] = Recorded(old.path, old.body, old.headers, usage)

    def _next_reply(self) -> Reply | Fail | Body:
        with self._lock:
            if self.replies:
                return self.replies.popleft()
        return Fail(500, "anthropic_wire: no scripted reply left")

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def _usage(self, body: dict[str, Any], reply: Reply) -> dict[str, int]:
        """The usage of a request, playing the prompt cache on its system prompt."""
        prefix = _cached_prefix(body)
        read = creation = 0
        if prefix is not None:
            with self._lock:
                hit = prefix in self.cached
                self.cached.add(prefix)
            # The real API caches only prefixes past a minimum length (1024+ tokens); not here.
            if hit:
                read = tokens_of(prefix)
            else:
                creation = tokens_of(prefix)
        return {
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read,
        }


def _cached_prefix(body: dict[str, Any]) -> str | None:
    """Tools, then system blocks up to the last one with ``cache_control`` (the cache order),
    or None when the system prompt sets no breakpoint."""
    system = body.get("system")
    if not isinstance(system, list):
        return None
    marked = [i for i, block in enumerate(system) if block.get("cache_control")]
    if not marked:
        return None
    texts = [block.get("text", "") for block in system[: marked[-1] + 1]]
    tools = json.dumps(body.get("tools", []), sort_keys=True)
    return "\n".join([body.get("model", ""), tools, *texts])


def _problem(body: dict[str, Any], headers: dict[str, str]) -> str | None:
    """What the real API would reject in this request with a 400, if anything."""
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return f"{name}: Field required"
    if headers.get("anthropic-version") == NO_SAMPLING_VERSION:
        for name in ("temperature", "top_p", "top_k"):
            if name in body:
                return f"{name}: Extra inputs are not permitted"
    tools = {tool.get("name") for tool in body.get("tools", [])}
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool" and choice.get("name") not in tools:
        return f"tool_choice: Tool '{choice.get('name')}' not found in provided tools"
    system = body.get("system")
    if isinstance(system, list) and any(not b.get("text", "").strip() for b in system):
        return "system: text content blocks must be non-empty"
    messages = body["messages"]
    if not messages or messages[0].get("role") != "user":
        return "messages: the first message must use the user role"
    for index, message in enumerate(messages):
        content = message.get("content")
        if content in ("", []):
            return f"messages.{index}: all messages must have non-empty content"
        calls = [
            block["id"]
            for block in (content if isinstance(content, list) else [])
            if block.get("type") == "tool_use"
        ]
        if not calls:
            continue
        after = messages[index + 1]["content"] if index + 1 < len(messages) else []
        results = {
            block.get("tool_use_id")
            for block in (after if isinstance(after, list) else [])
            if block.get("type") == "tool_result"
        }
        if missing := [c for c in calls if c not in results]:
            return (
                f"messages.{index + 1}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}"
            )
    return None


def _error(status: int, message: str, kind: str | None = None) -> JSONResponse:
    kind = kind or ERROR_TYPES.get(status, "api_error")
    return JSONResponse(
        status_code=status,
        content={
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": "req_wire_error",
        },
        headers={"request-id": "req_wire_error"},
    )


async def _wait(request: Request, seconds: float, tick_s: float = 0.02) -> None:
    # Polls so that a client that gave up (timed out) frees the server for a prompt shutdown.
    for _ in range(max(1, round(seconds / tick_s))):
        if await request.is_disconnected():
            return
        await asyncio.sleep(tick_s)


def _tool_name(body: dict[str, Any]) -> str:
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool":
        return str(choice["name"])
    tools = body.get("tools") or [{"name": "answer"}]
    return str(tools[0]["name"])


def _content(wire: AnthropicWire, body: dict[str, Any], reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    if reply.tool_input is not None:
        blocks.append(
            {
                "type": "tool_use",
                "id": f"toolu_wire{wire._next_id()}",
                "name": _tool_name(body),
                "input": reply.tool_input,
            }
        )
    return blocks


def _stop(reply: Reply) -> tuple[str, dict[str, Any] | None]:
    if reply.refusal is not None:
        return "refusal", {"type": "refusal", "category": None, "explanation": reply.refusal}
    if reply.stop_reason is not None:
        return reply.stop_reason, None
    return ("tool_use" if reply.tool_input is not None else "end_turn"), None


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


async def _events(
    wire: AnthropicWire, body: dict[str, Any], reply: Reply, usage: dict[str, int]
) -> AsyncIterator[str]:
    """The message as Anthropic streams it: message_start, each content block (text one word
    per delta, a tool call's input in two JSON pieces), message_delta, message_stop."""
    stop_reason, stop_details = _stop(reply)
    message = {
        "id": f"msg_wire{wire._next_id()}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    yield _event("message_start", {"type": "message_start", "message": message})
    yield _event("ping", {"type": "ping"})
    for index, block in enumerate(_content(wire, body, reply)):
        if block["type"] == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [
                {"type": "text_delta", "text": p} for p in re.findall(r"\S+\s*", block["text"])
            ]
        else:
            start = {**block, "input": {}}
            raw = json.dumps(block["input"])
            half = len(raw) // 2
            deltas = [
                {"type": "input_json_delta", "partial_json": p} for p in (raw[:half], raw[half:])
            ]
        yield _event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        )
        for delta in deltas:
            yield _event(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        if reply.stream_error is not None:
            error = {"type": reply.stream_error.type, "message": reply.stream_error.message}
            yield _event("error", {"type": "error", "error": error})
            return
        yield _event("content_block_stop", {"type": "content_block_stop", "index": index})
    delta_usage = {**usage}  # the API sends running totals, input and cache counts included
    yield _event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "stop_details": stop_details,
            },
            "usage": delta_usage,
        },
    )
    yield _event("message_stop", {"type": "message_stop"})


def create_app(wire: AnthropicWire) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/messages", response_model=None)
    async def messages(request: Request) -> Response:
        body = await request.json()
        index = wire._record(request, body)
        headers = dict(request.headers)
        if not (headers.get("x-api-key") or headers.get("authorization")):
            return _error(401, "x-api-key header is required")
        if (problem := _problem(body, headers)) is not None:
            return _error(400, problem)
        reply = wire._next_reply()
        if isinstance(reply, Fail):
            return _error(reply.status, reply.message, reply.type)
        if isinstance(reply, Body):
            return Response(reply.text, media_type=reply.content_type)
        if reply.delay_s:
            await _wait(request, reply.delay_s)
        usage = wire._usage(body, reply)
        wire._answered(index, usage)
        request_id = {"request-id": f"req_wire{wire._next_id()}"}
        if body.get("stream"):
            return StreamingResponse(
                _events(wire, body, reply, usage),
                media_type="text/event-stream",
                headers=request_id,
            )
        stop_reason, stop_details = _stop(reply)
        return JSONResponse(
            {
                "id": f"msg_wire{wire._next_id()}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": _content(wire, body, reply),
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "stop_details": stop_details,
                "usage": usage,
            },
            headers=request_id,
        )

    return app


@contextmanager
def serve_anthropic_wire(startup_timeout_s: float = 5.0) -> Iterator[AnthropicWire]:
    """Run a scripted Anthropic Messages server on a free 127.0.0.1 port; yield its state."""
    wire = AnthropicWire()
    # Bind first and hand uvicorn the socket: no race for the port between choosing and binding.
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    # The SDK's base URL is the server's root: it posts to /v1/messages.
    wire.base_url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(
        create_app(wire),
        lifespan="off",
        ws="none",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="anthropic-wire", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("anthropic_wire: uvicorn did not start")
            time.sleep(0.01)
        yield wire
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
