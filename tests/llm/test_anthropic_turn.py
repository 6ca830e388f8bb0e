"""A whole turn on the model tier with the Anthropic adapter: matching and composition go through
the official SDK to a local server speaking Anthropic's Messages wire protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from anthropic_wire import (
    AnthropicWire,
    Reply,
)

import tactful
from tactful.domain import Trace
from tactful.llm.anthropic import AnthropicGenerator
from tactful.llm.scripted import HashingEmbedder

MODEL = "claude-test"
MATCH = {
    "checks": [
        {
            "guideline": 1,
            "condition_restated": "asks about a refund",
            "evidence": "customer: 'where is my refund?'",
            "applies": True,
        }
    ]
}


@pytest.fixture
async def generator(anthropic_wire: AnthropicWire) -> AsyncIterator[AnthropicGenerator]:
    async with AnthropicGenerator(
        MODEL, base_url=anthropic_wire.base_url, api_key="sk-ant-test", max_retries=0
    ) as gen:
        yield gen


async def _refund_agent(
    server: tactful.Server, mode: tactful.MessageOutputMode = tactful.MessageOutputMode.BLOCK
) -> tactful.Agent:
    agent = await server.create_agent("Support", message_output_mode=mode)
    await agent.create_guideline(
        "the customer asks about a refund", "say refunds take 5 days", id="refunds"
    )
    return agent


async def test_a_turn_on_the_model_tier(
    anthropic_wire: AnthropicWire, generator: AnthropicGenerator
) -> None:
    anthropic_wire.script(
        Reply(tool_input=MATCH, input_tokens=200, output_tokens=40),
        Reply(tool_input={"message": "Refunds take 5 days."}, input_tokens=90, output_tokens=12),
    )
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), generator=generator
    ) as server:
        assert server.runtime.tier == f"model:{MODEL}"
        session = await server.create_session(await _refund_agent(server))
        reply = await server.send(session, "where is my refund?")
        assert reply.data["message"] == "Refunds take 5 days."
        assert reply.data["guidelines"] == ["refunds"]
        trace = await server.runtime.store.get(Trace, reply.trace_id)

    assert [(c.stage, c.model, c.ok) for c in trace.model_calls] == [
        ("match", MODEL, True),
        ("compose", MODEL, True),
    ]
    match_usage, compose_usage = (r.usage for r in anthropic_wire.requests)
    assert match_usage is not None and compose_usage is not None
    match_call, compose_call = trace.model_calls
    assert match_call.completion_tokens == 40 and compose_call.completion_tokens == 12
    # Each stage's system prompt is its own prefix, written to the cache on first use.
    assert match_call.prompt_tokens == 200 + match_usage["cache_creation_input_tokens"]
    assert compose_call.prompt_tokens == 90 + compose_usage["cache_creation_input_tokens"]
    assert [m.rationale for m in trace.matches if m.applies] == ["customer: 'where is my refund?'"]
    match_request, compose_request = anthropic_wire.message_requests
    assert "the customer asks about a refund" in match_request["messages"][0]["content"]
    assert match_request["tool_choice"]["type"] == "tool"
    assert compose_request["tool_choice"]["name"] != match_request["tool_choice"]["name"]
    assert match_request["system"][0]["cache_control"] == {"type": "ephemeral"}


async def test_a_streamed_turn_reads_the_cache_on_the_next_turn(
    anthropic_wire: AnthropicWire, generator: AnthropicGenerator
) -> None:
    anthropic_wire.script(
        Reply(tool_input=MATCH),
        Reply(text="Refunds take five days.", input_tokens=50, output_tokens=6),
        Reply(tool_input=MATCH),
        Reply(text="Still five days.", input_tokens=60, output_tokens=4),
    )
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), generator=generator
    ) as server:
        agent = await _refund_agent(server, tactful.MessageOutputMode.STREAM)
        session = await server.create_session(agent)
        first = await server.send(session, "where is my refund?")
        second = await server.send(session, "and my refund now?")
        traces = [
            await server.runtime.store.get(Trace, reply.trace_id) for reply in (first, second)
        ]

    assert first.data["message"] == "Refunds take five days."
    assert first.data["chunks"] == ["Refunds ", "take ", "five ", "days.", None]
    assert second.data["message"] == "Still five days."
    requests = anthropic_wire.message_requests
    assert [r.get("stream", False) for r in requests] == [False, True, False, True]
    composed = [next(c for c in t.model_calls if c.stage == "compose") for t in traces]
    assert [c.completion_tokens for c in composed] == [6, 4]
    # The compose prompt's stable prefix is the same on the second turn: read from the cache.
    assert composed[0].cached_tokens == 0
    assert composed[1].cached_tokens > 0
    assert composed[1].prompt_tokens == 60 + composed[1].cached_tokens
