"""OpenAI-compatible model adapter on the official ``openai`` SDK.

Works against api.openai.com and any server speaking the same wire protocol (vLLM, llama.cpp,
Ollama, LM Studio, ...) through ``base_url``.
"""

from __future__ import annotations

import json
import os
import time
from types import TracebackType
from typing import Self

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from openai.types.chat.completion_create_params import ResponseFormat

from tactful.errors import ConfigurationError, ModelError
from tactful.llm.base import (
    BatchedEmbedder,
    Generation,
    Generator,
    OnText,
    Prompt,
    Streamed,
    T,
    Usage,
    retryable_status,
)
from tactful.llm.structured import (
    Completion,
    StructuredOutput,
    excerpt,
    provider_error_text,
    truncate,
)

# Local servers ignore the key, but the SDK refuses to start without one.
_PLACEHOLDER_API_KEY = "not-needed"


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


def _provider_failure(
    exc: openai.OpenAIError,
    *,
    what: str,
    client: openai.AsyncOpenAI,
    timeout_s: float | None = None,
) -> ModelError:
    """Map an SDK exception to a ModelError whose message says what happened, not which class."""
    if isinstance(exc, openai.APIStatusError):
        said = provider_error_text(exc.body, exc.response.reason_phrase)
        hint = " (check the API key)" if exc.status_code in (401, 403) else ""
        return ModelError(
            f"{what}: the provider answered HTTP {exc.status_code}: {said}{hint}",
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
    return ModelError(f"{what}: the provider call failed: {truncate(str(exc))}")


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
        owns_client: bool,
    ) -> None:
        self._owns_client = client is None or owns_client
        self._client = client or openai.AsyncOpenAI(
            api_key=_resolve_api_key(api_key, base_url),
            base_url=base_url,
            timeout=timeout_s,
            max_retries=max_retries,
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool (a client passed in by the caller is left open,
        unless it was handed over with ``owns_client``)."""
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

    ``client`` is an SDK client built by the caller (say, ``openai.AsyncAzureOpenAI``); it is
    left open by ``aclose`` unless ``owns_client`` hands it over. ``provider`` names the
    provider in traces and metrics.
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
        owns_client: bool = False,
        provider: str = "openai",
    ) -> None:
        self.model_name = model
        self.provider = provider
        self._structured = StructuredOutput(use_json_schema=use_json_schema)
        self._init_client(
            client,
            base_url=base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            owns_client=owns_client,
        )

    async def generate(
        self, prompt: Prompt, schema: type[T], *, stage: str, timeout_s: float | None = None
    ) -> Generation[T]:
        async def complete(
            messages: list[ChatCompletionMessageParam], response_format: ResponseFormat
        ) -> Completion:
            return await self._complete(messages, response_format, stage=stage, timeout_s=timeout_s)

        return await self._structured.generate(
            prompt, schema, model_name=self.model_name, stage=stage, complete=complete
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
    ) -> Completion:
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
                f"{what} answered with a body that is not JSON: {excerpt(exc.doc)}",
                retryable=True,
            ) from exc
        if not isinstance(answer, ChatCompletion):
            # The SDK hands back the raw text of a response that is not JSON.
            raise ModelError(
                f"{what} answered with a body that is not JSON: {excerpt(answer)}",
                retryable=True,
            )
        return _completion(answer)


def _completion(answer: ChatCompletion) -> Completion:
    """The answer text, what it cost, the refusal if the model refused, and whether it was
    cut off."""
    usage = Usage()
    if answer.usage is not None:
        details = answer.usage.prompt_tokens_details
        usage = Usage(
            prompt_tokens=answer.usage.prompt_tokens,
            completion_tokens=answer.usage.completion_tokens,
            cached_tokens=(details.cached_tokens or 0) if details else 0,
        )
    if not answer.choices:
        return Completion(text="", usage=usage, model=answer.model)
    choice = answer.choices[0]
    return Completion(
        text=choice.message.content or "",
        usage=usage,
        model=answer.model,
        refusal=choice.message.refusal,
        truncated=choice.finish_reason == "length",
    )


class OpenAIEmbedder(_OwnedClient, BatchedEmbedder):
    """Sentence embeddings through the embeddings API of any OpenAI-compatible server.

    ``dimensions`` is what the caller's index expects; it is requested from the
    ``text-embedding-3`` models (which can shorten vectors), or from any model when
    ``send_dimensions`` says so, and checked for every model. ``client`` and ``owns_client``
    as for ``OpenAIGenerator``.
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
        owns_client: bool = False,
        send_dimensions: bool | None = None,
    ) -> None:
        if dimensions < 1:
            raise ConfigurationError(f"Embedding dimensions must be positive, got {dimensions}.")
        self.model_name = model
        self.dimensions = dimensions
        self._sends_dimensions = (
            model.startswith("text-embedding-3") if send_dimensions is None else send_dimensions
        )
        self._init_client(
            client,
            base_url=base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            owns_client=owns_client,
        )

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
