"""OpenAI-compatible model adapter on the official ``openai`` SDK.

Works against api.openai.com and any server speaking the same wire protocol (vLLM, llama.cpp,
Ollama, LM Studio, ...) through ``base_url``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import numpy as np
import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from openai.types.chat.completion_create_params import ResponseFormat
from pydantic import BaseModel, ValidationError

from tactful.errors import ConfigurationError, ModelError
from tactful.llm.base import (
    Embedder,
    Generation,
    Generator,
    OnText,
    Prompt,
    Streamed,
    T,
    Usage,
    Vectors,
    retryable_status,
)

# Local servers ignore the key, but the SDK refuses to start without one.
_PLACEHOLDER_API_KEY = "not-needed"
# Comfortably under every provider's per-request input limit (OpenAI allows 2048).
_EMBED_BATCH = 256
_ERROR_TEXT_LIMIT = 300
_SCHEMA_NAME = re.compile(r"[^a-zA-Z0-9_-]")
_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n(?P<body>.*?)\n?```$", re.DOTALL)


def _resolve_api_key(api_key: str | None, base_url: str | None) -> str:
    if api_key:
        return api_key
    env_key = os.environ.get("OPENAI_API_KEY")
    if env_key:
        return env_key
    if base_url:
        return _PLACEHOLDER_API_KEY
    raise ConfigurationError(
        "The OpenAI model provider needs an API key or a base URL: set TACTFUL_OPENAI_API_KEY, "
        "or set TACTFUL_OPENAI_BASE_URL to an OpenAI-compatible server (e.g. a local one)."
    )


def _truncate(text: str, limit: int = _ERROR_TEXT_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _provider_message(exc: openai.APIStatusError) -> str:
    """The provider's own error text, without the SDK's ``Error code: ...`` wrapping."""
    body: object = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return _truncate(inner["message"])
        if isinstance(inner, str):
            return _truncate(inner)
    if isinstance(body, str) and body.strip():
        return _truncate(body)
    return exc.response.reason_phrase or "no error details"


def _provider_failure(
    exc: openai.OpenAIError,
    *,
    what: str,
    client: openai.AsyncOpenAI,
    timeout_s: float | None = None,
) -> ModelError:
    """Map an SDK exception to a ModelError whose message says what happened, not which class."""
    if isinstance(exc, openai.APIStatusError):
        hint = " (check the API key)" if exc.status_code in (401, 403) else ""
        return ModelError(
            f"{what}: the provider answered HTTP {exc.status_code}: {_provider_message(exc)}{hint}",
            retryable=retryable_status(exc.status_code),
        )
    if isinstance(exc, openai.APITimeoutError):
        timeout = timeout_s if timeout_s is not None else client.timeout
        after = f" after {timeout:g} s" if isinstance(timeout, int | float) else ""
        return ModelError(
            f"{what}: the request to {client.base_url} timed out{after}", retryable=True
        )
    if isinstance(exc, openai.APIConnectionError):
        return ModelError(
            f"{what}: could not connect to the provider at {client.base_url}", retryable=True
        )
    return ModelError(f"{what}: the provider call failed: {_truncate(str(exc))}")


def _strict_compatible(node: Any) -> Any:
    """Shape a pydantic JSON schema the way OpenAI structured outputs expect.

    Objects with declared properties get ``additionalProperties: false`` and list every
    property as required; free-form mappings (``dict[str, X]``) are left alone.
    """
    if isinstance(node, list):
        return [_strict_compatible(item) for item in node]
    if not isinstance(node, dict):
        return node
    shaped = {key: _strict_compatible(value) for key, value in node.items()}
    properties = shaped.get("properties")
    if isinstance(properties, dict) and shaped.get("type") == "object":
        shaped.setdefault("additionalProperties", False)
        shaped["required"] = list(properties)
    return shaped


def _describe_invalid(exc: ValidationError, *, limit: int) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    parts = []
    for error in errors[:limit]:
        location = ".".join(str(part) for part in error["loc"])
        parts.append(f"{location}: {error['msg']}" if location else error["msg"])
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more error(s)")
    return "; ".join(parts)


def _strip_fence(text: str) -> str:
    # In plain JSON mode models often wrap the object in a markdown fence; not worth a retry.
    stripped = text.strip()
    match = _FENCE.match(stripped)
    return match.group("body") if match else stripped


class _OwnedClient:
    """Holds the SDK client and closes it only when this adapter created it."""

    _client: openai.AsyncOpenAI
    _owns_client: bool

    def _init_client(
        self,
        client: openai.AsyncOpenAI | None,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout_s: float,
        max_retries: int,
    ) -> None:
        self._owns_client = client is None
        self._client = client or openai.AsyncOpenAI(
            api_key=_resolve_api_key(api_key, base_url),
            base_url=base_url,
            timeout=timeout_s,
            max_retries=max_retries,
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool (a client passed in by the caller is left open)."""
        if self._owns_client:
            await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _timeout(timeout_s: float | None) -> float | openai.NotGiven:
    return openai.NOT_GIVEN if timeout_s is None else timeout_s


