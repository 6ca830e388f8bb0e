"""The trace of a turn: stage timings and every model call, recorded as the turn runs.

Each stage and each model call is also an OpenTelemetry span (a child of the turn's span),
through OpenTelemetry's API: a no-op unless a tracer provider is configured
(``tactful.telemetry.tracing``, docs/telemetry.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

from opentelemetry import trace as otel
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer

from tactful.domain import ModelCall, ModelUsage, Trace
from tactful.domain.pricing import PriceTable
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
)
from tactful.store.base import Store

log = logging.getLogger("tactful.engine")

# The global tracer: OpenTelemetry's no-op unless the program configured a provider.
DEFAULT_TRACER = otel.get_tracer("tactful")


class TraceRecorder:
    """Wraps a turn's ``Trace``; stages and model calls write into it, priced by ``prices``,
    and each is a span of ``tracer``."""

    def __init__(
        self, trace: Trace, *, prices: PriceTable | None = None, tracer: Tracer | None = None
    ) -> None:
        self.trace = trace
        self.prices = prices or PriceTable()
        self.tracer = tracer or DEFAULT_TRACER
        # Records built only when the trace is saved (after the reply, off the customer's wait).
        self._deferred: list[Callable[[], None]] = []

    def defer(self, build: Callable[[], None]) -> None:
        """Fill part of the trace when it is saved, not now."""
        self._deferred.append(build)

    def build(self) -> Trace | None:
        """Build the deferred records: the trace to save, or None when that failed (logged,
        never a reason for the turn to fail)."""
        deferred, self._deferred = self._deferred, []
        try:
            for build in deferred:
                build()
        except Exception:
            log.exception("could not build trace %s", self.trace.id)
            return None
        return self.trace

    async def save(self, store: Store) -> None:
        """Build the deferred records and save the trace; a trace that cannot be saved is
        logged, never a reason for the turn to fail."""
        trace = self.build()
        try:
            if trace is not None:
                await store.put(trace)
        except Exception:
            log.exception("could not save trace %s", self.trace.id)

    @asynccontextmanager
    async def stage(self, name: str) -> AsyncIterator[None]:
        """Time a stage into the trace, as a span ``tactful.stage.<name>``."""
        started = time.perf_counter()
        try:
            with self.tracer.start_as_current_span(
                f"tactful.stage.{name}",
                attributes={"tactful.stage": name},
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    yield
                except Exception as e:
                    # A stage that failed (not one cancelled: a newer message, or draining).
                    span.set_status(StatusCode.ERROR, f"{type(e).__name__}: {e}")
                    raise
        finally:
            self.trace.stage_timings_ms[name] = round((time.perf_counter() - started) * 1000, 3)

    async def generate(
        self, generator: Generator, prompt: Prompt, schema: type[T], *, stage: str
    ) -> Generation[T]:
        """Call the model and record the call (each failed attempt too), failed or not."""
        with self._span(generator, stage) as span:
            started = time.perf_counter()
            try:
                result = await generator.generate(prompt, schema, stage=stage)
            except ModelError as e:
                self._failed(span, generator, stage, started, e)
                raise
            self._done(span, generator, stage, result)
            return result

    async def stream(
        self, generator: Generator, prompt: Prompt, *, stage: str, on_text: OnText
    ) -> Streamed:
        """Stream plain text from the model and record the call, failed or not."""
        with self._span(generator, stage) as span:
            started = time.perf_counter()
            try:
                result = await generator.stream(prompt, stage=stage, on_text=on_text)
            except ModelError as e:
                self._failed(span, generator, stage, started, e)
                raise
            self._done(span, generator, stage, result)
            return result

    def degraded(self, reason: str) -> None:
        """The turn went on without (part of) its model: say where and why."""
        self.trace.degraded.append(reason)

    @contextmanager
    def _span(self, generator: Generator, stage: str) -> Iterator[Span]:
        # Named as OpenTelemetry's GenAI conventions name a model call ("chat <model>").
        with self.tracer.start_as_current_span(
            f"chat {generator.model_name}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": generator.provider,
                "gen_ai.request.model": generator.model_name,
                "tactful.stage": stage,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span

    def _record(self, call: ModelCall) -> None:
        self.trace.model_calls.append(call)
        self.trace.usage = ModelUsage.of(self.trace.model_calls)

    def _failed(
        self, span: Span, generator: Generator, stage: str, started: float, error: Exception
    ) -> None:
        if isinstance(error, ModelCallsFailed):
            # A router says what each attempt did, and how long it really took.
            self._attempts(stage, error.attempts)
        else:
            self._record(
                ModelCall(
                    stage=stage,
                    model=generator.model_name,
                    provider=generator.provider,
                    latency_ms=round((time.perf_counter() - started) * 1000, 3),
                    ok=False,
                    error=str(error),
                )
            )
        span.set_status(StatusCode.ERROR, str(error))
        span.set_attribute("error.type", type(error).__name__)

    def _attempts(self, stage: str, attempts: tuple[Attempt, ...]) -> None:
        for attempt in attempts:
            self._record(
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
        self, span: Span, generator: Generator, stage: str, result: Generation[T] | Streamed
    ) -> None:
        self._attempts(stage, result.failed)
        usage, model = result.usage, result.model
        cost = self.prices.cost_usd(
            model, usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens
        )
        self._record(
            ModelCall(
                stage=stage,
                model=model,
                provider=result.provider or generator.provider,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                latency_ms=round(result.latency_ms, 3),
                cost_usd=cost,
            )
        )
        if span.is_recording():
            span.set_attributes(
                {
                    "gen_ai.response.model": model,
                    "gen_ai.usage.input_tokens": usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": usage.completion_tokens,
                    "tactful.usage.cached_tokens": usage.cached_tokens,
                    **({} if cost is None else {"tactful.cost_usd": cost}),
                }
            )
