"""Which model answers a call, and what happens when it cannot.

``ModelRouter`` is a ``Generator`` in front of the configured models. For each call it picks
the model named for the call's stage (``match``, ``compose``, ``self_check``; the default model
otherwise), then:

- bounds every request by the per-call timeout and by what is left of the turn's deadline
  (``llm.base.model_deadline``), so that no call outlives the turn's model time;
- retries a retryable failure (timeout, lost connection, HTTP 408/409/429/5xx, a body that is
  not JSON) while time is left, with a short backoff;
- skips a model whose circuit breaker is open (``llm.breaker``), and tries its fallback model;
- records every failed or skipped attempt with its real duration (``Generation.failed``, or
  ``ModelCallsFailed.attempts`` when nothing answered), for the trace;
- logs a warning when a model starts failing, when its breaker opens, and when it recovers.

When no model answers, the call raises ``ModelCallsFailed`` and the engine takes the degraded
path (offline matching, canned responses, ``no_match_reply``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

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
    model_time_left,
)
from tactful.llm.breaker import BreakerState, CircuitBreaker

log = logging.getLogger("tactful.models")

R = TypeVar("R")

# How late past the deadline a call is cut when its adapter overran its own timeout.
DEADLINE_GRACE_S = 0.1
# The stages the engine names when it calls a model (engine.match, engine.compose,
# engine.self_check), which settings may route (``stage_models``).
STAGES = ("match", "compose", "self_check")


@dataclass(frozen=True)
class CallPolicy:
    # One request at most this long (less when the turn's deadline is nearer).
    timeout_s: float = 10.0
    # More attempts at the same model after a retryable failure, while time is left.
    retries: int = 1
    # Wait before retry n (n = 0, 1, ...): backoff_s * 2**n.
    backoff_s: float = 0.25
    # No request starts with less than this left of the turn's model time.
    min_attempt_s: float = 0.5


@dataclass(eq=False)
class RoutedModel:
    """One configured model: its adapter, its breaker, and the model to try when it fails."""

    name: str
    generator: Generator
    breaker: CircuitBreaker
    fallback: RoutedModel | None = None
    # Where its provider is reached, for the start-up line ("" to leave it out).
    where: str = ""

    @property
    def label(self) -> str:
        """The model as logs name it: "openai gpt-4o-mini (fast)"."""
        return f"{self.generator.provider} {self.generator.model_name} ({self.name})"

    def describe(self) -> str:
        where = f" at {self.where}" if self.where else ""
        return f"{self.generator.provider} {self.generator.model_name}{where}"

    def attempt(self, latency_ms: float, error: str) -> Attempt:
        return Attempt(
            model=self.generator.model_name,
            provider=self.generator.provider,
            latency_ms=round(latency_ms, 3),
            error=error,
        )


class ModelRouter(Generator):
    """Routes each call by stage, with deadlines, retries, breakers and fallbacks."""

    provider = "router"

    def __init__(
        self,
        default: RoutedModel,
        stages: Mapping[str, RoutedModel] | None = None,
        *,
        policy: CallPolicy | None = None,
    ) -> None:
        self.default = default
        self.stages = dict(stages or {})
        self.policy = policy or CallPolicy()
        self.model_name = default.generator.model_name
        self.supports_streaming = self.route("compose").generator.supports_streaming

    def route(self, stage: str) -> RoutedModel:
        return self.stages.get(stage, self.default)

    def models(self) -> list[RoutedModel]:
        """Every configured model once: the routes and their fallbacks."""
        found: list[RoutedModel] = []
        for first in (self.default, *self.stages.values()):
            model: RoutedModel | None = first
            while model is not None and model not in found:
                found.append(model)
                model = model.fallback
        return found

    def count_tokens(self, text: str) -> int:
        return self.route("match").generator.count_tokens(text)

    async def generate(
        self, prompt: Prompt, schema: type[T], *, stage: str, timeout_s: float | None = None
    ) -> Generation[T]:
        async def call(generator: Generator, timeout: float) -> Generation[T]:
            return await generator.generate(prompt, schema, stage=stage, timeout_s=timeout)

        result, model, failed = await self._call(stage, call, timeout_s, lambda: True)
        return replace(result, provider=model.generator.provider, failed=tuple(failed))

    async def stream(
        self, prompt: Prompt, *, stage: str, on_text: OnText, timeout_s: float | None = None
    ) -> Streamed:
        sent = False

        async def relay(piece: str) -> None:
            nonlocal sent
            sent = True
            await on_text(piece)

        async def call(generator: Generator, timeout: float) -> Streamed:
            if not generator.supports_streaming:
                raise ModelError(f"model {generator.model_name!r} cannot stream")
            return await generator.stream(prompt, stage=stage, on_text=relay, timeout_s=timeout)

        # Once a piece went out, another attempt would repeat it: only a clean start retries.
        result, model, failed = await self._call(stage, call, timeout_s, lambda: not sent)
        return replace(result, provider=model.generator.provider, failed=tuple(failed))

    async def aclose(self) -> None:
        for model in self.models():
            await model.generator.aclose()

    # -- one call --------------------------------------------------------------------------------

    async def _call(
        self,
        stage: str,
        call: Callable[[Generator, float], Awaitable[R]],
        timeout_s: float | None,
        may_retry: Callable[[], bool],
    ) -> tuple[R, RoutedModel, list[Attempt]]:
        failed: list[Attempt] = []
        model: RoutedModel | None = self.route(stage)
        tried: list[RoutedModel] = []
        while model is not None and model not in tried:
            tried.append(model)
            result = await self._try(model, call, timeout_s, may_retry, failed)
            if result is not None:
                return result, model, failed
            if not may_retry():
                break
            model = model.fallback
        summary = "; ".join(f"{a.provider} {a.model}: {a.error}" for a in failed[-3:])
        raise ModelCallsFailed(f"no model answered (stage {stage!r}): {summary}", failed)

    async def _try(
        self,
        model: RoutedModel,
        call: Callable[[Generator, float], Awaitable[R]],
        timeout_s: float | None,
        may_retry: Callable[[], bool],
        failed: list[Attempt],
    ) -> R | None:
        """The model's answer, or None once it failed, was skipped or ran out of time."""
        breaker = model.breaker
        if not breaker.allow():
            failed.append(
                model.attempt(
                    0.0,
                    f"skipped: failed {breaker.failures} times in a row, tried again in "
                    f"{breaker.retry_in():.0f} s",
                )
            )
            return None
        policy = self.policy
        for attempt in range(policy.retries + 1):
            left = model_time_left()
            if left is not None and left < policy.min_attempt_s:
                breaker.abandoned()
                failed.append(model.attempt(0.0, "skipped: the turn's model time is spent"))
                return None
            timeout = min(timeout_s or policy.timeout_s, policy.timeout_s)
            if left is not None:
                timeout = min(timeout, left)
            started = time.perf_counter()
            try:
                # The adapter bounds each request; this bounds the whole call (a repair retry
                # included) by the turn's deadline, whatever the adapter does; the grace lets
                # an adapter that keeps its timeout say so itself.
                async with asyncio.timeout(None if left is None else left + DEADLINE_GRACE_S):
                    result = await call(model.generator, timeout)
            except TimeoutError:
                error = ModelError(f"no answer within the turn's model time ({left:.1f} s left)")
            except ModelError as e:
                error = e
            except BaseException:
                breaker.abandoned()
                raise
            else:
                failures = breaker.failures
                if breaker.succeeded():
                    self._recovered(model, failures)
                return result
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            failed.append(model.attempt(elapsed_ms, str(error)))
            self._failed(model, error)
            last = attempt == policy.retries
            if last or not error.retryable or not may_retry():
                return None
            if breaker.state is not BreakerState.CLOSED:
                return None
            await asyncio.sleep(self._backoff(attempt))
            if not breaker.allow():
                return None
        return None

    def _backoff(self, attempt: int) -> float:
        pause: float = self.policy.backoff_s * 2.0**attempt
        left = model_time_left()
        return pause if left is None else max(0.0, min(pause, left - self.policy.min_attempt_s))

    def _failed(self, model: RoutedModel, error: ModelError) -> None:
        breaker = model.breaker
        opened = breaker.failed()
        if opened:
            then = f"its fallback {model.fallback.label}" if model.fallback else "the degraded path"
            log.warning(
                "model %s is failing (%d failure(s) in a row, last: %s): its calls are skipped "
                "for %.0f s, turns take %s",
                model.label,
                breaker.failures,
                error,
                breaker.policy.cooldown_s,
                then,
            )
        elif breaker.failures == 1:
            log.warning("model %s failed: %s", model.label, error)

    def _recovered(self, model: RoutedModel, failures: int) -> None:
        log.warning("model %s answers again (after %d failure(s) in a row)", model.label, failures)
