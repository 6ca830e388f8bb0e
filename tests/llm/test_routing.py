"""The model router: stages to models, retries within the deadline, breakers and fallbacks."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import BaseModel

from tactful.errors import ModelError
from tactful.llm.base import ModelCallsFailed, Prompt, model_deadline, model_time_left
from tactful.llm.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from tactful.llm.routing import CallPolicy, ModelRouter, RoutedModel
from tactful.llm.scripted import ScriptedCall, ScriptedGenerator

PROMPT = Prompt(system="You answer.", user="hello")


class Answer(BaseModel):
    message: str


def routed(
    name: str,
    generator: ScriptedGenerator,
    *,
    failures: int = 3,
    cooldown_s: float = 30.0,
    fallback: RoutedModel | None = None,
) -> RoutedModel:
    breaker = CircuitBreaker(BreakerPolicy(failures=failures, cooldown_s=cooldown_s))
    return RoutedModel(name, generator, breaker, fallback=fallback)


def answering(text: str, **kwargs: float) -> ScriptedGenerator:
    return ScriptedGenerator(default=lambda c: {"message": text}, model_name=text, **kwargs)


def failing(message: str, *, retryable: bool = True) -> ScriptedGenerator:
    return ScriptedGenerator(
        default=lambda c: ModelError(message, retryable=retryable), model_name="broken"
    )


async def test_each_stage_goes_to_its_model_and_others_to_the_default() -> None:
    fast, strong = answering("fast"), answering("strong")
    router = ModelRouter(routed("strong", strong), {"match": routed("fast", fast)})
    matched = await router.generate(PROMPT, Answer, stage="match")
    composed = await router.generate(PROMPT, Answer, stage="compose")
    checked = await router.generate(PROMPT, Answer, stage="self_check")
    assert [matched.content.message, composed.content.message, checked.content.message] == [
        "fast",
        "strong",
        "strong",
    ]
    assert [c.stage for c in fast.calls] == ["match"]
    assert [c.stage for c in strong.calls] == ["compose", "self_check"]
    assert matched.provider == "scripted" and matched.failed == ()


async def test_a_retryable_failure_is_retried_and_the_attempt_recorded() -> None:
    answers: list[Exception | dict[str, str]] = [
        ModelError("HTTP 503", retryable=True),
        {"message": "second time lucky"},
    ]
    flaky = ScriptedGenerator(default=lambda c: answers.pop(0), model_name="flaky")
    router = ModelRouter(routed("flaky", flaky), policy=CallPolicy(backoff_s=0.0))
    result = await router.generate(PROMPT, Answer, stage="compose")
    assert result.content.message == "second time lucky"
    assert len(flaky.calls) == 2
    assert [a.error for a in result.failed] == ["HTTP 503"]


async def test_a_failure_that_is_not_retryable_goes_to_the_fallback_at_once() -> None:
    broken = failing("HTTP 401: check the API key", retryable=False)
    backup = answering("backup")
    router = ModelRouter(routed("main", broken, fallback=routed("backup", backup)))
    result = await router.generate(PROMPT, Answer, stage="compose")
    assert result.content.message == "backup"
    assert len(broken.calls) == 1
    assert [(a.model, a.error) for a in result.failed] == [
        ("broken", "HTTP 401: check the API key")
    ]


async def test_when_nothing_answers_every_attempt_is_in_the_error() -> None:
    router = ModelRouter(
        routed("main", failing("HTTP 500"), fallback=routed("b", failing("HTTP 502"))),
        policy=CallPolicy(retries=1, backoff_s=0.0),
    )
    with pytest.raises(ModelCallsFailed) as caught:
        await router.generate(PROMPT, Answer, stage="match")
    assert [a.error for a in caught.value.attempts] == ["HTTP 500"] * 2 + ["HTTP 502"] * 2
    assert "no model answered (stage 'match')" in str(caught.value)


async def test_the_breaker_opens_skips_calls_then_closes_after_a_probe(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    outcome: list[Exception | dict[str, str]] = [ModelError("HTTP 500", retryable=True)]
    model = ScriptedGenerator(default=lambda c: outcome[0], model_name="m")
    breaker = CircuitBreaker(BreakerPolicy(failures=3, cooldown_s=30.0), clock=lambda: now[0])
    router = ModelRouter(
        RoutedModel("main", model, breaker), policy=CallPolicy(retries=0, backoff_s=0.0)
    )
    caplog.set_level(logging.WARNING, logger="tactful.models")
    for _ in range(3):
        with pytest.raises(ModelCallsFailed):
            await router.generate(PROMPT, Answer, stage="compose")
    assert breaker.state is BreakerState.OPEN and len(model.calls) == 3
    assert "is failing (3 failure(s) in a row" in caplog.text
    # Open: the call is skipped without a request.
    with pytest.raises(ModelCallsFailed) as caught:
        await router.generate(PROMPT, Answer, stage="compose")
    assert len(model.calls) == 3
    assert caught.value.attempts[0].error.startswith("skipped: failed 3 times in a row")
    # After the cool-down one probe goes through; it answers, and the breaker closes.
    now[0] = 31.0
    outcome[0] = {"message": "back"}
    result = await router.generate(PROMPT, Answer, stage="compose")
    assert result.content.message == "back" and breaker.state is BreakerState.CLOSED
    assert "answers again (after 3 failure(s) in a row)" in caplog.text


def test_a_failed_probe_opens_the_breaker_again() -> None:
    now = [0.0]
    breaker = CircuitBreaker(BreakerPolicy(failures=2, cooldown_s=10.0), clock=lambda: now[0])
    assert not breaker.failed() and breaker.failed()
    assert not breaker.allow()
    now[0] = 10.0
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    assert breaker.failed() and breaker.state is BreakerState.OPEN
    now[0] = 15.0
    assert not breaker.allow() and breaker.retry_in() == pytest.approx(5.0)


async def test_a_request_gets_at_most_what_is_left_of_the_deadline() -> None:
    slow = answering("slow", latency_s=5.0)
    router = ModelRouter(routed("slow", slow), policy=CallPolicy(timeout_s=4.0, retries=3))
    with model_deadline(0.6), pytest.raises(ModelCallsFailed) as caught:
        await router.generate(PROMPT, Answer, stage="compose")
    timeouts = [c.timeout_s for c in slow.calls]
    # The first request was given what was left (not the 4 s per-call timeout); no retry fit.
    assert len(timeouts) == 1 and timeouts[0] is not None and timeouts[0] <= 0.6
    errors = [a.error for a in caught.value.attempts]
    assert errors[0].startswith("scripted model timed out after 0.")
    assert errors[-1] == "skipped: the turn's model time is spent"
    # The trace gets the real duration of the attempt, not the nominal timeout.
    assert 500 <= caught.value.attempts[0].latency_ms < 4000


async def test_an_adapter_that_ignores_its_timeout_is_cut_at_the_deadline() -> None:
    class Deaf(ScriptedGenerator):
        async def generate(self, prompt, schema, *, stage, timeout_s=None):  # type: ignore[no-untyped-def]
            await asyncio.sleep(30)
            raise AssertionError("not reached")

    router = ModelRouter(routed("deaf", Deaf(model_name="deaf")))
    with model_deadline(0.8), pytest.raises(ModelCallsFailed) as caught:
        await router.generate(PROMPT, Answer, stage="compose")
    assert "no answer within the turn's model time" in caught.value.attempts[0].error
    left = model_time_left()
    assert left is None


async def test_a_stream_that_sent_pieces_is_not_retried() -> None:
    calls = 0

    def half(call: ScriptedCall) -> str:
        nonlocal calls
        calls += 1
        return "Hello there"

    class Cut(ScriptedGenerator):
        async def stream(self, prompt, *, stage, on_text, timeout_s=None):  # type: ignore[no-untyped-def]
            await on_text("Hello")
            raise ModelError("connection lost", retryable=True)

    backup = answering("backup")
    router = ModelRouter(
        routed("cut", Cut(default=half, model_name="cut"), fallback=routed("b", backup))
    )
    pieces: list[str] = []

    async def on_text(piece: str) -> None:
        pieces.append(piece)

    with pytest.raises(ModelCallsFailed):
        await router.stream(PROMPT, stage="compose", on_text=on_text)
    assert pieces == ["Hello"] and backup.calls == []


def test_the_routable_stages_are_the_ones_the_engine_names() -> None:
    from tactful.engine.compose import COMPOSE_STAGE
    from tactful.engine.match import MATCH_STAGE
    from tactful.engine.self_check import SELF_CHECK_STAGE
    from tactful.llm.routing import STAGES

    assert set(STAGES) == {MATCH_STAGE, COMPOSE_STAGE, SELF_CHECK_STAGE}
