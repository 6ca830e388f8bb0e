"""Structured answers over the chat completions shape, shared by the adapters that speak it
(``openai``, ``azure``, ``litellm``): the JSON schema sent to the provider, validation of the
answer, and the one repair retry that shows the model its answer and what was wrong.

An adapter reduces each provider response to a ``Completion`` and hands ``StructuredOutput``
a function that makes one request; everything else about a structured call happens here.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from openai.types.chat import ChatCompletionMessageParam
from openai.types.chat.completion_create_params import ResponseFormat
from pydantic import BaseModel, ValidationError

from tactful.errors import ModelError
from tactful.llm.base import Generation, Prompt, T, Usage

_ERROR_TEXT_LIMIT = 300
_SCHEMA_NAME = re.compile(r"[^a-zA-Z0-9_-]")
_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n(?P<body>.*?)\n?```$", re.DOTALL)


@dataclass(frozen=True)
class Completion:
    """One chat completion, reduced to what validation and the repair retry need."""

    text: str
    usage: Usage
    # The model that answered, as the provider names it (None: the configured one).
    model: str | None = None
    refusal: str | None = None
    # The answer was cut off at the token limit.
    truncated: bool = False


# Makes one request with these messages and response format; raises ModelError on failure.
Complete = Callable[[list[ChatCompletionMessageParam], ResponseFormat], Awaitable[Completion]]


def truncate(text: str, limit: int = _ERROR_TEXT_LIMIT) -> str:
    """``text`` on one line, cut to ``limit`` characters, for error messages."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def provider_error_text(body: object, reason_phrase: str | None) -> str:
    """A provider's own error text from an error response's body (``{"error": {"message":
    ...}}``, a bare string, ...), without its SDK's wrapping; else the HTTP reason."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return truncate(inner["message"])
        if isinstance(inner, str):
            return truncate(inner)
    if isinstance(body, str) and body.strip():
        return truncate(body)
    return reason_phrase or "no error details"


def excerpt(body: object, limit: int = 200) -> str:
    """The start of a provider's raw answer, on one line, for errors and traces."""
    text = " ".join(str(body).split())
    return repr(text if len(text) <= limit else text[:limit] + "...")


def strict_compatible(node: Any) -> Any:
    """Shape a pydantic JSON schema the way OpenAI structured outputs expect.

    Objects with declared properties get ``additionalProperties: false`` and list every
    property as required; free-form mappings (``dict[str, X]``) are left alone.
    """
    if isinstance(node, list):
        return [strict_compatible(item) for item in node]
    if not isinstance(node, dict):
        return node
    shaped = {key: strict_compatible(value) for key, value in node.items()}
    properties = shaped.get("properties")
    if isinstance(properties, dict) and shaped.get("type") == "object":
        shaped.setdefault("additionalProperties", False)
        shaped["required"] = list(properties)
    return shaped


def describe_invalid(exc: ValidationError, *, limit: int) -> str:
    """What is wrong with an answer, the first ``limit`` problems, on one line."""
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


class StructuredOutput:
    """How a chat completions adapter asks for, checks and repairs a structured answer.

    With ``use_json_schema`` the schema goes in ``response_format`` (structured outputs);
    without it the provider is only asked for a JSON object and the schema is described in the
    system message, for servers that support JSON mode but not JSON schemas.
    """

    def __init__(self, *, use_json_schema: bool) -> None:
        self.use_json_schema = use_json_schema
        self._schemas: dict[type[BaseModel], dict[str, Any]] = {}

    async def generate(
        self,
        prompt: Prompt,
        schema: type[T],
        *,
        model_name: str,
        stage: str,
        complete: Complete,
    ) -> Generation[T]:
        """Ask through ``complete`` until the answer validates as ``schema``, with one repair
        retry; raise ``ModelError`` when the second answer is still unusable."""
        started = time.perf_counter()
        # System first and unchanged across turns, so provider prompt caches hit on the prefix.
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": self.system_message(prompt.system, schema)},
            {"role": "user", "content": prompt.user},
        ]
        response_format = self.response_format(schema)
        prompt_tokens = completion_tokens = cached_tokens = 0
        problem = ""
        for attempt in (1, 2):
            completion = await complete(messages, response_format)
            prompt_tokens += completion.usage.prompt_tokens
            completion_tokens += completion.usage.completion_tokens
            cached_tokens += completion.usage.cached_tokens
            if completion.refusal is not None:
                problem = f"the model refused: {truncate(completion.refusal)}"
            else:
                try:
                    content = schema.model_validate_json(_strip_fence(completion.text))
                except ValidationError as exc:
                    problem = describe_invalid(exc, limit=10)
                    if completion.truncated:
                        problem += " (the answer was cut off at the token limit)"
                else:
                    return Generation(
                        content=content,
                        usage=Usage(
                            prompt_tokens=prompt_tokens,
                            completion_tokens=completion_tokens,
                            cached_tokens=cached_tokens,
                        ),
                        model=completion.model or model_name,
                        latency_ms=(time.perf_counter() - started) * 1000.0,
                        attempts=attempt,
                        raw=completion.text,
                    )
            messages = [
                *messages,
                {"role": "assistant", "content": completion.text},
                {
                    "role": "user",
                    "content": (
                        "Your previous answer is not valid for the required JSON schema: "
                        f"{problem}\nReply again with only the corrected JSON object."
                    ),
                },
            ]
        raise ModelError(
            f"Model {model_name!r} (stage {stage!r}) gave an invalid answer even after a "
            f"repair retry: {truncate(problem)}"
        )

    def json_schema(self, schema: type[BaseModel]) -> dict[str, Any]:
        """``schema`` as a strict-compatible JSON schema (a fresh copy each time)."""
        if schema not in self._schemas:
            self._schemas[schema] = strict_compatible(schema.model_json_schema())
        # A copy, so the SDK or a caller can never mutate the cached schema.
        return copy.deepcopy(self._schemas[schema])

    def response_format(self, schema: type[BaseModel]) -> ResponseFormat:
        """The ``response_format`` of a request for ``schema``."""
        if not self.use_json_schema:
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {
                "name": _SCHEMA_NAME.sub("_", schema.__name__)[:64] or "answer",
                "schema": self.json_schema(schema),
                # Strict mode rejects common pydantic constructs; validation happens here anyway.
                "strict": False,
            },
        }

    def system_message(self, system: str, schema: type[BaseModel]) -> str:
        """The system message: the prompt's own, plus the schema in JSON object mode."""
        if self.use_json_schema:
            return system
        # JSON mode only guarantees *some* JSON object, so the schema has to be in the prompt.
        described = json.dumps(self.json_schema(schema), separators=(",", ":"))
        return (
            f"{system}\n\nAnswer with a single JSON object, and nothing else, that validates "
            f"against this JSON Schema:\n{described}"
        )
