"""Preambles: an acknowledgement sent before a slow reply, with no model call and no delay for
the reply; and the reply's language."""

from __future__ import annotations

import pytest_asyncio

import tactful
from tactful.domain import EventKind, EventSource, Trace
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import (
    MatchAnswer,
    ProposedArgument,
    ProposedCall,
    answer_listed,
)
from tactful.llm.scripted import ScriptedCall, ScriptedGenerator

LOOKUP = "the customer asks where an order is"


@tactful.tool
async def order_status(context: tactful.ToolContext, order_id: str) -> str:
    """Look an order up."""
    return "shipped"


def match(call: ScriptedCall) -> MatchAnswer:
    """The lookup guideline applies (again, each time), proposing its tool call."""
    answer = answer_listed(
        call.prompt.user, lambda g: "yes" if g.condition == LOOKUP else None, reapply=True
    )
    argument = ProposedArgument(name="order_id", value="A1", source="customer")
    for check in answer.checks:
        if check.applies:
            check.tool_calls = [ProposedCall(tool="order_status", arguments=[argument])]
    return answer


@pytest_asyncio.fixture
async def model() -> ScriptedGenerator:
    return ScriptedGenerator({"match": match, "compose": lambda c: ReplyAnswer(message="Done.")})


async def _messages(server: tactful.Server, session_id: str) -> list[tactful.Event]:
    return await server.runtime.store.list_events(
        session_id, kinds=[EventKind.MESSAGE], source=EventSource.AI_AGENT
    )


async def test_a_preamble_goes_out_before_tools_run(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await server.create_agent(
        "Shop", preambles=["Let me check that.", "One moment."], preamble_after_ms=60000
    )
    await agent.create_guideline(LOOKUP, "look it up", tools=[order_status])
    session = await server.create_session(agent)
    reply = await server.send(session, "where is order A1?")
    events = await server.runtime.store.list_events(session.id)
    kinds = [
        (e.kind, (e.data or {}).get("message")) for e in events if e.kind is not EventKind.STATUS
    ]
    assert kinds == [
        (EventKind.MESSAGE, "where is order A1?"),
        (EventKind.MESSAGE, "Let me check that."),
        (EventKind.TOOL, None),
        (EventKind.MESSAGE, "Done."),
    ]
    preamble = (await _messages(server, session.id))[0]
    assert preamble.metadata == {"preamble": True} and preamble.trace_id == reply.trace_id
    trace = await server.runtime.store.get(Trace, reply.trace_id)
    assert trace.composition.preamble is not None
    assert trace.composition.preamble.why == "tools are about to run"
    # No model call was made for it: matching and composing only.
    assert [c.stage for c in model.calls] == ["match", "compose"]
    # The next slow turn says the other one; the preamble never counts as a reply.
    reply = await server.send(session, "and order A1 again?")
    texts = [e.data["message"] for e in await _messages(server, session.id)]
    assert texts == ["Let me check that.", "Done.", "One moment.", "Done."]


async def test_a_preamble_goes_out_when_the_reply_is_late(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    model.latency_s = 0.05  # the model takes a while: the reply is late
    agent = await server.create_agent("Shop", preambles=["Working on it."], preamble_after_ms=0)
    session = await server.create_session(agent)
    await server.send(session, "hello")
    texts = [e.data["message"] for e in await _messages(server, session.id)]
    assert texts == ["Working on it.", "Done."]


async def test_no_preamble_when_the_reply_is_quick_or_none_is_configured(
    server: tactful.Server,
) -> None:
    quick = await server.create_agent("Quick", preambles=["Hmm."], preamble_after_ms=60000)
    silent = await server.create_agent("Silent", preamble_after_ms=0)
    for agent in (quick, silent):
        session = await server.create_session(agent)
        reply = await server.send(session, "hello")
        assert [e.data["message"] for e in await _messages(server, session.id)] == ["Done."]
        trace = await server.runtime.store.get(Trace, reply.trace_id)
        assert trace.composition.preamble is None


async def test_the_reply_follows_the_customers_language_when_the_agent_allows_it(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    polyglot = await server.create_agent("Polyglot")
    english = await server.create_agent("English only", reply_in_customer_language=False)
    for agent in (polyglot, english):
        session = await server.create_session(agent)
        await server.send(session, "¿dónde está mi pedido?")
    first, second = (c.prompt.system for c in model.calls_for("compose"))
    assert "language of the customer's latest message" in first
    assert "whatever the customer writes in" in second
