"""Context variables through whole turns: in the prompts when relevant, in canned responses,
and tool-backed ones refreshed while retrieval runs."""

from __future__ import annotations

from typing import Annotated

import pytest_asyncio

import tactful
from tactful.domain import Trace
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import ListedGuideline, MatchAnswer, answer_listed
from tactful.llm.scripted import HashingEmbedder, ScriptedCall, ScriptedGenerator

lookups: list[str] = []


@tactful.tool
async def points_balance(
    context: tactful.ToolContext,
    customer_id: Annotated[str, tactful.ToolParam(hidden=True)],
) -> int:
    """The customer's loyalty points."""
    lookups.append(customer_id)
    return 1200


def everything_applies(call: ScriptedCall) -> MatchAnswer:
    def decide(g: ListedGuideline) -> str | None:
        return "yes"

    return answer_listed(call.prompt.user, decide)


@pytest_asyncio.fixture
async def model() -> ScriptedGenerator:
    lookups.clear()
    return ScriptedGenerator(
        {"match": everything_applies, "compose": lambda c: ReplyAnswer(message="ok")}
    )


async def test_a_variable_named_by_a_guideline_reaches_both_prompts(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await server.create_agent("Shop")
    tier = await agent.create_variable("membership tier", "the customer's plan")
    await agent.create_guideline(
        "the customer asks about perks", "explain the perks of their membership tier"
    )
    ann = await server.create_customer("Ann")
    await agent.set_variable_value(tier, "gold", customer=ann)
    session = await server.create_session(agent, ann)
    reply = await server.send(session, "what perks do I get?")
    match_prompt = model.calls_for("match")[0].prompt.user
    compose_prompt = model.calls_for("compose")[0].prompt.user
    assert "- membership tier: gold" in match_prompt
    assert "- membership tier: gold" in compose_prompt
    trace = await server.runtime.store.get(Trace, reply.trace_id)
    assert trace.composition.variables[0].value == "gold"


async def test_tool_backed_variable_is_refreshed_in_the_turn_and_fills_templates() -> None:
    lookups.clear()
    settings = tactful.Settings(offline_match_threshold=0.3)
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), offline=True, settings=settings
    ) as server:
        agent = await server.create_agent("Shop", composition_mode=tactful.CompositionMode.STRICT)
        await agent.create_variable(
            "loyalty points", tool=points_balance, freshness_rules="0 * * * *"
        )
        balance = await agent.create_canned_response("You have {{loyalty_points}} points.")
        await agent.create_guideline(
            "how many loyalty points do I have",
            "tell the balance",
            canned_responses=[balance],
        )
        ann = await server.create_customer("Ann")
        session = await server.create_session(agent, ann)
        reply = await server.send(session, "how many loyalty points do I have?")
        assert reply.data["message"] == "You have 1200 points."
        assert lookups == [ann.id]
        # Fresh until the next hourly tick: the next turn does not call the tool again.
        await server.send(session, "how many loyalty points do I have now?")
        assert lookups == [ann.id]
