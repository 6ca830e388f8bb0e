"""The SDK's journeys: built step by step, validated at once, idempotent across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

import tactful
from tactful.domain import Guideline, Journey, StateKind
from tactful.errors import ValidationError
from tactful.llm.scripted import HashingEmbedder


@tactful.tool
async def find_order(context: tactful.ToolContext, order_id: str) -> dict[str, object]:
    """Look an order up."""
    return {"order_id": order_id, "status": "delivered"}


async def _define(server: tactful.Server) -> tuple[str, str, str]:
    agent = await server.create_agent("Shop")
    journey = await agent.create_journey(
        title="Return an item", conditions=["the customer wants to return an item"]
    )
    t1 = await journey.initial_state.transition_to(chat_state="Ask for the order ID")
    t2 = await t1.target.transition_to(
        condition="the customer gave an order ID", tool_state=find_order
    )
    await t2.target.transition_to(end=True)
    return journey.id, t1.id, t2.target.id


async def test_the_issue_example_is_persisted_and_idempotent(tmp_path: Path) -> None:
    async with tactful.Server(data_dir=tmp_path, embedder=HashingEmbedder(), offline=True) as s:
        first = await _define(s)
    async with tactful.Server(data_dir=tmp_path, embedder=HashingEmbedder(), offline=True) as s:
        assert await _define(s) == first
        [journey] = await s.entities(Journey)
        [observation] = await s.entities(Guideline)
    assert journey.id == first[0]
    assert observation.condition == "the customer wants to return an item"
    assert observation.action is None
    assert journey.conditions == [observation.id]
    assert [st.kind for st in journey.states] == [
        StateKind.CHAT,
        StateKind.CHAT,
        StateKind.TOOL,
        StateKind.END,
    ]
    assert journey.states[1].action == "Ask for the order ID"
    assert journey.states[2].tools == [find_order.tool_id]
    assert [(t.condition) for t in journey.transitions] == [
        None,
        "the customer gave an order ID",
        None,
    ]
    assert journey.transitions[1].target == first[2]


async def test_invalid_steps_are_refused_at_once() -> None:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        agent = await s.create_agent("Shop")
        journey = await agent.create_journey(title="Return")
        with pytest.raises(ValidationError, match="unknown tool 'nope:tool'"):
            await journey.initial_state.transition_to(tool_state="nope:tool")
        done = await journey.initial_state.transition_to(end=True, condition="all done")
        with pytest.raises(ValidationError, match="end state"):
            await done.target.transition_to(chat_state="More")
        with pytest.raises(ValidationError, match="exactly one"):
            await journey.initial_state.transition_to(chat_state="a", fork=True)
        # A fork under construction is fine; going back to an existing state too.
        fork = await journey.initial_state.transition_to(fork=True)
        loop = await fork.target.transition_to(state=journey.initial_state, condition="again")
        assert loop.target == journey.initial_state
        stored = (await s.entities(Journey))[0]
        assert len(stored.states) == 3 and len(stored.transitions) == 3
