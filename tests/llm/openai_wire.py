"""A scripted server that speaks the OpenAI wire protocol, for testing adapters end to end.

Tests queue what ``POST /v1/chat/completions`` answers (a content string, a ``Reply`` or a
``Fail``), or set a ``responder`` that answers from the request itself, and read back every
request body the client sent. ``POST /v1/embeddings`` answers
deterministic vectors derived from each text (see ``vector_for``) unless a ``Fail`` is queued.
The same routes answer Azure OpenAI's paths (``/openai/deployments/{deployment}/...``, from
``OpenAIWire.endpoint``), which also require an ``api-version`` query parameter and an
``api-key`` header, as Azure does.
``POST /v1/moderations`` answers the queued ``Moderated`` results (or a ``Fail``), else a
result that flags nothing.
``serve_openai_wire`` runs the app in a real uvicorn server on 127.0.0.1 in a background thread.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tactful.server import listening_socket


@dataclass(frozen=True)
class Reply:
    """A successful chat completion answering ``content``."""

    content: str | None
    prompt_tokens: int = 11
    completion_tokens: int = 7
    finish_reason: str = "stop"
    refusal: str | None = None
    # Prompt tokens the provider says it served from its prompt cache.
    cached_tokens: int = 0
    # Seconds to wait before answering (returns early if the client hangs up).
    delay_s: float = 0.0


@dataclass(frozen=True)
class Fail:
    """An error response in OpenAI's ``{"error": {...}}`` shape."""

    status: int
    message: str = "scripted failure"
    type: str = "server_error"


@dataclass(frozen=True)
class Body:
    """HTTP 200 with this raw body (say, one that is not JSON at all)."""

    text: str
    content_type: str = "application/json"


# OpenAI's moderation categories, as its endpoint names them.
MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


@dataclass(frozen=True)
class Moderated:
    """A moderation result: the categories flagged, each with its score (the others score
    0.01); ``flagged`` defaults to whether any is."""

    categories: dict[str, float] = field(default_factory=dict)
    flagged: bool | None = None
    delay_s: float = 0.0


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    # The query parameters (Azure's api-version).
    query: dict[str, str] = field(default_factory=dict)


