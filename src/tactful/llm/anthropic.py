"""Anthropic model adapter on the official ``anthropic`` SDK (the Messages API).

Structured answers come through forced tool use: one tool whose input schema is the answer's
JSON schema, and ``tool_choice`` makes the model call it. The stable system prompt is marked
for prompt caching. Works against api.anthropic.com and any server speaking the same wire
protocol through ``base_url``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from types import TracebackType
from typing import Self

import anthropic
from anthropic.types import (
    ContentBlockParam,
    Message,
    MessageParam,
    RawContentBlockDeltaEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RefusalStopDetails,
    TextBlock,
    TextBlockParam,
    TextDelta,
    ToolChoiceToolParam,
    ToolParam,
    ToolUseBlock,
)
from pydantic import BaseModel, ValidationError

from tactful.errors import ConfigurationError, ModelError
from tactful.llm.base import (
    Generation,
    Generator,
    OnText,
    Prompt,
    Streamed,
    T,
    Usage,
    retryable_status,
)
from tactful.llm.structured import describe_invalid, excerpt, provider_error_text, truncate

# Local servers and proxies may ignore the key, but the SDK refuses to start without one.
_PLACEHOLDER_API_KEY = "not-needed"
_TOOL_NAME = re.compile(r"[^a-zA-Z0-9_-]")
# Stop reasons that mean the answer was cut short, and how to say so.
_CUT_OFF = {
    "max_tokens": "the answer was cut off at the max_tokens limit of {max_tokens} tokens",
    "model_context_window_exceeded": "the answer was cut off at the end of the context window",
}


def _resolve_api_key(api_key: str | None, base_url: str | None) -> str:
    if api_key:
        return api_key
    env_key = os.environ.get("ANTHROPIC_API_KEY")
    if env_key:
        return env_key
    if base_url:
        return _PLACEHOLDER_API_KEY
    raise ConfigurationError(
        "The Anthropic model provider needs an API key: set TACTFUL_ANTHROPIC_API_KEY (or "
        "ANTHROPIC_API_KEY), or set TACTFUL_ANTHROPIC_BASE_URL to a server that needs none."
    )


def _error_type(exc: anthropic.APIStatusError) -> str | None:
    body: object = exc.body
    inner = body.get("error") if isinstance(body, dict) else None
    kind = inner.get("type") if isinstance(inner, dict) else None
    return kind if isinstance(kind, str) else None


def _provider_failure(
    exc: anthropic.AnthropicError,
    *,
    what: str,
    client: anthropic.AsyncAnthropic,
    timeout_s: float | None = None,
) -> ModelError:
    """Map an SDK exception to a ModelError whose message says what happened, not which class."""
    if isinstance(exc, anthropic.APIStatusError):
        said = provider_error_text(exc.body, exc.response.reason_phrase)
        kind = _error_type(exc)
        overloaded = exc.status_code == 529 or kind == "overloaded_error"
        hint = " (the provider is overloaded)" if overloaded else ""
        if exc.status_code in (401, 403):
            hint = " (check the API key, TACTFUL_ANTHROPIC_API_KEY)"
        if exc.status_code < 400:
            # An ``error`` event in a stream that had started with HTTP 200.
            return ModelError(
                f"{what}: the provider sent an error mid-stream: {kind or 'error'}: {said}{hint}",
                retryable=overloaded or kind == "api_error",
            )
        return ModelError(
            f"{what}: the provider answered HTTP {exc.status_code}: {said}{hint}",
            retryable=retryable_status(exc.status_code),
        )
    if isinstance(exc, anthropic.APITimeoutError):
        timeout = timeout_s if timeout_s is not None else client.timeout
        after = f" after {timeout:g} s" if isinstance(timeout, int | float) else ""
        return ModelError(
            f"{what}: the request to {client.base_url} timed out{after}", retryable=True
        )
    if isinstance(exc, anthropic.APIConnectionError):
        return ModelError(
            f"{what}: could not connect to the provider at {client.base_url} "
            f"({truncate(exc.message)})",
            retryable=True,
        )
    return ModelError(f"{what}: the provider call failed: {truncate(str(exc))}")


def _timeout(timeout_s: float | None) -> float | anthropic.NotGiven:
    return anthropic.NOT_GIVEN if timeout_s is None else timeout_s


def _system(prompt: Prompt) -> list[TextBlockParam] | anthropic.Omit:
    # The stable prefix, marked as a cache breakpoint: the tool definition comes before it in
    # the cache order, so tool and system are cached together. The API rejects empty blocks.
    if not prompt.system.strip():
        return anthropic.omit
    return [{"type": "text", "text": prompt.system, "cache_control": {"type": "ephemeral"}}]


def _usage(message: Message) -> Usage:
    usage = message.usage
    if usage is None:
        return Usage()
    cache_read = usage.cache_read_input_tokens or 0
    cache_creation = usage.cache_creation_input_tokens or 0
    return Usage(
        # Anthropic counts cached and uncached input apart; the port counts all prompt tokens.
        prompt_tokens=(usage.input_tokens or 0) + cache_read + cache_creation,
        completion_tokens=usage.output_tokens or 0,
        cached_tokens=cache_read,
    )


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        cached_tokens=a.cached_tokens + b.cached_tokens,
    )


def _text(message: Message) -> str:
    return "".join(block.text for block in message.content if isinstance(block, TextBlock))


def _tool_call(message: Message, name: str) -> ToolUseBlock | None:
    return next(
        (b for b in message.content if isinstance(b, ToolUseBlock) and b.name == name), None
    )


def _refused(what: str, details: RefusalStopDetails | None, said: str) -> ModelError:
    because = ""
    if details is not None and details.explanation:
        because = f": {truncate(details.explanation)}"
    elif said.strip():
        because = f": {truncate(said)}"
    category = f" ({details.category})" if details is not None and details.category else ""
    return ModelError(f"{what}: the model refused{category}{because}")


def _repair(
    message: Message, call: ToolUseBlock | None, tool: str, problem: str
) -> list[MessageParam]:
    """The assistant's answer as it was, then what was wrong with it."""
    said: list[ContentBlockParam] = [
        {"type": "text", "text": block.text}
        for block in message.content
        if isinstance(block, TextBlock) and block.text.strip()
    ]
    if call is None:
        note = f"Your previous answer is not valid: {problem}\nAnswer by calling the {tool} tool."
        turns: list[MessageParam] = [{"role": "assistant", "content": said}] if said else []
        # Without an answer to show, two user turns in a row: the API joins them into one.
        return [*turns, {"role": "user", "content": note}]
    said.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input})
    return [
        {"role": "assistant", "content": said},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": call.id,
                    "is_error": True,
                    "content": (
                        f"The input is not valid for the {tool} tool's schema: {problem}\n"
                        f"Call {tool} again with the corrected input."
                    ),
                }
            ],
        },
    ]


