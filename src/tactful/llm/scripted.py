"""The deterministic model double for tests and benchmarks. It records every call.

A responder per stage turns each call into an answer (a pydantic model, a dict, a JSON string, or
an exception to raise). Token counts come from a fixed rule so that numbers are repeatable.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from tactful.errors import ModelError
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
    count_tokens,
)


@dataclass
class ScriptedCall:
    """One recorded call: what was asked and what was answered."""

    stage: str
    prompt: Prompt
    schema: type[BaseModel]
    started: float
    ended: float = 0.0
    answer: BaseModel | None = None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    # The per-request timeout the caller gave (None: the adapter's default).
    timeout_s: float | None = None


class StreamedText(BaseModel):
    """How a streamed call is recorded (its ``schema`` and ``answer``)."""

    text: str


Responder = Callable[[ScriptedCall], BaseModel | dict[str, Any] | str | Exception]


class ScriptedGenerator(Generator):
    """Answers from responders keyed by stage; ``default`` answers stages without one."""

    def __init__(
        self,
        responders: dict[str, Responder] | None = None,
        *,
        default: Responder | None = None,
        latency_s: float = 0.0,
        model_name: str = "scripted",
        chunk_delay_s: float = 0.0,
    ) -> None:
        self.responders: dict[str, Responder] = dict(responders or {})
        self.default = default
        self.latency_s = latency_s
        # Between the pieces of a streamed answer (0: just a yield to the event loop).
        self.chunk_delay_s = chunk_delay_s
        self.model_name = model_name
        self.provider = "scripted"
        self.calls: list[ScriptedCall] = []
        self._seen_prefixes: set[str] = set()
        self.in_flight = 0
        self.max_in_flight = 0

    supports_streaming = True

    @asynccontextmanager
    async def _calling(
        self, stage: str, prompt: Prompt, schema: type[BaseModel], timeout_s: float | None
    ) -> AsyncIterator[tuple[ScriptedCall, BaseModel | dict[str, Any] | str]]:
        """Record a call, wait the scripted latency (at most ``timeout_s``, then time out), and
        give the stage's raw answer."""
        call = ScriptedCall(
            stage=stage,
            prompt=prompt,
            schema=schema,
            started=time.perf_counter(),
            timeout_s=timeout_s,
        )
        self.calls.append(call)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if timeout_s is not None and self.latency_s > timeout_s:
                await asyncio.sleep(timeout_s)
                raise ModelError(f"scripted model timed out after {timeout_s:g} s", retryable=True)
            # Always yield (sleep(0) at no latency): calls gathered in one wave all start
            # before any answers, as with a real model, so waves can be told apart by overlap.
            await asyncio.sleep(self.latency_s)
            responder = self.responders.get(stage, self.default)
            if responder is None:
                raise ModelError(f"scripted model has no answer for stage {stage!r}")
            answer = responder(call)
            if isinstance(answer, Exception):
                raise answer
            yield call, answer
        except Exception as e:
            call.error = str(e)
            raise
        finally:
            call.ended = time.perf_counter()
            self.in_flight -= 1

    async def stream(
        self, prompt: Prompt, *, stage: str, on_text: OnText, timeout_s: float | None = None
    ) -> Streamed:
        """The stage's answer (a ``message`` or ``text`` field, or a string), streamed word by
        word (``chunk_delay_s`` apart); recorded like any call."""
        async with self._calling(stage, prompt, StreamedText, timeout_s) as (call, answer):
            if isinstance(answer, BaseModel):
                answer = answer.model_dump()
            text = (
                answer
                if isinstance(answer, str)
                else str(answer.get("message") or answer.get("text") or "")
            )
            for piece in re.findall(r"\S+\s*", text) or [text]:
                await on_text(piece)
                await asyncio.sleep(self.chunk_delay_s)
            call.answer = StreamedText(text=text)
            call.usage = Usage(
                prompt_tokens=count_tokens(prompt.system) + count_tokens(prompt.user),
                completion_tokens=count_tokens(text),
            )
            return Streamed(
                text=text,
                usage=call.usage,
                model=self.model_name,
                latency_ms=(time.perf_counter() - call.started) * 1000,
            )

    def on(self, stage: str, responder: Responder) -> None:
        """Set the responder of one stage."""
        self.responders[stage] = responder

    def calls_for(self, stage: str) -> list[ScriptedCall]:
        return [c for c in self.calls if c.stage == stage]

    async def generate(
        self, prompt: Prompt, schema: type[T], *, stage: str, timeout_s: float | None = None
    ) -> Generation[T]:
        async with self._calling(stage, prompt, schema, timeout_s) as (call, answer):
            raw = answer if isinstance(answer, str) else _dump(answer)
            try:
                content = schema.model_validate_json(raw)
            except PydanticValidationError as e:
                raise ModelError(f"scripted answer for {stage!r} does not validate: {e}") from e
            call.answer = content
            system_tokens = count_tokens(prompt.system)
            call.usage = Usage(
                prompt_tokens=system_tokens + count_tokens(prompt.user),
                completion_tokens=count_tokens(raw),
                # Like a provider's prefix cache: a system prompt seen before is served cached.
                cached_tokens=system_tokens if prompt.system in self._seen_prefixes else 0,
            )
            self._seen_prefixes.add(prompt.system)
            return Generation(
                content=content,
                usage=call.usage,
                model=self.model_name,
                latency_ms=(time.perf_counter() - call.started) * 1000,
                raw=raw,
            )


def _dump(answer: BaseModel | dict[str, Any]) -> str:
    if isinstance(answer, BaseModel):
        return answer.model_dump_json()
    return json.dumps(answer)


class HashingEmbedder(Embedder):
    """A fast deterministic embedder for engine tests: hashed word and word-prefix features.

    Texts that share words are similar; it is no substitute for the real offline embedder where
    retrieval quality matters.
    """

    def __init__(self, dimensions: int = 256) -> None:
        self.dimensions = dimensions
        self.model_name = f"hashing-{dimensions}"
        self.calls: list[list[str]] = []

    def _features(self, text: str) -> list[str]:
        words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2]
        return words + [w[:5] for w in words if len(w) > 5]

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for i, text in enumerate(texts):
            for feature in self._features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                out[i, int.from_bytes(digest[:4], "little") % self.dimensions] += 1.0
            norm = float(np.linalg.norm(out[i]))
            if norm > 0:
                out[i] /= norm
        return out
