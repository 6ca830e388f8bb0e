"""Relationships, code matchers, hooks and re-application, through whole turns."""

from __future__ import annotations

from typing import Any

import pytest_asyncio

import tactful
from tactful.domain import Trace
from tactful.engine.compose import ReplyAnswer
from tactful.engine.hooks import MatchContext
from tactful.engine.match import ListedGuideline, MatchAnswer, answer_listed, listed_guidelines
from tactful.llm.scripted import ScriptedCall, ScriptedGenerator


def latest_customer_message(call: ScriptedCall) -> str:
    head = call.prompt.user.split("DETAILED CHECKS:")[0].strip().splitlines()
    return next(line for line in reversed(head) if line.startswith("customer:"))


def keyword_matcher(reapply: bool = False) -> Any:
    """A guideline applies when the last word of its condition is in the latest message."""

    def answer(call: ScriptedCall) -> MatchAnswer:
        said = latest_customer_message(call).lower()

        def decide(g: ListedGuideline) -> str | None:
            key = g.condition.split()[-1].lower()
            return f"mentions {key}" if key in said else None

        return answer_listed(call.prompt.user, decide, reapply=reapply)

    return answer


@pytest_asyncio.fixture
async def model() -> ScriptedGenerator:
    return ScriptedGenerator(
        {"match": keyword_matcher(), "compose": lambda c: ReplyAnswer(message="ok")}
    )


async def _trace(server: tactful.Server, reply: tactful.Event) -> Trace:
    return await server.runtime.store.get(Trace, reply.trace_id)


async def test_priority_keeps_one_of_two_matches_and_traces_why(server: tactful.Server) -> None:
    agent = await server.create_agent("A")
    refund = await agent.create_guideline("customer mentions refund", "explain refunds", id="r")
    fraud = await agent.create_guideline("customer mentions chargeback", "escalate", id="f")
    await agent.prioritize(fraud, over=refund)
    session = await server.create_session(agent)
    reply = await server.send(session, "refund or a chargeback?")
    trace = await _trace(server, reply)
    assert sorted(m.guideline_id for m in trace.matches if m.applies) == ["f", "r"]
    assert trace.final_guideline_ids == ["f"]
    assert reply.data["guidelines"] == ["f"]
    step = next(s for s in trace.resolution if s.guideline_id == "r")
    assert (step.rule, step.effect, step.because) == ("priority", "removed", ["f"])


async def test_entailment_and_always_marker_add_guidelines(server: tactful.Server) -> None:
    agent = await server.create_agent("A")
    upset = await agent.create_guideline("customer mentions broken", "apologize", id="u")
    offer = await agent.create_guideline("the agent should offer help", "offer a fix", id="o")
    await agent.entail(upset, offer)
    brand = await agent.create_guideline("in every reply", "be warm", id="b")
    await agent.match_always(brand)
    model_calls_before = len(server.runtime.engine.generator.calls)  # type: ignore[union-attr]
    session = await server.create_session(agent)
    reply = await server.send(session, "it arrived broken")
    trace = await _trace(server, reply)
    assert set(trace.final_guideline_ids) == {"u", "o", "b"}
    assert {(s.guideline_id, s.rule, s.effect) for s in trace.resolution} >= {
        ("o", "entailment", "added"),
        ("b", "always", "added"),
    }
    calls = server.runtime.engine.generator.calls[model_calls_before:]  # type: ignore[union-attr]
    assert all("in every reply" not in c.prompt.user for c in calls if c.stage == "match")


async def test_disambiguation_asks_instead_of_guessing(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await server.create_agent("A")
    vague = await agent.create_observation("customer mentions order", id="vague")
    cancel = await agent.create_guideline("customer wants to cancel an order", "cancel", id="c")
    track = await agent.create_guideline("customer wants to track an order", "track", id="t")
    await agent.disambiguate(vague, [cancel, track])
    session = await server.create_session(agent)
    reply = await server.send(session, "about my order")
    trace = await _trace(server, reply)
    assert trace.composition.method == "clarification"
    assert trace.composition.clarification is not None
    assert sorted(trace.composition.clarification.option_ids) == ["c", "t"]
    compose_prompt = model.calls_for("compose")[-1].prompt.user
    assert "ambiguous" in compose_prompt
    assert "customer wants to cancel an order" in compose_prompt
    assert {s.guideline_id for s in trace.resolution if s.effect == "clarify"} == {"c", "t"}


async def test_dependency_pulls_its_target_into_detailed_checks(server: tactful.Server) -> None:
    agent = await server.create_agent("A")
    # Enough unrelated guidelines that the observation would rank outside the top-k.
    for i in range(12):
        await agent.create_guideline(f"customer asks about gadget{i}", f"talk about gadget{i}")
    given = await agent.create_observation("the customer has given an order number", id="num")
    look = await agent.create_guideline("customer mentions status", "look up the order", id="s")
    await agent.depend(look, on=[given])
    server.runtime.engine.options.detailed_k = 1
    session = await server.create_session(agent)
    reply = await server.send(session, "what's the status")
    trace = await _trace(server, reply)
    candidate = next(c for c in trace.candidates if c.guideline_id == "num")
    assert candidate.tier == 1
    # The observation did not hold, so the dependent guideline is removed.
    assert "s" not in trace.final_guideline_ids
    assert any(s.guideline_id == "s" and s.rule.startswith("dependency") for s in trace.resolution)


async def test_code_matcher_and_hooks(server: tactful.Server, model: ScriptedGenerator) -> None:
    agent = await server.create_agent("A")
    vip = await agent.create_guideline("the customer is a VIP", "thank them for their loyalty")
    selected: list[str] = []
    sent: list[str] = []
    agent.match_with(vip, lambda ctx: ctx.customer_metadata.get("tier") == "vip")

    def remember(ctx: MatchContext, guideline: tactful.Guideline) -> None:
        selected.append(guideline.id)

    agent.on_selected(vip, remember)
    agent.on_message(lambda ctx, event: sent.append(event.data["message"]))
    customer = await server.create_customer("Ann", metadata={"tier": "vip"})
    session = await server.create_session(agent, customer)
    reply = await server.send(session, "hello")
    trace = await _trace(server, reply)
    assert trace.final_guideline_ids == [vip.id]
    assert next(m for m in trace.matches if m.guideline_id == vip.id).method == "code"
    assert all("VIP" not in c.prompt.user for c in model.calls_for("match"))
    assert selected == [vip.id] and sent == ["ok"]


async def test_a_one_shot_guideline_is_not_applied_twice(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await server.create_agent("A")
    await agent.create_guideline("customer mentions discount", "offer the 10% code", id="d")
    session = await server.create_session(agent)
    first = await server.send(session, "any discount?")
    second = await server.send(session, "and another discount?")
    assert first.data["guidelines"] == ["d"] and second.data["guidelines"] == []
    marks = [g.marks for g in listed_guidelines(model.calls_for("match")[-1].prompt.user)]
    assert ("applied earlier",) in marks
    trace = await _trace(server, second)
    verdict = next(m for m in trace.matches if m.guideline_id == "d")
    assert verdict.applied_before and verdict.reapply is False and not verdict.applies
    candidate = next(c for c in trace.candidates if c.guideline_id == "d")
    assert "recent match" in candidate.reasons

    model.on("match", keyword_matcher(reapply=True))
    third = await server.send(session, "discount again please")
    assert third.data["guidelines"] == ["d"]