class AnthropicGenerator(Generator):
    """Structured generation and streaming through Anthropic's Messages API.

    The answer's schema is a tool's input schema and the model is made to call that tool; an
    input that does not validate gets one repair retry (the call goes back with a ``tool_result``
    that says what was wrong). The system prompt is a prompt-caching breakpoint, so the stable
    prefix is billed as a cache read from the second call on.
    """

    provider = "anthropic"
    supports_streaming = True

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        max_tokens: int = 4096,
        client: anthropic.AsyncAnthropic | None = None,
    ) -> None:
        self.model_name = model
        self._max_tokens = max_tokens
        self._tools: dict[type[BaseModel], ToolParam] = {}
        self._owns_client = client is None
        self._client = client or anthropic.AsyncAnthropic(
            # Always explicit, so the SDK never goes looking for credentials on disk.
            api_key=_resolve_api_key(api_key, base_url),
            base_url=base_url,
            timeout=timeout_s,
            max_retries=max_retries,
        )

    async def generate(
        self, prompt: Prompt, schema: type[T], *, stage: str, timeout_s: float | None = None
    ) -> Generation[T]:
        started = time.perf_counter()
        what = f"Model {self.model_name!r} (stage {stage!r})"
        tool = self._tool(schema)
        name = tool["name"]
        messages: list[MessageParam] = [{"role": "user", "content": prompt.user}]
        usage = Usage()
        problem = ""
        for attempt in (1, 2):
            message = await self._create(
                messages, system=_system(prompt), tool=tool, what=what, timeout_s=timeout_s
            )
            usage = _add(usage, _usage(message))
            if message.stop_reason == "refusal":
                raise _refused(what, message.stop_details, _text(message))
            call = _tool_call(message, name)
            if call is None:
                text = _text(message)
                problem = f"the model did not call the {name} tool"
                problem += f"; it wrote {excerpt(text)}" if text.strip() else ""
            else:
                try:
                    content = schema.model_validate(call.input)
                except ValidationError as exc:
                    problem = describe_invalid(exc, limit=10)
                else:
                    return Generation(
                        content=content,
                        usage=usage,
                        model=message.model or self.model_name,
                        latency_ms=(time.perf_counter() - started) * 1000.0,
                        attempts=attempt,
                        raw=json.dumps(call.input, ensure_ascii=False),
                    )
            if message.stop_reason in _CUT_OFF:
                cut = _CUT_OFF[message.stop_reason].format(max_tokens=self._max_tokens)
                problem += f" ({cut})"
            messages = [*messages, *_repair(message, call, name, problem)]
        raise ModelError(
            f"{what} gave an invalid answer even after a repair retry: {truncate(problem)}"
        )

    async def stream(
        self, prompt: Prompt, *, stage: str, on_text: OnText, timeout_s: float | None = None
    ) -> Streamed:
        started = time.perf_counter()
        what = f"Model {self.model_name!r} (stage {stage!r})"
        parts: list[str] = []
        model = self.model_name
        stop_reason: str | None = None
        stop_details: RefusalStopDetails | None = None
        # Input and cache counts come with message_start; message_delta carries running totals.
        counts = {"input": 0, "read": 0, "creation": 0, "output": 0}
        try:
            events = await self._client.messages.create(
                model=self.model_name,
                max_tokens=self._max_tokens,
                system=_system(prompt),
                messages=[{"role": "user", "content": prompt.user}],
                stream=True,
                timeout=_timeout(timeout_s),
            )
            async with events:
                async for event in events:
                    if isinstance(event, RawMessageStartEvent):
                        model = event.message.model or model
                        start = event.message.usage
                        counts["input"] = start.input_tokens or 0
                        counts["read"] = start.cache_read_input_tokens or 0
                        counts["creation"] = start.cache_creation_input_tokens or 0
                        counts["output"] = start.output_tokens or 0
                    elif isinstance(event, RawContentBlockDeltaEvent):
                        if isinstance(event.delta, TextDelta) and event.delta.text:
                            parts.append(event.delta.text)
                            await on_text(event.delta.text)
                    elif isinstance(event, RawMessageDeltaEvent):
                        stop_reason = event.delta.stop_reason or stop_reason
                        stop_details = event.delta.stop_details or stop_details
                        delta = event.usage
                        counts["output"] = delta.output_tokens
                        if delta.input_tokens is not None:
                            counts["input"] = delta.input_tokens
                        if delta.cache_read_input_tokens is not None:
                            counts["read"] = delta.cache_read_input_tokens
                        if delta.cache_creation_input_tokens is not None:
                            counts["creation"] = delta.cache_creation_input_tokens
        except anthropic.AnthropicError as exc:
            raise _provider_failure(
                exc, what=what, client=self._client, timeout_s=timeout_s
            ) from exc
        except json.JSONDecodeError as exc:
            raise ModelError(
                f"{what} streamed an event that is not JSON: {excerpt(exc.doc)}", retryable=True
            ) from exc
        text = "".join(parts)
        if stop_reason == "refusal":
            raise _refused(what, stop_details, text)
        if not text.strip():
            raise ModelError(f"{what} streamed an empty answer")
        return Streamed(
            text=text,
            usage=Usage(
                prompt_tokens=counts["input"] + counts["read"] + counts["creation"],
                completion_tokens=counts["output"],
                cached_tokens=counts["read"],
            ),
            model=model,
            latency_ms=(time.perf_counter() - started) * 1000,
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

    async def _create(
        self,
        messages: list[MessageParam],
        *,
        system: list[TextBlockParam] | anthropic.Omit,
        tool: ToolParam,
        what: str,
        timeout_s: float | None,
    ) -> Message:
        choice: ToolChoiceToolParam = {
            "type": "tool",
            "name": tool["name"],
            "disable_parallel_tool_use": True,
        }
        try:
            answer: object = await self._client.messages.create(
                model=self.model_name,
                max_tokens=self._max_tokens,
                system=system,
                messages=messages,
                tools=[tool],
                tool_choice=choice,
                timeout=_timeout(timeout_s),
            )
        except anthropic.AnthropicError as exc:
            raise _provider_failure(
                exc, what=what, client=self._client, timeout_s=timeout_s
            ) from exc
        except json.JSONDecodeError as exc:
            # HTTP 200 with a body that is not JSON (a proxy's error page, a truncated answer).
            raise ModelError(
                f"{what} answered with a body that is not JSON: {excerpt(exc.doc)}",
                retryable=True,
            ) from exc
        if not isinstance(answer, Message):
            # The SDK hands back the raw text of a response that is not JSON.
            raise ModelError(
                f"{what} answered with a body that is not JSON: {excerpt(answer)}",
                retryable=True,
            )
        if not isinstance(answer.content, list):
            # JSON, but not a message (the SDK does not validate what it reads).
            raise ModelError(
                f"{what} answered with JSON that is not a message: "
                f"{excerpt(answer.model_dump_json(exclude_unset=True))}"
            )
        return answer

    def _tool(self, schema: type[BaseModel]) -> ToolParam:
        if schema not in self._tools:
            self._tools[schema] = {
                "name": _TOOL_NAME.sub("_", schema.__name__)[:64] or "answer",
                "description": "Give your answer by calling this tool: its input is the answer.",
                # Pydantic's JSON schema as it is: the API takes $defs and $ref.
                "input_schema": schema.model_json_schema(),
            }
        # A copy, so the SDK or a caller can never mutate the cached tool.
        return copy.deepcopy(self._tools[schema])
