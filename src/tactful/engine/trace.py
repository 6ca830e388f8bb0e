"""The trace of a turn: stage timings and every model call, recorded as the turn runs."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from tactful.domain import ModelCall, Trace
from tactful.errors import ModelError
from tactful.llm.base import (
    Attempt,
    Generation,
    Generator,
    ModelCallsFailed,
    OnText,
    Prompt,
    Streamed,
    T,
    Usage,
)
from tactful.store.base import Store

log = logging.getLogger("tactful.engine")


class TraceRecorder:
    """Wraps a turn's ``Trace``; stages and model calls write into it."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        # Records built only when the trace is saved (after the reply, off the customer's wait).
        self._deferred: list[Callable[[], None]] = []

    def defer(self, build: Callable[[], None]) -> None:
        """Fill part of the trace when it is saved, not now."""
        self._deferred.append(build)

    async def save(self, store: Store) -> None:
        """Build the deferred records and save the trace; a trace that cannot be saved is
        logged, never a reason for the turn to fail."""
        deferred, self._deferred = self._deferred, []
        try:
            for build in deferred:
                build()
            await store.upsert(self.trace)
        except Exception:
            log.exception("could not save trace %s", self.trace.id)

    @asynccontextmanager
    async def stage(self, name: str) -> AsyncIterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.trace.stage_timings_ms[name] = round((time.perf_counter() - started) * 1000, 3)

    async def generate(
        self, generator: Generator, prompt: Prompt, schema: type[T], *, stage: str
    ) -> Generation[T]:
        """Call the model and record the call, failed or not."""
        started = time.perf_counter()
        try:
            result = await generator.generate(prompt, schema, stage=stage)
        except ModelError as e:
            self._failed(generator, stage, started, e)
            raise
        self._attempts(stage, result.failed)
        self._done(stage, result.model, result.provider or generator.provider, result)
        return result

    async def stream(
        self, generator: Generator, prompt: Prompt, *, stage: str, on_text: OnText
    ) -> Streamed:
        """Stream plain text from the model and record the call, failed or not."""
        started = time.perf_counter()
        try:
            result = await generator.stream(prompt, stage=stage, on_text=on_text)
        except ModelError as e:
            self._failed(generator, stage, started, e)
            raise
        self._attempts(stage, result.failed)
        self._done(stage, result.model, result.provider or generator.provider, result)
        return result

    def _failed(self, generator: Generator, stage: str, started: float, error: Exception) -> None:
        if isinstance(error, ModelCallsFailed):
            # A router says what each attempt did, and how long it really took.
            self._attempts(stage, error.attempts)
            return
        self.trace.model_calls.append(
            ModelCall(
                stage=stage,
                model=generator.model_name,
                provider=generator.provider,
                latency_ms=round((time.perf_counter() - started) * 1000, 3),
                ok=False,
                error=str(error),
            )
        )

    def _attempts(self, stage: str, attempts: tuple[Attempt, ...]) -> None:
        for attempt in attempts:
            self.trace.model_calls.append(
                ModelCall(
                    stage=stage,
                    model=attempt.model,
                    provider=attempt.provider,
                    latency_ms=attempt.latency_ms,
                    ok=False,
                    error=attempt.error,
                )
            )

    def _done(
        self, stage: str, model: str, provider: str, result: Generation[T] | Streamed
    ) -> None:
        usage: Usage = result.usage
        self.trace.model_calls.append(
            ModelCall(
                stage=stage,
                model=model,
                provider=provider,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                latency_ms=round(result.latency_ms, 3),
            )
        )

    def degraded(self, reason: str) -> None:
        """The turn went on without (part of) its model: say where and why."""
        self.trace.degraded.append(reason)
