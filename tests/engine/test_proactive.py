"""Proactive turns with the scripted double: a greeting, a request to utter with actions, a
turn with nothing to say, and what a proactive turn does not do (tools, manual mode)."""

from __future__ import annotations

import pytest
import pytest_asyncio

import tactful
from tactful.domain import (
    EventKind,
    EventSource,
    MatchMethod,
    ProactiveKind,
    ProactiveRequest,
    RequestedAction,
    Trace,
)
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import (
    GuidelineCheck,
    ListedGuideline,
    MatchAnswer,
    ProposedCall,
    answer_listed,
    listed_guidelines,
)
from tactful.llm.scripted import HashingEmbedder, ScriptedCall, ScriptedGenerator

looked_up: list[str] = []


@tactful.tool
async def lookup(context: tactful.ToolContext) -> str:
    """Look the order up."""
    looked_up.append(context.session_id)
    return "shipped"


def _opening(g: ListedGuideline) -> str | None:
    return "nothing has been said yet" if "conversation opens" in g.condition else None


def _refunds(call: ScriptedCall) -> MatchAnswer:
    """The refund guideline applies, proposing its lookup (whatever the conversation)."""
    checks = [
        GuidelineCheck(
            guideline=g.number,
            condition_restated=g.condition,
            evidence="refunds",
            applies="refunds" in g.condition,
            reapply=True if "refunds" in g.condition else None,
            tool_calls=[ProposedCall(tool="lookup", arguments=[])]
            if "refunds" in g.condition
            else [],
        )
        for g in listed_guidelines(call.prompt.user)
        if g.detailed
    ]
    return MatchAnswer(checks=checks)


def _compose(call: ScriptedCall) -> ReplyAnswer:
    prompt = call.prompt.user
    if "own initiative (greeting)" in prompt:
        return ReplyAnswer(message="Welcome to the shop!")
    if "still there" in prompt:
        return ReplyAnswer(message="Are you still there?")
    return ReplyAnswer(message="Refunds take five days.")


@pytest_asyncio.fixture
async def model() -> ScriptedGenerator:
    looked_up.clear()
    return ScriptedGenerator(
        {"match": lambda c: answer_listed(c.prompt.user, _opening), "compose": _compose}
    )


async def _agent(server: tactful.Server) -> tactful.Agent:
    agent = await server.create_agent("Shop", "Sells headphones")
    await agent.create_guideline("the conversation opens", "greet the customer by the shop's name")
    return agent