def vector_for(text: str, dims: int) -> list[float]:
    """A deterministic, *not* normalised vector for ``text`` (so tests can check normalising)."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [(digest[i % len(digest)] - 127.5) / 16.0 for i in range(dims)]
    return [value * 3.0 for value in raw]


# Answers a chat request (its JSON body) when no reply is queued, e.g. from the prompt it reads.
Responder = Callable[[dict[str, Any]], "str | Reply | Fail | Body"]


@dataclass
class OpenAIWire:
    """The scripted state shared by the app (server thread) and the test (test thread)."""

    replies: deque[Reply | Fail | Body] = field(default_factory=deque)
    responder: Responder | None = None
    embedding_failures: deque[Fail] = field(default_factory=deque)
    moderations: deque[Moderated | Fail] = field(default_factory=deque)
    requests: list[Recorded] = field(default_factory=list)
    # Answer embeddings in reverse order (indices stay correct) to prove the client re-orders.
    reverse_embeddings: bool = False
    base_url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def script(self, *items: str | Reply | Fail | Body | int) -> None:
        """Queue chat answers: a content string, a ``Reply``, a ``Fail``, a raw ``Body`` or an
        HTTP status."""
        with self._lock:
            for item in items:
                if isinstance(item, str):
                    self.replies.append(Reply(item))
                elif isinstance(item, int):
                    self.replies.append(Fail(item))
                else:
                    self.replies.append(item)

    def fail_embeddings(self, *failures: Fail) -> None:
        with self._lock:
            self.embedding_failures.extend(failures)

    def moderate(self, *results: Moderated | Fail) -> None:
        """Queue what ``POST /v1/moderations`` answers next."""
        with self._lock:
            self.moderations.extend(results)

    def reset(self) -> None:
        with self._lock:
            self.moderations.clear()
            self.replies.clear()
            self.embedding_failures.clear()
            self.requests.clear()
            self.reverse_embeddings = False
            self.responder = None

    @property
    def endpoint(self) -> str:
        """The server's root URL, as an Azure OpenAI resource's endpoint."""
        return self.base_url.removesuffix("/v1")

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def moderation_requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.path.endswith("/moderations")]

    @property
    def embedding_requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.path.endswith("/embeddings")]

    def _record(self, request: Request, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(
                Recorded(request.url.path, body, dict(request.headers), dict(request.query_params))
            )

    def _next_reply(self, body: dict[str, Any]) -> Reply | Fail | Body:
        with self._lock:
            if self.replies:
                return self.replies.popleft()
            responder = self.responder
        if responder is not None:
            answer = responder(body)
            return Reply(answer) if isinstance(answer, str) else answer
        return Fail(500, "openai_wire: no scripted reply left")

    def _next_moderation(self) -> Moderated | Fail:
        with self._lock:
            return self.moderations.popleft() if self.moderations else Moderated()

    def _next_embedding_failure(self) -> Fail | None:
        with self._lock:
            return self.embedding_failures.popleft() if self.embedding_failures else None

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)


def _error(fail: Fail) -> JSONResponse:
    return JSONResponse(
        status_code=fail.status,
        content={
            "error": {"message": fail.message, "type": fail.type, "param": None, "code": None}
        },
    )


async def _wait(request: Request, seconds: float, tick_s: float = 0.02) -> None:
    # Polls so that a client that gave up (timed out) frees the server for a prompt shutdown.
    for _ in range(max(1, round(seconds / tick_s))):
        if await request.is_disconnected():
            return
        await asyncio.sleep(tick_s)


async def _chunks(wire: OpenAIWire, body: dict[str, Any], reply: Reply) -> Any:
    """The answer as OpenAI streams it: one chunk per word, then the usage, then [DONE]."""
    import json
    import re

    ident = f"chatcmpl-wire{wire._next_id()}"

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        payload = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "unknown"),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if delta else [],
            **extra,
        }
        return f"data: {json.dumps(payload)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    for piece in re.findall(r"\S+\s*", reply.content or ""):
        yield chunk({"content": piece})
    yield chunk({"content": ""}, finish=reply.finish_reason)
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
        }
        yield chunk({}, usage=usage)
    yield "data: [DONE]\n\n"


def create_app(wire: OpenAIWire) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> Response:
        body = await request.json()
        wire._record(request, body)
        reply = wire._next_reply(body)
        if isinstance(reply, Fail):
            return _error(reply)
        if isinstance(reply, Body):
            return Response(reply.text, media_type=reply.content_type)
        if reply.delay_s:
            await _wait(request, reply.delay_s)
        if body.get("stream"):
            return StreamingResponse(_chunks(wire, body, reply), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": f"chatcmpl-wire{wire._next_id()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "unknown"),
                "system_fingerprint": "fp_openai_wire",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": reply.content,
                            "refusal": reply.refusal,
                        },
                        "logprobs": None,
                        "finish_reason": reply.finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": reply.prompt_tokens,
                    "completion_tokens": reply.completion_tokens,
                    "total_tokens": reply.prompt_tokens + reply.completion_tokens,
                    "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
                },
            }
        )

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> JSONResponse:
        body = await request.json()
        wire._record(request, body)
        failure = wire._next_embedding_failure()
        if failure is not None:
            return _error(failure)
        texts = body["input"]
        texts = [texts] if isinstance(texts, str) else texts
        dims = int(body.get("dimensions") or 8)
        data: list[dict[str, Any]] = []
        for index, text in enumerate(texts):
            vector = vector_for(text, dims)
            embedding: list[float] | str = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        if wire.reverse_embeddings:
            data.reverse()
        tokens = sum(len(text.split()) for text in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", "unknown"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    @app.post("/v1/moderations")
    async def moderations(request: Request) -> JSONResponse:
        body = await request.json()
        wire._record(request, body)
        result = wire._next_moderation()
        if isinstance(result, Fail):
            return _error(result)
        if result.delay_s:
            await _wait(request, result.delay_s)
        texts = body["input"]
        count = 1 if isinstance(texts, str) else len(texts)
        categories = {c: c in result.categories for c in MODERATION_CATEGORIES}
        scores = {c: result.categories.get(c, 0.01) for c in MODERATION_CATEGORIES}
        applied = {c: ["text"] for c in MODERATION_CATEGORIES}
        flagged = bool(result.categories) if result.flagged is None else result.flagged
        one = {
            "flagged": flagged,
            "categories": categories,
            "category_scores": scores,
            "category_applied_input_types": applied,
        }
        return JSONResponse(
            {
                "id": f"modr-{wire._next_id()}",
                "model": body.get("model", "omni-moderation-latest"),
                "results": [one] * count,
            }
        )

    # Azure OpenAI: the deployment is in the path and the gate checks what Azure requires; the
    # answers are the same.
    gate = [Depends(_azure_gate)]
    app.add_api_route(
        f"{AZURE_DEPLOYMENTS}/{{deployment}}/chat/completions",
        chat_completions,
        methods=["POST"],
        response_model=None,
        dependencies=gate,
    )
    app.add_api_route(
        f"{AZURE_DEPLOYMENTS}/{{deployment}}/embeddings",
        embeddings,
        methods=["POST"],
        dependencies=gate,
    )
    app.add_exception_handler(_AzureRejected, _azure_rejected)
    return app


AZURE_DEPLOYMENTS = "/openai/deployments"


class _AzureRejected(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def _azure_gate(request: Request) -> None:
    """What Azure's gateway checks before the model service sees a request."""
    if not request.query_params.get("api-version"):
        raise _AzureRejected(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if not request.headers.get("api-key"):
        raise _AzureRejected(
            401,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
            "provide a valid key for an active subscription and use a correct regional API "
            "endpoint for your resource.",
        )


async def _azure_rejected(request: Request, exc: Exception) -> Response:
    # An error in Azure's own shape (its gateway's, not the model service's).
    assert isinstance(exc, _AzureRejected)
    return JSONResponse(
        status_code=exc.status, content={"error": {"code": exc.code, "message": exc.message}}
    )


@contextmanager
def serve_openai_wire(startup_timeout_s: float = 5.0) -> Iterator[OpenAIWire]:
    """Run a scripted OpenAI-compatible server on a free 127.0.0.1 port; yield its state."""
    wire = OpenAIWire()
    # Bind first and hand uvicorn the socket: no race for the port between choosing and binding.
    sock = listening_socket("127.0.0.1", 0)  # TCP_NODELAY on its connections, as tactful's
    port = sock.getsockname()[1]
    wire.base_url = f"http://127.0.0.1:{port}/v1"
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
        target=server.run, kwargs={"sockets": [sock]}, name="openai-wire", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("openai_wire: uvicorn did not start")
            time.sleep(0.01)
        yield wire
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
