"""Model adapters on LiteLLM, for the providers without an adapter of their own: Gemini,
Vertex AI, Bedrock, Mistral, Ollama, and the rest of LiteLLM's list.

The model is named the LiteLLM way, ``<provider>/<model>`` (``gemini/gemini-2.0-flash``,
``bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0``, ``openai/<name>`` for any
OpenAI-compatible server at ``api_base``). LiteLLM is an optional dependency
(``pip install 'tactful[litellm]'``), imported on first use only, and set to work offline: it
reads its bundled model catalogue and tokenizers instead of downloading them, and talks only to
the provider it is asked to.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import time
from types import TracebackType
from typing import Any, Self

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam
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
from tactful.llm.structured import Completion, StructuredOutput, excerpt, truncate

# "litellm.RateLimitError: RateLimitError: OpenAIException - " before the provider's own text.
_LITELLM_PREFIX = re.compile(r"^(litellm\.\w+: )?(\w+: )?(\w*Exception - )?")
# The openai SDK's "Error code: 429 - " before the provider's own text.
_SDK_PREFIX = re.compile(r"^Error code: \d+ - ")
# How LiteLLM's OpenAI route reports an HTTP 200 whose body is not a completion.
_INVALID_BODY = re.compile(r"invalid response from LLM endpoint\. Received: (?P<body>.*)", re.S)


@functools.cache
def _litellm() -> Any:
    """LiteLLM, imported on first use and kept offline (untyped here: mypy need not read it)."""
    # Without these LiteLLM fetches its model catalogue from GitHub on import (and retries,
    # slowing every start-up where there is no network) and may fetch tokenizers later.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    try:
        module: Any = importlib.import_module("litellm")
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ConfigurationError(
            "The LiteLLM model provider needs the litellm package: pip install 'tactful[litellm]'."
        ) from exc
    # No "Give Feedback / Get Help" banners printed on every provider error.
    module.suppress_debug_info = True
    return module


@functools.cache
def _provider_exception() -> type[Exception]:
    """LiteLLM's exception for a provider's failed HTTP call (it keeps the provider's text)."""
    transformation = importlib.import_module("litellm.llms.base_llm.chat.transformation")
    base: type[Exception] = transformation.BaseLLMException
    return base


def _chain(exc: BaseException) -> list[BaseException]:
    links: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in links:
        links.append(link)
        link = link.__cause__ or link.__context__
    return links


def _detail(exc: BaseException, links: list[BaseException]) -> str:
    """The provider's own error text, without LiteLLM's and the SDK's wrapping."""
    provider_exception = _provider_exception()
    raw = next(
        (
            message
            for link in links
            if isinstance(link, provider_exception)
            and isinstance(message := getattr(link, "message", None), str)
        ),
        None,
    )
    if raw is None:
        raw = _LITELLM_PREFIX.sub("", str(getattr(exc, "message", None) or exc).strip(), count=1)
    text = _SDK_PREFIX.sub("", raw.strip(), count=1)
    try:
        body: object = json.loads(text)
    except ValueError:
        return text
    # Providers that answer JSON errors: {"error": {"message": ...}}, {"message": ...}, ...
    inner = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(inner, dict) and isinstance(inner.get("message"), str):
        return str(inner["message"])
    return inner if isinstance(inner, str) else text


def _http_status(links: list[BaseException]) -> int | None:
    """The status of an HTTP answer the provider actually gave (LiteLLM also invents some)."""
    for link in links:
        if isinstance(link, httpx.HTTPStatusError):
            return link.response.status_code
        from_sdk = not type(link).__module__.startswith("litellm")
        if isinstance(link, openai.APIStatusError) and from_sdk:
            return link.status_code
    return None


def _describe_failure(
    exc: Exception, *, what: str, api_base: str | None, timeout_s: float
) -> ModelError:
    """Map whatever LiteLLM raised to a ModelError that says what happened."""
    links = _chain(exc)
    if any(
        isinstance(link, openai.APITimeoutError | httpx.TimeoutException | TimeoutError)
        for link in links
    ):
        to = f" to {api_base}" if api_base else ""
        return ModelError(
            f"{what}: the request{to} timed out after {timeout_s:g} s", retryable=True
        )
    if any(isinstance(link, httpx.ConnectError | ConnectionError) for link in links):
        at = f" at {api_base}" if api_base else ""
        return ModelError(f"{what}: could not connect to the provider{at}", retryable=True)
    for link in links:
        if isinstance(link, json.JSONDecodeError):
            return ModelError(
                f"{what} answered with a body that is not JSON: {excerpt(link.doc)}",
                retryable=True,
            )
    detail = _detail(exc, links)
    invalid = _INVALID_BODY.search(detail)
    if invalid:
        body = invalid.group("body").removesuffix(
            ". Check the reverse proxy or model server configuration."
        )
        return ModelError(
            f"{what} answered with a body that is not JSON: {truncate(body, 200)}", retryable=True
        )
    status = _http_status(links)
    if status is None:
        return ModelError(f"{what}: the provider call failed: {truncate(detail)}")
    hint = " (check the API key)" if status in (401, 403) else ""
    return ModelError(
        f"{what}: the provider answered HTTP {status}: {truncate(detail)}{hint}",
        retryable=retryable_status(status),
    )


def _usage(response: Any) -> Usage:
    usage = getattr(response, "usage", None)
    if usage is None:
        return Usage()
    details = getattr(usage, "prompt_tokens_details", None)
    return Usage(
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        cached_tokens=getattr(details, "cached_tokens", 0) or 0,
    )


class _LiteLLMCalls:
    """What both adapters share: the model, where to reach it, and how long to wait."""

    model_name: str

    def _init_calls(
        self,
        model: str,
        *,
        api_base: str | None,
        api_key: str | None,
        timeout_s: float,
        max_retries: int,
        extra: dict[str, Any] | None,
    ) -> None:
        self._litellm = _litellm()
        self.model_name = model
        self._api_base = api_base
        self._timeout_s = timeout_s
        self._options: dict[str, Any] = {
            **(extra or {}),
            # LiteLLM's own retries, for every provider; max_retries reaches the SDKs it uses,
            # and the two do not add up.
            "num_retries": max_retries,
            "max_retries": max_retries,
        }
        if api_base is not None:
            self._options["api_base"] = api_base
        if api_key is not None:
            self._options["api_key"] = api_key

    def _timeout(self, timeout_s: float | None) -> float:
        return self._timeout_s if timeout_s is None else timeout_s

    def _failure(self, exc: Exception, *, what: str, timeout_s: float) -> ModelError:
        return _describe_failure(exc, what=what, api_base=self._api_base, timeout_s=timeout_s)

    async def aclose(self) -> None:
        """Nothing to release: LiteLLM keeps its HTTP clients per event loop, shared by every
        adapter, and closes them when the process exits."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class LiteLLMGenerator(_LiteLLMCalls, Generator):
    """Structured generation through ``litellm.acompletion``, for any provider LiteLLM knows.

    ``model`` is LiteLLM's ``<provider>/<model>``; ``api_base`` and ``api_key`` override the
    provider's defaults (else LiteLLM reads the provider's usual environment variables, such as
    ``GEMINI_API_KEY``). ``extra`` goes to every call as is (``vertex_project``,
    ``aws_region_name``, ``drop_params``, ...). Structured outputs, JSON object mode and the
    repair retry are as for ``OpenAIGenerator``; LiteLLM translates ``response_format`` for
    providers that have their own way of asking for JSON.
    """

    provider = "litellm"
    supports_streaming = True

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        use_json_schema: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._structured = StructuredOutput(use_json_schema=use_json_schema)
        self._init_calls(
            model,
            api_base=api_base,
            api_key=api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            extra=extra,
        )

    async def generate(
        self, prompt: Prompt, schema: type[T], *, stage: str, timeout_s: float | None = None
    ) -> Generation[T]:
        what = f"Model {self.model_name!r} (stage {stage!r})"
        timeout = self._timeout(timeout_s)

        async def complete(
            messages: list[ChatCompletionMessageParam], response_format: ResponseFormat
        ) -> Completion:
            try:
                response = await self._litellm.acompletion(
                    **self._options,
                    model=self.model_name,
                    messages=messages,
                    response_format=response_format,
                    temperature=0,
                    timeout=timeout,
                )
            except Exception as exc:
                raise self._failure(exc, what=what, timeout_s=timeout) from exc
            return _completion(response)

        return await self._structured.generate(
            prompt, schema, model_name=self.model_name, stage=stage, complete=complete
        )

    async def stream(
        self, prompt: Prompt, *, stage: str, on_text: OnText, timeout_s: float | None = None
    ) -> Streamed:
        started = time.perf_counter()
        what = f"Model {self.model_name!r} (stage {stage!r})"
        timeout = self._timeout(timeout_s)
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.user},
        ]
        parts: list[str] = []
        usage = Usage()
        model = self.model_name
        try:
            response = await self._litellm.acompletion(
                **self._options,
                model=self.model_name,
                messages=messages,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
                timeout=timeout,
            )
            chunks = response.__aiter__()
        except Exception as exc:
            raise self._failure(exc, what=what, timeout_s=timeout) from exc
        while True:
            # Only LiteLLM's failures become model errors, not those of on_text.
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except Exception as exc:
                raise self._failure(exc, what=what, timeout_s=timeout) from exc
            model = getattr(chunk, "model", None) or model
            if getattr(chunk, "usage", None) is not None:
                usage = _usage(chunk)
            for choice in getattr(chunk, "choices", None) or ():
                piece = choice.delta.content if choice.delta else None
                if piece:
                    parts.append(piece)
                    await on_text(piece)
        text = "".join(parts)
        if not text.strip():
            raise ModelError(f"{what} streamed an empty answer")
        return Streamed(
            text=text, usage=usage, model=model, latency_ms=(time.perf_counter() - started) * 1000
        )


def _completion(response: Any) -> Completion:
    """A LiteLLM ``ModelResponse`` (OpenAI's shape, whatever the provider) as a Completion."""
    usage = _usage(response)
    model = getattr(response, "model", None)
    choices = getattr(response, "choices", None) or []
    if not choices:
        return Completion(text="", usage=usage, model=model)
    choice = choices[0]
    message = getattr(choice, "message", None)
    return Completion(
        text=getattr(message, "content", None) or "",
        usage=usage,
        model=model,
        refusal=getattr(message, "refusal", None),
        truncated=getattr(choice, "finish_reason", None) == "length",
    )


class LiteLLMEmbedder(_LiteLLMCalls, BatchedEmbedder):
    """Sentence embeddings through ``litellm.aembedding`` (``gemini/text-embedding-004``,
    ``bedrock/amazon.titan-embed-text-v2:0``, ``ollama/nomic-embed-text``, ...).

    ``dimensions`` is checked on every vector; it is sent with the request when
    ``send_dimensions`` is true, or, when None, for the ``text-embedding-3`` models. The other
    arguments as for ``LiteLLMGenerator``.
    """

    def __init__(
        self,
        model: str,
        *,
        dimensions: int,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        send_dimensions: bool | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if dimensions < 1:
            raise ConfigurationError(f"Embedding dimensions must be positive, got {dimensions}.")
        self.dimensions = dimensions
        if send_dimensions is None:
            send_dimensions = model.rsplit("/", 1)[-1].startswith("text-embedding-3")
        self._send_dimensions = send_dimensions
        self._init_calls(
            model,
            api_base=api_base,
            api_key=api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            extra=extra,
        )

    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        what = f"Embedding model {self.model_name!r}"
        sized = {"dimensions": self.dimensions} if self._send_dimensions else {}
        try:
            response = await self._litellm.aembedding(
                **self._options,
                **sized,
                model=self.model_name,
                input=batch,
                # No encoding_format: some providers reject it (Ollama), and floats are the
                # default of those that take it.
                timeout=self._timeout_s,
            )
        except Exception as exc:
            raise self._failure(exc, what=what, timeout_s=self._timeout_s) from exc
        data = [_embedding(item) for item in response.data]
        # Providers tag each vector with its input index; do not rely on response order.
        data.sort(key=lambda item: item[0])
        if [index for index, _ in data] != list(range(len(batch))):
            raise ModelError(
                f"{what} returned {len(data)} vectors for {len(batch)} texts "
                "(or with mismatched indices)."
            )
        for _, vector in data:
            if len(vector) != self.dimensions:
                raise ModelError(
                    f"{what} returned {len(vector)}-dimensional vectors but "
                    f"{self.dimensions} were configured; set the dimensions to match the model."
                )
        return [vector for _, vector in data]


def _embedding(item: Any) -> tuple[int, list[float]]:
    # LiteLLM hands back dicts for some providers and objects for others.
    if isinstance(item, dict):
        return int(item["index"]), list(item["embedding"])
    return int(item.index), list(item.embedding)
