"""The trace recorder: each model call with its provider and cost from the price table, the
turn's totals, and OpenTelemetry spans of the turn, its stages and its model calls (caught by
the SDK's in-memory exporter)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import tactful
from tactful.domain import Trace
from tactful.domain.pricing import ModelPrice
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import answer_listed
from tactful.errors import ModelError
from tactful.llm.scripted import HashingEmbedder, ScriptedGenerator

PRICE = ModelPrice(input=1.0, cached_input=0.5, output=4.0)


def _model(model_name: str = "scripted-2024-07-18", *, match_fails: bool = False) -> Any:
    return ScriptedGenerator(
        {
            "match": lambda c: (
                ModelError("HTTP 503: overloaded")
                if match_fails
                else answer_listed(c.prompt.user, lambda g: "asks about refunds")
            ),
            "compose": lambda c: ReplyAnswer(message="Refunds take five days."),
        },
        model_name=model_name,
    )


@dataclass
class Spans:
    """A tracer provider of the SDK whose spans end in memory."""

    provider: TracerProvider
    exporter: InMemorySpanExporter

    def named(self) -> dict[str, list[ReadableSpan]]:
        found: dict[str, list[ReadableSpan]] = {}
        for span in self.exporter.get_finished_spans():
            found.setdefault(span.name, []).append(span)
        return found


@pytest_asyncio.fixture
async def spans() -> AsyncIterator[Spans]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Spans(provider, exporter)
    provider.shutdown()


async def _turns(
    generator: ScriptedGenerator,
    messages: Sequence[str] = ("where is my refund?",),
    *,
    prices: dict[str, ModelPrice] | None = None,
    tracer_provider: TracerProvider | None = None,
) -> list[Trace]:
    settings = tactful.Settings(model_prices=prices if prices is not None else {"scripted": PRICE})
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), generator=generator, settings=settings
    ) as s:
        if tracer_provider is not None:
            # What start_runtime does with otel_endpoint's provider (EngineOptions.tracer).
            s.runtime.engine.lifecycle.tracer = tracer_provider.get_tracer("test")
        agent = await s.create_agent("Support")
        await agent.create_guideline("the customer asks about a refund", "say it takes 5 days")
        session = await s.create_session(agent)
        traces = []
        for message in messages:
            reply = await s.send(session, message)
            traces.append(await s.runtime.store.get(Trace, reply.trace_id))
        return traces


def _expected_cost(call: Any) -> float:
    uncached = call.usage.prompt_tokens - call.usage.cached_tokens
    return (
        uncached * PRICE.input
        + call.usage.cached_tokens * PRICE.cached_input
        + call.usage.completion_tokens * PRICE.output
    ) / 1e6


async def test_each_call_has_its_provider_and_its_cost_by_prefix() -> None:
    model = _model()
    first, second = await _turns(model, ["where is my refund?", "and my other refund?"])
    calls = first.model_calls + second.model_calls
    assert [c.stage for c in calls] == ["match", "compose", "match", "compose"]
    assert {(c.provider, c.model) for c in calls} == {("scripted", "scripted-2024-07-18")}
    # "scripted" prices "scripted-2024-07-18"; the second turn's prompts are partly cached.
    assert second.model_calls[0].cached_tokens > 0
    for call, scripted in zip(calls, model.calls, strict=True):
        assert call.cost_usd == pytest.approx(_expected_cost(scripted))
    usage = second.usage
    assert usage.model_calls == 2
    assert usage.prompt_tokens == sum(c.usage.prompt_tokens for c in model.calls[2:])
    assert usage.cached_tokens == sum(c.usage.cached_tokens for c in model.calls[2:])
    assert usage.completion_tokens == sum(c.usage.completion_tokens for c in model.calls[2:])
    assert usage.cost_usd == pytest.approx(sum(_expected_cost(c) for c in model.calls[2:]))
    assert usage.cost_complete


async def test_the_turn_s_console_line_says_its_cost(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tactful.turns")
    [trace] = await _turns(_model())
    [line] = [r.getMessage() for r in caplog.records if r.name == "tactful.turns"]
    assert trace.usage.cost_usd is not None
    assert line.endswith(f"2 model call(s), {_tokens(trace)} tokens, ${trace.usage.cost_usd:.6f}")


def _tokens(trace: Trace) -> int:
    return trace.usage.prompt_tokens + trace.usage.completion_tokens


async def test_a_model_without_a_price_costs_null_not_zero() -> None:
    [trace] = await _turns(_model("mystery-model"))
    assert [c.cost_usd for c in trace.model_calls] == [None, None]
    assert all(c.prompt_tokens > 0 for c in trace.model_calls)
    assert (trace.usage.cost_usd, trace.usage.cost_complete) == (None, False)


async def test_a_failed_call_is_recorded_without_usage_or_cost() -> None:
    [trace] = await _turns(_model(match_fails=True))
    failed, composed = trace.model_calls
    assert (failed.stage, failed.ok, failed.provider, failed.cost_usd) == (
        "match",
        False,
        "scripted",
        None,
    )
    assert "503" in (failed.error or "")
    assert composed.ok and composed.cost_usd is not None
    assert trace.usage.model_calls == 2
    assert (trace.usage.cost_usd, trace.usage.cost_complete) == (composed.cost_usd, True)


async def test_a_turn_is_a_span_with_its_stages_and_model_calls(spans: Spans) -> None:
    [trace] = await _turns(_model(), tracer_provider=spans.provider)
    named = spans.named()
    [turn] = named["tactful.turn"]
    assert turn.parent is None
    attributes = dict(turn.attributes or {})
    assert attributes["tactful.session_id"] == trace.session_id
    assert attributes["tactful.trace_id"] == trace.id
    assert attributes["tactful.agent_id"] == trace.agent_id
    assert attributes["tactful.outcome"] == "done"
    assert attributes["tactful.model_calls"] == 2
    assert attributes["tactful.usage.prompt_tokens"] == trace.usage.prompt_tokens
    assert attributes["tactful.usage.completion_tokens"] == trace.usage.completion_tokens
    assert attributes["tactful.cost_usd"] == pytest.approx(trace.usage.cost_usd)
    turn_id = turn.context.span_id

    # One span per stage timed in the trace, each a child of the turn.
    stage_spans = {n: found for n, found in named.items() if n.startswith("tactful.stage.")}
    assert all(len(found) == 1 for found in stage_spans.values())
    stages = {n.removeprefix("tactful.stage."): found[0] for n, found in stage_spans.items()}
    assert set(stages) == set(trace.stage_timings_ms)
    assert {"context", "retrieve", "match", "resolve", "compose"} <= set(stages)
    assert all(s.parent is not None and s.parent.span_id == turn_id for s in stages.values())

    # One span per model call, inside the stage that made it, with the GenAI attributes.
    calls = named["chat scripted-2024-07-18"]
    assert len(calls) == 2
    parents = {c.attributes["tactful.stage"]: c.parent for c in calls}  # type: ignore[index]
    for stage, parent in parents.items():
        assert parent is not None and parent.span_id == stages[stage].context.span_id
    for span, call in zip(calls, trace.model_calls, strict=True):
        assert span.kind is SpanKind.CLIENT
        assert dict(span.attributes or {}) == {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "scripted",
            "gen_ai.request.model": "scripted-2024-07-18",
            "gen_ai.response.model": call.model,
            "gen_ai.usage.input_tokens": call.prompt_tokens,
            "gen_ai.usage.output_tokens": call.completion_tokens,
            "tactful.stage": call.stage,
            "tactful.usage.cached_tokens": call.cached_tokens,
            "tactful.cost_usd": call.cost_usd,
        }
    # Every span is of the same trace.
    every = spans.exporter.get_finished_spans()
    assert {s.context.trace_id for s in every} == {turn.context.trace_id}


async def test_a_failed_model_call_is_an_error_span(spans: Spans) -> None:
    await _turns(_model(match_fails=True), prices={}, tracer_provider=spans.provider)
    failed, composed = spans.named()["chat scripted-2024-07-18"]
    assert failed.status.status_code is StatusCode.ERROR
    assert "503" in (failed.status.description or "")
    assert composed.status.status_code is StatusCode.UNSET
    # Unpriced: no cost attribute (null is not an attribute value).
    assert "tactful.cost_usd" not in (composed.attributes or {})
    [turn] = spans.named()["tactful.turn"]
    assert "tactful.cost_usd" not in (turn.attributes or {})
    assert turn.attributes["tactful.cost_complete"] is False  # type: ignore[index]
