"""A whole turn on the model tier: the runtime picks the OpenAI-compatible adapter from settings,
and matching and composition go through the official SDK to a local wire-protocol server."""

from __future__ import annotations

import json

from openai_wire import OpenAIWire

import tactful
from tactful.domain import Trace
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import choose_generator


def test_tier_is_chosen_from_settings_and_says_why() -> None:
    generator, reason = choose_generator(tactful.Settings(model_provider="offline"))
    assert generator is None and "TACTFUL_MODEL_PROVIDER=offline" in reason
    generator, reason = choose_generator(
        tactful.Settings(openai_base_url="http://127.0.0.1:9/v1", openai_model="qwen")
    )
    assert generator is not None and generator.model_name == "qwen"
    assert reason == "model tier: openai qwen at http://127.0.0.1:9/v1"


async def test_a_turn_on_the_model_tier(openai_wire: OpenAIWire) -> None:
    settings = tactful.Settings(openai_base_url=openai_wire.base_url, openai_model="local-model")
    match = {
        "checks": [
            {
                "guideline": 1,
                "condition_restated": "asks about a refund",
                "evidence": "customer: 'where is my refund?'",
                "applies": True,
            }
        ]
    }
    openai_wire.script(json.dumps(match), json.dumps({"message": "Refunds take 5 days."}))
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), settings=settings) as s:
        assert s.runtime.tier == "model:local-model"
        agent = await s.create_agent("Support")
        await agent.create_guideline(
            "the customer asks about a refund", "say refunds take 5 days", id="refunds"
        )
        session = await s.create_session(agent)
        reply = await s.send(session, "where is my refund?")
        assert reply.data["message"] == "Refunds take 5 days."
        assert reply.data["guidelines"] == ["refunds"]
        trace = await s.runtime.store.get(Trace, reply.trace_id)
    assert [c.stage for c in trace.model_calls] == ["match", "compose"]
    assert all(c.prompt_tokens > 0 for c in trace.model_calls)
    assert [m.rationale for m in trace.matches if m.applies] == ["customer: 'where is my refund?'"]
    requests = openai_wire.chat_requests
    assert len(requests) == 2
    assert "the customer asks about a refund" in requests[0]["messages"][1]["content"]
    assert requests[0]["response_format"]["type"] == "json_schema"