class OpenAIGenerator(_OwnedClient, Generator):
    """Structured generation through the chat completions API of any OpenAI-compatible server.

    With ``use_json_schema`` the schema goes in ``response_format`` (structured outputs);
    without it the server is only asked for a JSON object and the schema is described in the
    system message, for servers that support JSON mode but not JSON schemas. An answer that
    does not validate gets one repair retry that shows the model its answer and the error.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        use_json_schema: bool = True,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        self.model_name = model
        self.provider = "openai"
        self._use_json_schema = use_json_schema
        self._schemas: dict[type[BaseModel], dict[str, Any]] = {}
        self._init_client(
            client, base_url=base_url, api_key=api_key, timeout_s=timeout_s, max_retries=max_retries
        )

    async def generate(
        self, prompt: Prompt, schema: type[T], *, stage: str, timeout_s: float | None = None
    ) -> Generation[T]:
        started = time.perf_counter()
        # System first and unchanged across turns, so provider prompt caches hit on the prefix.
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": self._system_message(prompt.system, schema)},
            {"role": "user", "content": prompt.user},
        ]
        response_format = self._response_format(schema)
        prompt_tokens = completion_tokens = cached_tokens = 0
        problem = ""
        for attempt in (1, 2):
            completion = await self._complete(
                messages, response_format, stage=stage, timeout_s=timeout_s
            )
            if completion.usage is not None:
                prompt_tokens += completion.usage.prompt_tokens
                completion_tokens += completion.usage.completion_tokens
                details = completion.usage.prompt_tokens_details
                if details is not None and details.cached_tokens:
                    cached_tokens += details.cached_tokens
            raw, refusal, truncated = _answer(completion)
            if refusal is not None:
                problem = f"the model refused: {_truncate(refusal)}"
            else:
                try:
                    content = schema.model_validate_json(_strip_fence(raw))
                except ValidationError as exc:
                    problem = _describe_invalid(exc, limit=10)
                    if truncated:
                        problem += " (the answer was cut off at the token limit)"
                else:
                    return Generation(
                        content=content,
                        usage=Usage(
                            prompt_tokens=prompt_tokens,
                            completion_tokens=completion_tokens,
                            cached_tokens=cached_tokens,
                        ),
                        model=completion.model or self.model_name,
                        latency_ms=(time.perf_counter() - started) * 1000.0,
                        attempts=attempt,
                        raw=raw,
                    )
            messages = [
                *messages,
                {"role": "assistant", "content": raw},
                {
                    "role": "user",
                    "content": (
                        "Your previous answer is not valid for the required JSON schema: "
                        f"{problem}\nReply again with only the corrected JSON object."
                    ),
                },
            ]
        raise ModelError(
            f"Model {self.model_name!r} (stage {stage!r}) gave an invalid answer even after a "
            f"repair retry: {_truncate(problem)}"
        )

    supports_streaming = True

    async def stream(
        self, prompt: Prompt, *, stage: str, on_text: OnText, timeout_s: float | None = None
    ) -> Streamed:
        started = time.perf_counter()
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.user},
        ]
        what = f"Model {self.model_name!r} (stage {stage!r})"
        parts: list[str] = []
        usage = Usage()
        model = self.model_name
        try:
            chunks = await self._client.chat.completions.create(
                model=self.model_name,
                messages=messages,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
                timeout=_timeout(timeout_s),
            )
            async for chunk in chunks:
                model = chunk.model or model
                if chunk.usage is not None:
                    details = chunk.usage.prompt_tokens_details
                    usage = Usage(
                        prompt_tokens=chunk.usage.prompt_tokens,
                        completion_tokens=chunk.usage.completion_tokens,
                        cached_tokens=(details.cached_tokens or 0) if details else 0,
                    )
                for choice in chunk.choices:
                    piece = choice.delta.content if choice.delta else None
                    if piece:
                        parts.append(piece)
                        await on_text(piece)
        except openai.OpenAIError as exc:
            raise _provider_failure(
                exc, what=what, client=self._client, timeout_s=timeout_s
            ) from exc
        text = "".join(parts)
        if not text.strip():
            raise ModelError(f"{what} streamed an empty answer")
        return Streamed(
            text=text, usage=usage, model=model, latency_ms=(time.perf_counter() - started) * 1000
        )

    async def _complete(
        self,
        messages: list[ChatCompletionMessageParam],
        response_format: ResponseFormat,
        *,
        stage: str,
        timeout_s: float | None = None,
    ) -> ChatCompletion:
        what = f"Model {self.model_name!r} (stage {stage!r})"
        try:
            answer: object = await self._client.chat.completions.create(
                model=self.model_name,
                messages=messages,
                response_format=response_format,
                temperature=0,
                timeout=_timeout(timeout_s),
            )
        except openai.OpenAIError as exc:
            raise _provider_failure(
                exc, what=what, client=self._client, timeout_s=timeout_s
            ) from exc
        except json.JSONDecodeError as exc:
            # HTTP 200 with a body that is not JSON (a proxy's error page, a truncated answer).
            raise ModelError(
                f"{what} answered with a body that is not JSON: {_excerpt(exc.doc)}",
                retryable=True,
            ) from exc
        if not isinstance(answer, ChatCompletion):
            # The SDK hands back the raw text of a response that is not JSON.
            raise ModelError(
                f"{what} answered with a body that is not JSON: {_excerpt(answer)}",
                retryable=True,
            )
        return answer

    def _json_schema(self, schema: type[BaseModel]) -> dict[str, Any]:
        if schema not in self._schemas:
            self._schemas[schema] = _strict_compatible(schema.model_json_schema())
        # A copy, so the SDK or a caller can never mutate the cached schema.
        return copy.deepcopy(self._schemas[schema])

    def _response_format(self, schema: type[BaseModel]) -> ResponseFormat:
        if not self._use_json_schema:
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {
                "name": _SCHEMA_NAME.sub("_", schema.__name__)[:64] or "answer",
                "schema": self._json_schema(schema),
                # Strict mode rejects common pydantic constructs; validation happens here anyway.
                "strict": False,
            },
        }

    def _system_message(self, system: str, schema: type[BaseModel]) -> str:
        if self._use_json_schema:
            return system
        # JSON mode only guarantees *some* JSON object, so the schema has to be in the prompt.
        described = json.dumps(self._json_schema(schema), separators=(",", ":"))
        return (
            f"{system}\n\nAnswer with a single JSON object, and nothing else, that validates "
            f"against this JSON Schema:\n{described}"
        )


def _answer(completion: ChatCompletion) -> tuple[str, str | None, bool]:
    """The answer text, the refusal if the model refused, and whether it was cut off."""
    if not completion.choices:
        return "", None, False
    choice = completion.choices[0]
    return (
        choice.message.content or "",
        choice.message.refusal,
        choice.finish_reason == "length",
    )


class OpenAIEmbedder(_OwnedClient, Embedder):
    """Sentence embeddings through the embeddings API of any OpenAI-compatible server.

    ``dimensions`` is what the caller's index expects; it is requested from the
    ``text-embedding-3`` models (which can shorten vectors) and checked for every model.
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        dimensions: int,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        if dimensions < 1:
            raise ConfigurationError(f"Embedding dimensions must be positive, got {dimensions}.")
        self.model_name = model
        self.dimensions = dimensions
        self._sends_dimensions = model.startswith("text-embedding-3")
        self._init_client(
            client, base_url=base_url, api_key=api_key, timeout_s=timeout_s, max_retries=max_retries
        )

    async def embed(self, texts: Sequence[str]) -> Vectors:
        items = list(texts)
        if not items:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        rows: list[list[float]] = []
        for start in range(0, len(items), _EMBED_BATCH):
            rows.extend(await self._embed_batch(items[start : start + _EMBED_BATCH]))
        matrix = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if np.any(norms == 0.0):
            raise ModelError(f"Embedding model {self.model_name!r} returned an all-zero vector.")
        unit: Vectors = (matrix / norms).astype(np.float32, copy=False)
        return unit

    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        what = f"Embedding model {self.model_name!r}"
        try:
            response = await self._client.embeddings.create(
                model=self.model_name,
                input=batch,
                # Only the text-embedding-3 family accepts it; other servers may reject the field.
                dimensions=self.dimensions if self._sends_dimensions else openai.omit,
                # Floats, not the SDK's default base64: not every compatible server does base64.
                encoding_format="float",
            )
        except openai.OpenAIError as exc:
            raise _provider_failure(exc, what=what, client=self._client) from exc
        # The API tags each vector with its input index; do not rely on response order.
        data = sorted(response.data, key=lambda item: item.index)
        if [item.index for item in data] != list(range(len(batch))):
            raise ModelError(
                f"{what} returned {len(data)} vectors for {len(batch)} texts "
                "(or with mismatched indices)."
            )
        for item in data:
            if len(item.embedding) != self.dimensions:
                raise ModelError(
                    f"{what} returned {len(item.embedding)}-dimensional vectors but "
                    f"{self.dimensions} were configured; set the dimensions to match the model."
                )
        return [item.embedding for item in data]


def _excerpt(body: object, limit: int = 200) -> str:
    """The start of a provider's raw answer, on one line, for errors and traces."""
    text = " ".join(str(body).split())
    return repr(text if len(text) <= limit else text[:limit] + "...")
