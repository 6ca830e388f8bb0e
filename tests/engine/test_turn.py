"""The turn pipeline with the scripted double: event sequence, trace, cancellation, failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio

import tactful
from tactful.domain import EventKind, EventSource, Session, SessionMode, Trace
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import ListedGuideline, MatchAnswer, answer_listed
from tactful.errors import ModelError, PayloadTooLargeError, ValidationError
from tactful.llm.scripted import HashingEmbedder, ScriptedCall, ScriptedGenerator


def applies_when(word: str, *, reapply: bool | None = None) -> Any:
    """A matcher responder: a guideline applies when its condition mentions ``word``."""

    def answer(call: ScriptedCall) -> MatchAnswer:
        def decide(g: ListedGuideline) -> str | None:
            return f"the customer talks about {word}" if word in g.condition else None

        return answer_listed(call.prompt.user, decide, reapply=reapply)

    return answer


@pytest_asyncio.fixture
async def model() -> ScriptedGenerator:
    return ScriptedGenerator(
        {
            "match": applies_when("refund"),
            "compose": lambda c: ReplyAnswer(message="Sure, refunds take 5 days."),
        }
    )


async def _agent(server: tactful.Server) -> tactful.Agent:
    agent = await server.create_agent("Support", "Answers customers of a shop")
    await agent.create_guideline("the customer asks for a refund", "explain refund timing")
    await agent.create_guideline("the customer asks about shipping costs", "quote shipping costs")
    return agent


async def test_event_sequence_offsets_and_trace(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await _agent(server)
    session = await server.create_session(agent)
    reply = await server.send(session, "I want a refund for my headphones")

    events = await server.runtime.store.list_events(session.id)
    shape = [(e.kind.value, e.source.value, (e.data or {}).get("status")) for e in events]
    assert shape == [
        ("message", "customer", None),
        ("status", "ai_agent", "acknowledged"),
        ("status", "ai_agent", "processing"),
        ("status", "ai_agent", "typing"),
        ("message", "ai_agent", None),
        ("status", "ai_agent", "ready"),
    ]
    assert [e.offset for e in events] == list(range(6))
    trace_ids = {e.trace_id for e in events[1:]}
    assert len(trace_ids) == 1 and reply.trace_id in trace_ids
    assert reply.data["message"] == "Sure, refunds take 5 days."

    trace = await server.runtime.store.get(Trace, reply.trace_id)
    assert trace.status == "done" and trace.tier == "model:scripted"
    assert {c.condition for c in trace.candidates} >= {"the customer asks for a refund"}
    matched = [m for m in trace.matches if m.applies]
    assert [m.condition for m in matched] == ["the customer asks for a refund"]
    assert matched[0].rationale == "the customer talks about refund"
    assert [c.stage for c in trace.model_calls] == ["match", "compose"]
    assert all(c.prompt_tokens > 0 and c.completion_tokens > 0 for c in trace.model_calls)
    stages = {"context", "glossary", "capabilities", "retrieve", "match", "journeys", "resolve"}
    stages |= {"tools", "compose"}
    assert set(trace.stage_timings_ms) == stages
    assert trace.final_guideline_ids == [matched[0].guideline_id]
    assert trace.message_event_id == reply.id
    # The compose prompt carried the matched guideline's action, and only that one.
    compose_prompt = model.calls_for("compose")[0].prompt.user
    assert "explain refund timing" in compose_prompt
    assert "quote shipping costs" not in compose_prompt


async def test_newer_message_cancels_a_turn_that_has_not_replied(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()
    seen: list[str] = []

    async def _never() -> None:
        await release.wait()

    def slow_first(call: ScriptedCall) -> MatchAnswer:
        seen.append(call.prompt.user)
        return applies_when("refund")(call)

    blocking = {"n": 0}
    original_generate = model.generate

    async def generate(prompt: Any, schema: Any, *, stage: str) -> Any:
        if stage == "match" and blocking["n"] == 0:
            blocking["n"] += 1
            entered.set()
            await release.wait()  # the first turn hangs in the model until cancelled
        return await original_generate(prompt, schema, stage=stage)

    model.generate = generate  # type: ignore[method-assign]
    model.on("match", slow_first)
    agent = await _agent(server)
    session = await server.create_session(agent)
    engine = server.runtime.engine
    await engine.post_customer_message(session.id, "refund please")
    await entered.wait()
    await engine.post_customer_message(session.id, "actually, a refund for two items")
    await engine.wait_idle(session.id)

    events = await server.runtime.store.list_events(session.id)
    statuses = [(e.data or {}).get("status") for e in events if e.kind is EventKind.STATUS]
    assert "cancelled" in statuses
    replies = [
        e for e in events if e.kind is EventKind.MESSAGE and e.source is EventSource.AI_AGENT
    ]
    assert len(replies) == 1
    # The surviving turn saw both customer messages.
    assert "actually, a refund for two items" in seen[-1] and "refund please" in seen[-1]
    traces = await server.runtime.store.list(Trace, session_id=session.id)
    assert sorted(t.status for t in traces) == ["cancelled", "done"]


async def test_a_failed_match_is_decided_by_the_offline_tier(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    """A model that cannot answer the checks once made every turn fail closed (nothing
    matched, so "no match" replies even where the offline tier knows better): the offline
    tier now decides the guidelines of the failed batch, and the trace says so."""
    model.on("match", lambda c: ModelError("answer does not validate after a repair retry"))
    agent = await _agent(server)
    session = await server.create_session(agent)
    reply = await server.send(session, "the customer asks for a refund")
    trace = await server.runtime.store.get(Trace, reply.trace_id)
    assert trace.composition.match_failures == [
        "batch 1 failed closed: answer does not validate after a repair retry"
    ]
    assert "offline tier decided" in (trace.composition.match_degraded or "")
    applied = {m.condition: m for m in trace.matches if m.applies}
    assert list(applied) == ["the customer asks for a refund"]
    refund = applied["the customer asks for a refund"]
    assert refund.method == "offline-similarity"
    assert refund.rationale.startswith("the model check failed")
    assert [c.ok for c in trace.model_calls if c.stage == "match"] == [False]
    assert trace.final_guideline_ids == [refund.guideline_id]


async def test_model_failure_in_composition_sends_the_no_match_reply(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    model.on("compose", lambda c: ModelError("bad gateway"))
    agent = await _agent(server)
    session = await server.create_session(agent)
    reply = await server.send(session, "refund")
    assert reply.data["message"] == agent.model.no_match_reply
    trace = await server.runtime.store.get(Trace, reply.trace_id)
    assert "bad gateway" in (trace.composition.degraded or "")


async def test_unexpected_error_emits_error_status_and_ready(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    def boom(call: ScriptedCall) -> MatchAnswer:
        raise RuntimeError("bug in a stage")

    model.on("match", boom)
    agent = await _agent(server)
    session = await server.create_session(agent)
    await server.runtime.engine.post_customer_message(session.id, "refund")
    await server.runtime.engine.wait_idle()
    events = await server.runtime.store.list_events(session.id, kinds=[EventKind.STATUS])
    assert [e.data["status"] for e in events][-2:] == ["error", "ready"]
    assert "bug in a stage" in events[-2].data["data"]["exception"]
    # The engine still serves the next message.
    model.on("match", applies_when("refund"))
    reply = await server.send(session, "refund again")
    assert reply.data["message"] == "Sure, refunds take 5 days."


async def test_manual_mode_appends_without_a_turn(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await _agent(server)
    session = await server.create_session(agent)
    session.mode = SessionMode.MANUAL
    await server.runtime.store.update(session)
    await server.runtime.engine.post_customer_message(session.id, "hello?")
    await server.runtime.engine.wait_idle()
    assert len(await server.runtime.store.list_events(session.id)) == 1
    assert model.calls == []


async def test_bad_messages_are_rejected_and_nothing_is_written(server: tactful.Server) -> None:
    agent = await _agent(server)
    session = await server.create_session(agent)
    engine = server.runtime.engine
    with pytest.raises(PayloadTooLargeError, match="limit is 8000"):
        await engine.post_customer_message(session.id, "x" * 8001)
    with pytest.raises(ValidationError, match="empty"):
        await engine.post_customer_message(session.id, "   ")
    with pytest.raises(ValidationError, match="source"):
        await engine.post_customer_message(session.id, "hi", source=EventSource.AI_AGENT)
    with pytest.raises(tactful.NotFoundError):
        await engine.post_customer_message("nope", "hi")
    assert await server.runtime.store.list_events(session.id) == []
    assert await server.runtime.store.list(Session) == [session]


async def test_strict_mode_sends_only_templates_whose_fields_exist() -> None:
    # The hashing double's similarities are lower than the real embedder's.
    settings = tactful.Settings(offline_match_threshold=0.3)
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), offline=True, settings=settings
    ) as server:
        agent = await server.create_agent(
            "Support",
            composition_mode=tactful.CompositionMode.STRICT,
            no_match_reply="Let me get a person.",
        )
        missing = await agent.create_canned_response("Your refund {{transaction_id}} is processed.")
        present = await agent.create_canned_response("{{std.customer.name}}, refunds take 5 days.")
        await agent.create_guideline(
            "the customer asks for a refund", "explain refunds", canned_responses=[missing, present]
        )
        customer = await server.create_customer("Dana")
        session = await server.create_session(agent, customer)
        reply = await server.send(session, "I want a refund")
        assert reply.data["message"] == "Dana, refunds take 5 days."
        trace = await server.runtime.store.get(Trace, reply.trace_id)
        assert [
            {"id": d.id, "missing_fields": d.missing_fields} for d in trace.composition.disqualified
        ] == [{"id": missing.id, "missing_fields": ["transaction_id"]}]
        fresh = await server.create_session(agent, customer)
        unrelated = await server.send(fresh, "what's the weather on mars")
        assert unrelated.data["message"] == "Let me get a person."


async def test_customer_message_carries_its_turns_trace_id(server: tactful.Server) -> None:
    agent = await _agent(server)
    session = await server.create_session(agent)
    reply = await server.send(session, "refund")
    same_turn = await server.runtime.store.list_events(session.id, trace_id=reply.trace_id)
    assert (same_turn[0].kind, same_turn[0].source) == (EventKind.MESSAGE, EventSource.CUSTOMER)
    assert len(same_turn) == 6


async def test_session_deleted_mid_turn_leaves_no_trace(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    release, entered = asyncio.Event(), asyncio.Event()
    original_generate = model.generate

    async def generate(prompt: Any, schema: Any, *, stage: str) -> Any:
        entered.set()
        await release.wait()
        return await original_generate(prompt, schema, stage=stage)

    model.generate = generate  # type: ignore[method-assign]
    agent = await _agent(server)
    session = await server.create_session(agent)
    await server.runtime.engine.post_customer_message(session.id, "refund")
    await entered.wait()
    assert await server.runtime.store.delete(Session, session.id)
    release.set()
    await server.runtime.engine.wait_idle()
    assert await server.runtime.store.list(Trace) == []
    assert await server.runtime.store.list_events(session.id) == []


async def test_offline_tier_answers_the_latest_message_not_the_previous_one() -> None:
    settings = tactful.Settings(offline_match_threshold=0.3)
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), offline=True, settings=settings
    ) as server:
        agent = await server.create_agent("Support", no_match_reply="Could you rephrase?")
        shipping = await agent.create_canned_response("Delivery takes 2 to 4 days.")
        await agent.create_guideline(
            "the customer asks how long delivery takes",
            "give delivery times",
            examples=["how long does delivery take"],
            canned_responses=[shipping],
        )
        session = await server.create_session(agent)
        first = await server.send(session, "how long does delivery take?")
        assert first.data["message"] == "Delivery takes 2 to 4 days."
        second = await server.send(session, "blah blorp")
        assert second.data["message"] == "Could you rephrase?"


async def test_trace_is_saved_before_ready(server: tactful.Server) -> None:
    """Or with it, in the same transaction: a client that reads the trace on ready finds it."""
    agent = await _agent(server)
    session = await server.create_session(agent)
    store = server.runtime.store
    found_at_ready: list[bool] = []
    original = store.append_events

    async def append_events(session_id: str, new: Any) -> Any:
        if any(isinstance(n.data, dict) and n.data.get("status") == "ready" for n in new):
            # Inside the transaction writing ready, if any: the trace is written, or was.
            found_at_ready.append(await store.find(Trace, new[0].trace_id) is not None)
        return await original(session_id, new)

    store.append_events = append_events  # type: ignore[method-assign]
    await server.send(session, "refund")
    assert found_at_ready == [True]
