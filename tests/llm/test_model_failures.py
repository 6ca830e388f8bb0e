"""A model that misbehaves never costs the customer their reply.

Whole turns on the model tier, configured from settings, through the official OpenAI SDK to a
local wire-protocol server that hangs, answers 500, answers a body that is not JSON, or answers
JSON that does not validate. Each turn ends with a reply within the turn's deadline: matching
decided by the offline tier (the real embedder), the reply from the matched guideline's canned
response; the trace and the console say so; the breaker opens, skips the model, and closes
once it answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from openai_wire import Body, Fail, OpenAIWire, Reply

import tactful
from cli.cli_process import start_serve
from tactful.domain import Trace
from tactful.llm.minilm import MiniLMEmbedder

ORDER_REPLY = "Could you give me your order number? I'll look it up right away."
REFUND_REPLY = "Refunds reach your card within 5 business days."
DEADLINE_S = 3.0


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def settings(wire: OpenAIWire, **overrides: object) -> tactful.Settings:
    values: dict[str, object] = {
        "openai_base_url": wire.base_url,
        "openai_model": "local-model",
        "turn_deadline_s": DEADLINE_S,
        "model_timeout_s": 1.0,
        "model_retries": 1,
        "model_breaker_failures": 3,
        "model_breaker_cooldown_s": 1.0,
    }
    return tactful.Settings(**(values | overrides))


@pytest.fixture
async def server(
    openai_wire: OpenAIWire, embedder: MiniLMEmbedder
) -> AsyncIterator[tactful.Server]:
    async with tactful.Server(
        transient=True, embedder=embedder, settings=settings(openai_wire)
    ) as s:
        agent = await s.create_agent("Support")
        order = await s.create_canned_response(ORDER_REPLY)
        refund = await s.create_canned_response(REFUND_REPLY)
        await agent.create_guideline(
            "the customer asks where their order is",
            "ask for the order number",
            id="order",
            canned_responses=[order],
        )
        await agent.create_guideline(
            "the customer asks for a refund",
            "say when refunds arrive",
            id="refund",
            canned_responses=[refund],
        )
        yield s


async def turn(s: tactful.Server, message: str) -> tuple[str, Trace, float]:
    agent = await s.find_agent(name="Support")
    assert agent is not None
    session = await s.create_session(agent)
    started = time.perf_counter()
    reply = await s.send(session, message)
    elapsed = time.perf_counter() - started
    trace = await s.runtime.store.get(Trace, reply.trace_id)
    return reply.data["message"], trace, elapsed


def assert_degraded(trace: Trace, cause: str) -> None:
    assert [r.split(":")[0] for r in trace.degraded] == ["matching", "composition"]
    assert cause in trace.degraded[0]
    assert trace.final_guideline_ids == ["order"]
    assert all(not c.ok for c in trace.model_calls)
    assert all(cause in c.error for c in trace.model_calls if not c.error.startswith("skipped"))


async def test_a_hanging_model_costs_the_turn_its_deadline_not_minutes(
    server: tactful.Server, openai_wire: OpenAIWire
) -> None:
    openai_wire.script(*[Reply('{"message": "too late"}', delay_s=30.0)] * 10)
    text, trace, elapsed = await turn(server, "where is my order?")
    assert text == ORDER_REPLY
    assert_degraded(trace, "timed out after")
    requests = [c for c in trace.model_calls if not c.error.startswith("skipped")]
    assert requests[0].error.endswith("timed out after 1 s")
    # Each attempt is recorded with its real duration: about the timeout it was given (the
    # 1 s per-call timeout, or less: what was left of the deadline).
    for call in requests:
        given_s = float(call.error.rsplit("timed out after ", 1)[1].removesuffix(" s"))
        assert given_s * 900 <= call.latency_ms <= given_s * 1000 + 900
    # The turn's model time is bounded by its deadline (plus the offline path's own work).
    assert sum(c.latency_ms for c in trace.model_calls) <= DEADLINE_S * 1000 + 300
    assert elapsed < DEADLINE_S + 2.0


async def test_500s_open_the_breaker_which_closes_when_the_model_answers_again(
    server: tactful.Server, openai_wire: OpenAIWire, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tactful.models")
    openai_wire.script(*[Fail(500, "upstream exploded")] * 10)
    text, trace, _ = await turn(server, "where is my order?")
    assert text == ORDER_REPLY
    assert_degraded(trace, "HTTP 500: upstream exploded")
    assert "model openai local-model (default) failed: " in caplog.text
    assert "is failing (3 failure(s) in a row" in caplog.text
    # Open: the next turn goes straight to the degraded path, without a request.
    sent = len(openai_wire.chat_requests)
    text, trace, _ = await turn(server, "I want a refund")
    assert text == REFUND_REPLY
    assert len(openai_wire.chat_requests) == sent
    assert [c.error.split(":")[0] for c in trace.model_calls] == ["skipped"] * 2
    assert trace.final_guideline_ids == ["refund"]
    # After the cool-down the model answers; the turn is whole again.
    await asyncio.sleep(1.1)
    openai_wire.reset()
    checks = (
        '{"checks": [{"guideline": 1, "condition_restated": "order", "evidence": "asked", '
        '"applies": true}, {"guideline": 2, "condition_restated": "refund", "evidence": "", '
        '"applies": false}]}'
    )
    openai_wire.script(checks, '{"message": "Sure, which order?"}')
    text, trace, _ = await turn(server, "where is my order?")
    assert text == "Sure, which order?"
    assert trace.degraded == [] and all(c.ok for c in trace.model_calls)
    assert "answers again (after 3 failure(s) in a row)" in caplog.text


@pytest.mark.parametrize(
    ("answers", "cause"),
    [
        ([Body("<html><body>502 Bad Gateway</body></html>")] * 10, "body that is not JSON"),
        (["this is not json {"] * 10, "invalid answer even after a repair retry"),
    ],
    ids=["body-not-json", "invalid-json"],
)
async def test_malformed_answers_degrade_the_turn_with_an_excerpt(
    server: tactful.Server, openai_wire: OpenAIWire, answers: list[Body | str], cause: str
) -> None:
    openai_wire.script(*answers)
    text, trace, _ = await turn(server, "where is my order?")
    assert text == ORDER_REPLY
    assert_degraded(trace, cause)
    if isinstance(answers[0], Body):
        assert "502 Bad Gateway" in trace.model_calls[0].error


def test_the_console_says_the_model_fails_and_the_turn_degraded(
    tmp_path: object, openai_wire: OpenAIWire
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    openai_wire.script(*[Fail(503, "overloaded")] * 20)
    served = start_serve(
        ["--example"],
        tmp_path,
        extra_env={
            "TACTFUL_MODEL_PROVIDER": "openai",
            "TACTFUL_OPENAI_BASE_URL": openai_wire.base_url,
            "TACTFUL_OPENAI_MODEL": "local-model",
            "TACTFUL_MODEL_TIMEOUT_S": "1",
            # Room for the first turn of a fresh process on a busy machine (the embedder loads):
            # three 503s must fit in it for the breaker to open.
            "TACTFUL_TURN_DEADLINE_S": "10",
        },
    )
    try:
        agent = httpx.get(f"{served.url}/agents").json()[0]
        session = httpx.post(f"{served.url}/sessions", json={"agent_id": agent["id"]}).json()
        events = f"{served.url}/sessions/{session['id']}/events"
        posted = httpx.post(
            events, json={"kind": "message", "source": "customer", "message": "where is my order?"}
        ).json()
        after = posted["offset"] + 1
        reply = httpx.get(
            events,
            params={"min_offset": after, "kinds": "message", "wait_for_data": 20},
            timeout=30,
        ).json()
        assert reply and reply[0]["source"] == "ai_agent"
        deadline = time.monotonic() + 10
        while "(degraded: matching" not in served.output() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        served.stop()
    output = served.output()
    assert f"model tier: openai local-model at {openai_wire.base_url}" in output
    assert "HTTP 503: overloaded" in output and "is failing" in output, output
    assert "(degraded: matching, composition)" in output
