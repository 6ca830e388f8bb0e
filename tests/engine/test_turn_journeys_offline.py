"""Journeys on the offline tier (no model: rules and similarity decide, and the trace says so),
and code conditions on transitions, which decide without a model call on either tier."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import pytest_asyncio
from pydantic import Field

import tactful
from tactful.domain import Journey, JourneyProgress, RunStatus, Trace
from tactful.engine.compose import ReplyAnswer
from tactful.engine.hooks import BranchContext
from tactful.engine.match import (
    JourneyCheck,
    ListedJourney,
    MatchAnswer,
    ProposedArgument,
    ProposedCall,
    answer_listed,
)
from tactful.llm.scripted import HashingEmbedder, ScriptedCall, ScriptedGenerator

ORDER = Annotated[
    str, tactful.ToolParam(description="VM and 8 digits"), Field(pattern=r"^VM\d{8}$")
]
looked_up: list[str] = []


@tactful.tool
async def find_order(context: tactful.ToolContext, order_id: ORDER) -> tactful.ToolResult:
    """Look an order up."""
    looked_up.append(order_id)
    return tactful.ToolResult(
        data={"order_id": order_id, "returnable": order_id.endswith("1")},
        fields={"order_id": order_id},
    )


def returnable(ctx: BranchContext) -> bool:
    return bool(ctx.results["find_order"]["returnable"])


def not_returnable(ctx: BranchContext) -> bool:
    return not ctx.results["find_order"]["returnable"]


REPLIES = {
    "Ask for the order number": "Sure, what is the order number?",
    "Ask for the reason of the return": "Order {{order_id}} can be returned. Why?",
    "Explain the 30-day return window": "Sorry, order {{order_id}} is past the 30 days.",
    "Confirm the return label by email": "Done: the return label is in your inbox.",
}


async def _shop(server: tactful.Server) -> tuple[tactful.Agent, Journey]:
    agent = await server.create_agent("Shop")
    hours = await server.create_canned_response("We are open 9 to 5.")
    await agent.create_guideline(
        "the customer asks when the shop is open",
        "give the opening hours",
        canned_responses=[hours],
    )
    journey = await agent.create_journey(
        "Return an item", conditions=["the customer wants to return an item"]
    )
    ask = await journey.initial_state.transition_to(chat_state="Ask for the order number")
    look = await ask.target.transition_to(
        condition="the customer gave an order number", tool_state=find_order
    )
    fork = await look.target.transition_to(fork=True)
    yes = await fork.target.transition_to(
        condition="the order can be returned", chat_state="Ask for the reason of the return"
    )
    no = await fork.target.transition_to(
        condition="the order cannot be returned", chat_state="Explain the 30-day return window"
    )
    # The data decides the fork: code conditions over the tool's result.
    assert yes.when(returnable) is yes
    no.when(not_returnable)
    confirm = await yes.target.transition_to(chat_state="Confirm the return label by email")
    await confirm.target.transition_to(end=True)
    await no.target.transition_to(end=True)
    # Offline, a step says what its canned response says.
    model = await journey.reload()
    for state in model.states:
        if state.action in REPLIES:
            canned = await server.create_canned_response(REPLIES[state.action])
            state.canned_responses = [canned.id]
    return agent, await server.runtime.store.update(model)


@pytest_asyncio.fixture
async def offline() -> AsyncIterator[tactful.Server]:
    looked_up.clear()
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        yield s


async def _trace(server: tactful.Server, reply: tactful.Event) -> Trace:
    return await server.runtime.store.get(Trace, reply.trace_id)


async def test_offline_a_journey_starts_pauses_resumes_runs_its_tool_and_ends(
    offline: tactful.Server,
) -> None:
    agent, journey = await _shop(offline)
    session = await offline.create_session(agent)

    reply = await offline.send(session, "I want to return an item")
    assert reply.data["message"] == "Sure, what is the order number?"
    [step] = (await _trace(offline, reply)).journeys
    assert (step.kind, step.method) == ("start", "offline")

    reply = await offline.send(session, "By the way, when is the shop open?")
    assert reply.data["message"] == "We are open 9 to 5."
    [step] = (await _trace(offline, reply)).journeys
    assert step.kind == "pause" and "turned to something else" in step.rationale

    reply = await offline.send(session, "OK. It is VM00000001")
    assert reply.data["message"] == "Order VM00000001 can be returned. Why?"
    steps = (await _trace(offline, reply)).journeys
    assert [(s.kind, s.method) for s in steps] == [("advance", "offline"), ("continue", "code")]
    assert steps[0].status_before == "paused"
    assert "every argument" in next(c.why for c in steps[0].considered if c.taken)
    assert looked_up == ["VM00000001"]

    reply = await offline.send(session, "It broke after a week")
    assert reply.data["message"] == "Done: the return label is in your inbox."
    reply = await offline.send(session, "Thanks!")
    [step] = (await _trace(offline, reply)).journeys
    assert (step.kind, step.status_after) == ("end", "ended")
    run = (await offline.runtime.store.get(JourneyProgress, session.id)).runs[journey.id]
    assert (run.status, run.ended_reason) == (RunStatus.ENDED, "completed")


async def test_offline_a_journey_skips_the_question_already_answered(
    offline: tactful.Server,
) -> None:
    agent, journey = await _shop(offline)
    session = await offline.create_session(agent)
    reply = await offline.send(session, "I want to return an item, order VM00000002")
    assert reply.data["message"] == "Sorry, order VM00000002 is past the 30 days."
    start, cont = (await _trace(offline, reply)).journeys
    ask = next(s for s in journey.states if s.action == "Ask for the order number")
    assert start.kind == "start" and start.skipped == [ask.id]
    assert [c.why for c in cont.considered if c.taken] == ["unconditional", "code condition: holds"]


async def test_code_conditions_spare_the_model_call_after_a_tool_state() -> None:
    looked_up.clear()

    def match(call: ScriptedCall) -> MatchAnswer:
        def journey(j: ListedJourney) -> JourneyCheck:
            return JourneyCheck(
                journey=j.number,
                status="following",
                evidence="order given",
                step=j.step("find_order"),
                tool_calls=[
                    ProposedCall(
                        tool="find_order",
                        arguments=[
                            ProposedArgument(name="order_id", value="VM00000001", source="customer")
                        ],
                    )
                ],
            )

        return answer_listed(
            call.prompt.user,
            lambda g: "yes" if "return" in g.condition else None,
            journeys=journey,
        )

    model = ScriptedGenerator({"match": match, "compose": lambda c: ReplyAnswer(message="ok")})
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), generator=model) as s:
        agent, _ = await _shop(s)
        session = await s.create_session(agent)
        reply = await s.send(session, "Return VM00000001 please")
        steps = (await _trace(s, reply)).journeys
    assert [(st.kind, st.method) for st in steps] == [("start", "model"), ("continue", "code")]
    assert len(model.calls_for("match")) == 1
    assert looked_up == ["VM00000001"]
    composed = model.calls_for("compose")[-1].prompt.user
    assert "Ask for the reason of the return" in composed
