"""Streamed replies: one message event that grows as the model writes, then completes."""

from __future__ import annotations

import pytest_asyncio

import tactful
from tactful.domain import EventKind, EventSource, JourneyProgress, StreamedReply, Trace
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import JourneyCheck, answer_listed
from tactful.errors import ModelError
from tactful.llm.scripted import ScriptedGenerator

TEXT = "Refunds take five business days."


@pytest_asyncio.fixture
async def model() -> ScriptedGenerator:
    return ScriptedGenerator(
        {
            "match": lambda c: answer_listed(
                c.prompt.user,
                lambda g: "yes",
                journeys=lambda j: JourneyCheck(
                    journey=j.number, status="following", evidence="x", step=1
                ),
            ),
            "compose": lambda c: ReplyAnswer(message=TEXT),
        }
    )


async def _agent(server: tactful.Server, **settings: object) -> tactful.Agent:
    return await server.create_agent(
        "Shop", message_output_mode=tactful.MessageOutputMode.STREAM, **settings
    )


async def test_a_fluid_reply_streams_into_one_growing_message_event(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await _agent(server)
    await agent.create_guideline("the customer asks about refunds", "explain refund timing")
    session = await server.create_session(agent)
    seen: list[list[str | None]] = []
    store = server.runtime.store
    original = store.update_event_data

    async def spy(session_id: str, event_id: str, data: object) -> tactful.Event:
        assert isinstance(data, dict)
        seen.append(list(data["chunks"]))
        return await original(session_id, event_id, data)

    store.update_event_data = spy  # type: ignore[method-assign]
    reply = await server.send(session, "when is my refund?")
    messages = await store.list_events(
        session.id, kinds=[EventKind.MESSAGE], source=EventSource.AI_AGENT
    )
    assert messages == [reply]  # one event, updated in place
    assert reply.data["message"] == TEXT
    assert reply.data["chunks"] == ["Refunds ", "take ", "five ", "business ", "days.", None]
    # It grew piece by piece before it was completed.
    assert seen[0] == ["Refunds ", "take "]
    assert seen[-1][-1] is None
    assert len(seen) == 5
    [compose] = model.calls_for("compose")
    assert "plain text" in compose.prompt.system and "JSON" not in compose.prompt.system
    trace = await store.get(Trace, reply.trace_id)
    assert trace.composition.streamed == StreamedReply(chunks=5, ok=True)


async def test_journey_progress_is_saved_with_the_completed_stream(
    server: tactful.Server,
) -> None:
    agent = await _agent(server)
    journey = await agent.create_journey("Refund", conditions=["the customer wants a refund"])
    await journey.initial_state.transition_to(chat_state="Ask for the order number")
    session = await server.create_session(agent)
    await server.send(session, "I want a refund")
    progress = await server.runtime.store.get(JourneyProgress, session.id)
    assert journey.id in progress.runs


async def test_a_stream_that_fails_midway_is_completed_with_the_degraded_reply(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await _agent(server, no_match_reply="Let me get a person.")
    session = await server.create_session(agent)

    async def broken(prompt: object, *, stage: str, on_text: object) -> object:
        assert callable(on_text)
        await on_text("Refunds ")
        raise ModelError("connection lost")

    model.stream = broken  # type: ignore[method-assign,assignment]
    reply = await server.send(session, "refund?")
    assert reply.data["message"] == "Let me get a person."
    assert reply.data["chunks"] == ["Let me get a person.", None]
    trace = await server.runtime.store.get(Trace, reply.trace_id)
    assert trace.composition.streamed == StreamedReply(chunks=1, ok=False)
    assert "connection lost" in (trace.composition.degraded or "")


async def test_no_streaming_when_the_agent_blocks_or_a_rule_must_review_the_draft(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    blocking = await server.create_agent("Blocking")
    reviewed = await _agent(server)
    await reviewed.create_guideline("the agent is about to promise a date", "say it is an estimate")
    for agent in (blocking, reviewed):
        session = await server.create_session(agent)
        reply = await server.send(session, "hello")
        assert "chunks" not in reply.data
    assert all(c.schema is ReplyAnswer for c in model.calls_for("compose"))
