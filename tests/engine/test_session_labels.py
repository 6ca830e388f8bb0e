"""Session labels from a turn: the labels of its active guidelines and followed journeys go to
the session with the reply, and the trace says which."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

import tactful
from tactful.domain import Session, Trace
from tactful.llm.scripted import HashingEmbedder


@pytest_asyncio.fixture
async def offline() -> AsyncIterator[tactful.Server]:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        yield s


async def _shop(server: tactful.Server) -> tactful.Agent:
    agent = await server.create_agent("Shop")
    hours = await server.create_canned_response("We are open 9 to 5.")
    await agent.create_guideline(
        "the customer asks when the shop is open",
        "give the opening hours",
        canned_responses=[hours],
        labels=["hours", "faq"],
    )
    never = await server.create_canned_response("Our parking is behind the shop.")
    await agent.create_guideline(
        "the customer asks where to park",
        "say where the parking is",
        canned_responses=[never],
        labels=["parking"],
    )
    journey = await agent.create_journey(
        "Return an item",
        conditions=["the customer wants to return an item"],
        labels=["returns", "faq"],
    )
    ask = await journey.initial_state.transition_to(chat_state="Ask for the order number")
    await ask.target.transition_to(end=True)
    model = await journey.reload()
    question = await server.create_canned_response("Sure, what is the order number?")
    for state in model.states:
        if state.action == "Ask for the order number":
            state.canned_responses = [question.id]
    await server.runtime.store.update(model)
    return agent


async def _labels(server: tactful.Server, session: Session) -> list[str]:
    return (await server.runtime.store.get(Session, session.id)).labels


async def _trace(server: tactful.Server, reply: tactful.Event) -> Trace:
    return await server.runtime.store.get(Trace, reply.trace_id)


async def test_active_guidelines_and_followed_journeys_label_the_session(
    offline: tactful.Server,
) -> None:
    agent = await _shop(offline)
    session = await offline.create_session(agent)
    await offline.runtime.store.update(session.model_copy(update={"labels": ["vip"]}))

    reply = await offline.send(session, "When is the shop open?")
    assert reply.data["message"] == "We are open 9 to 5."
    assert await _labels(offline, session) == ["vip", "hours", "faq"]
    trace = await _trace(offline, reply)
    assert (trace.session_labels, trace.session_labels_added) == (
        ["hours", "faq"],
        ["hours", "faq"],
    )

    reply = await offline.send(session, "I want to return an item")
    assert reply.data["message"] == "Sure, what is the order number?"
    # The journey's labels, once each ("faq" the session has already).
    assert await _labels(offline, session) == ["vip", "hours", "faq", "returns"]
    trace = await _trace(offline, reply)
    assert "returns" in trace.session_labels and trace.session_labels_added == ["returns"]

    reply = await offline.send(session, "And when is the shop open again?")
    trace = await _trace(offline, reply)
    assert "hours" in trace.session_labels and trace.session_labels_added == []
    # The parking guideline never applied: its label is not the session's.
    assert "parking" not in await _labels(offline, session)


async def test_a_turn_without_labelled_guidelines_labels_nothing(offline: tactful.Server) -> None:
    agent = await offline.create_agent("Plain")
    hours = await offline.create_canned_response("We are open 9 to 5.")
    await agent.create_guideline(
        "the customer asks when the shop is open", "give the hours", canned_responses=[hours]
    )
    session = await offline.create_session(agent)
    reply = await offline.send(session, "When is the shop open?")
    assert reply.data["message"] == "We are open 9 to 5."
    assert await _labels(offline, session) == []
    trace = await _trace(offline, reply)
    assert (trace.session_labels, trace.session_labels_added) == ([], [])