async def test_a_greeting_is_composed_under_the_guidelines(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await _agent(server)
    session = await server.create_session(agent, allow_greeting=True)
    await server.runtime.engine.wait_idle(session.id)
    events = await server.runtime.store.list_events(session.id)
    shape = [(e.kind.value, (e.data or {}).get("status")) for e in events]
    assert shape == [
        ("status", "acknowledged"),
        ("status", "processing"),
        ("status", "typing"),
        ("message", None),
        ("status", "ready"),
    ]
    assert events[0].data["data"] == {"proactive": {"kind": "greeting", "actions": []}}
    greeting = events[3]
    assert greeting.source is EventSource.AI_AGENT
    assert greeting.data["message"] == "Welcome to the shop!"
    trace = await server.runtime.store.get(Trace, greeting.trace_id)
    assert trace.proactive == ProactiveRequest(kind=ProactiveKind.GREETING)
    assert trace.customer_event_offset == events[0].offset
    assert [m.condition for m in trace.matches if m.applies] == ["the conversation opens"]
    # The match saw an empty conversation; the writer was told it speaks first.
    [compose] = [c for c in model.calls if c.stage == "compose"]
    assert "greet the customer by the shop's name" in compose.prompt.user
    assert "own initiative (greeting)" in compose.prompt.user


async def test_an_utterance_follows_the_actions_asked_for(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await _agent(server)
    await agent.create_guideline("asks about refunds", "explain refund timing", tools=[lookup])
    session = await server.create_session(agent)
    model.on("match", _refunds)
    await server.send(session, "How long do refunds take?")
    assert looked_up == [session.id]

    said = await server.utter(session, ["ask whether the customer is still there"])

    assert said is not None and said.data["message"] == "Are you still there?"
    trace = await server.runtime.store.get(Trace, said.trace_id)
    assert trace.proactive is not None and trace.proactive.kind is ProactiveKind.UTTERANCE
    assert trace.proactive.actions == [
        RequestedAction(action="ask whether the customer is still there")
    ]
    requested = [m for m in trace.matches if m.method is MatchMethod.REQUESTED]
    assert [m.action for m in requested] == ["ask whether the customer is still there"]
    assert "requested:0" in trace.final_guideline_ids
    # The refund guideline still applies, but a proactive turn calls no tools.
    assert looked_up == [session.id]
    assert trace.composition.tool_calls == []
    compose = [c for c in model.calls if c.stage == "compose"][-1]
    assert "then ask whether the customer is still there" in compose.prompt.user
    assert "then explain refund timing" in compose.prompt.user


async def test_nothing_to_say_stays_silent() -> None:
    # The offline tier with no guideline that applies and no template: no message at all
    # (a customer turn would send the no-match reply).
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as server:
        agent = await server.create_agent("Shop", composition_mode=tactful.CompositionMode.STRICT)
        session = await server.create_session(agent, allow_greeting=True)
        await server.runtime.engine.wait_idle(session.id)
        events = await server.runtime.store.list_events(session.id)
        assert [e.kind for e in events] == [EventKind.STATUS] * 3
        assert [e.data["status"] for e in events] == ["acknowledged", "processing", "ready"]
        trace = await server.runtime.store.get(Trace, events[0].trace_id)
        assert trace.status == "done" and trace.message_event_id is None
        assert trace.composition.method == "no-match"


async def test_an_offline_utterance_picks_the_closest_template() -> None:
    # The real embedder: the closeness a template needs is calibrated on it.
    async with tactful.Server(transient=True, offline=True) as server:
        agent = await server.create_agent("Shop", composition_mode=tactful.CompositionMode.STRICT)
        await agent.create_canned_response("Your order has shipped and arrives tomorrow.")
        await agent.create_canned_response("Refunds take five business days.")
        session = await server.create_session(agent)
        said = await server.utter(session, ["tell the customer their order has shipped"])
        assert said is not None
        assert said.data["message"] == "Your order has shipped and arrives tomorrow."


async def test_manual_mode_refuses_to_utter(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await _agent(server)
    session = await server.create_session(agent)
    await server.hand_off(session, "asked for a person")
    with pytest.raises(tactful.ConflictError, match="manual mode"):
        await server.utter(session, ["say hello"])
    assert await server.runtime.store.list_events(session.id, kinds=[EventKind.STATUS]) == []


async def test_an_offline_utterance_says_nothing_rather_than_a_template_about_something_else() -> (
    None
):
    async with tactful.Server(transient=True, offline=True) as server:
        agent = await server.create_agent("Shop", composition_mode=tactful.CompositionMode.STRICT)
        await agent.create_canned_response("Refunds take five business days.")
        session = await server.create_session(agent)
        assert await server.utter(session, ["tell the customer their order has shipped"]) is None
        [trace] = await server.runtime.store.list(Trace, session_id=session.id)
        assert trace.composition.method == "no-match"


async def test_a_proactive_turn_does_not_answer_the_customers_message_again() -> None:
    """The offline tier decides on similarity to the latest customer message: after the agent
    answered it, a request to speak must not bring the same answer back."""
    async with tactful.Server(transient=True, offline=True) as server:
        agent = await server.create_agent("Shop", composition_mode=tactful.CompositionMode.STRICT)
        refunds = await agent.create_guideline(
            "the customer asks how long refunds take",
            "say refunds take five business days",
            canned_responses=[
                (await agent.create_canned_response("Refunds take five business days.")).id
            ],
        )
        await agent.create_canned_response("Is there anything else I can do for you today?")
        session = await server.create_session(agent)
        answer = await server.send(session, "how long do refunds take?")
        assert answer.data["message"] == "Refunds take five business days."
        said = await server.utter(
            session, ["ask if there is anything else you can do for them today"]
        )
        assert said is not None
        assert said.data["message"] == "Is there anything else I can do for you today?"
        traces = await server.runtime.store.list(Trace, session_id=session.id)
        assert refunds.id in traces[0].final_guideline_ids
        assert traces[-1].final_guideline_ids == ["requested:0"]
