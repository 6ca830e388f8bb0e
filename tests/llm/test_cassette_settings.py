"""A cassette from the settings: record a turn against a model, then replay it with none."""

from __future__ import annotations

import json
from pathlib import Path

from openai_wire import OpenAIWire

import tactful
from tactful.llm.scripted import HashingEmbedder

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


async def refund_turn(settings: tactful.Settings) -> tuple[str, str]:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), settings=settings) as s:
        agent = await s.create_agent("Support")
        await agent.create_guideline(
            "the customer asks about a refund", "say refunds take 5 days", id="refunds"
        )
        reply = await s.send(await s.create_session(agent), "where is my refund?")
        return reply.data["message"], s.runtime.tier_reason


async def test_record_then_replay_from_settings(openai_wire: OpenAIWire, tmp_path: Path) -> None:
    cassette = tmp_path / "refund.json"
    openai_wire.script(json.dumps(MATCH), json.dumps({"message": "Refunds take 5 days."}))
    recorded, reason = await refund_turn(
        tactful.Settings(
            openai_base_url=openai_wire.base_url,
            openai_model="local-model",
            model_cassette=cassette,
            model_cassette_mode="record",
        )
    )
    assert recorded == "Refunds take 5 days."
    assert reason.endswith(f"recorded to the cassette {cassette}")
    assert [c["stage"] for c in json.loads(cassette.read_text())["interactions"]] == [
        "match",
        "compose",
    ]
    sent = len(openai_wire.chat_requests)
    # Replay: no provider configured at all, and the model server is never asked.
    replayed, reason = await refund_turn(
        tactful.Settings(model_provider="offline", model_cassette=cassette)
    )
    assert replayed == recorded
    assert reason == f"model tier: replaying the cassette {cassette}"
    assert len(openai_wire.chat_requests) == sent
