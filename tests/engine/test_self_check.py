"""The self-check: rules about the agent's own reply are checked against the draft (not before
it), and a draft that breaks a rule is revised once; the trace keeps both versions."""

from __future__ import annotations

import pytest_asyncio
from pydantic import BaseModel

import tactful
from tactful.domain import Guideline, Trace
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import MatchAnswer, answer_listed
from tactful.engine.self_check import DraftCheck, Revision, RuleCheck, about_reply
from tactful.errors import ModelError
from tactful.llm.scripted import ScriptedCall, ScriptedGenerator

PROMISE = "the agent is about to promise a delivery date"
ESTIMATE = "say the date is an estimate, not a guarantee"
TRACK = "the customer asks when an order arrives"


class Model:
    def __init__(self) -> None:
        self.verdict: DraftCheck | Exception = DraftCheck()
        self.generator = ScriptedGenerator(
            {"match": self.match, "compose": self.compose, "self_check": self.check}
        )

    def match(self, call: ScriptedCall) -> MatchAnswer:
        return answer_listed(call.prompt.user, lambda g: "yes" if g.condition == TRACK else None)

    def compose(self, call: ScriptedCall) -> ReplyAnswer:
        return ReplyAnswer(message="It arrives on Friday.")

    def check(self, call: ScriptedCall) -> BaseModel | Exception:
        if call.schema is Revision:
            return Revision(message="It should arrive on Friday (an estimate, not a guarantee).")
        return self.verdict


@pytest_asyncio.fixture
async def model() -> Model:
    return Model()


async def _shop(server: tactful.Server) -> tuple[tactful.Agent, Guideline]:
    agent = await server.create_agent("Shop")
    await agent.create_guideline(TRACK, "give the delivery date")
    rule = await agent.create_guideline(PROMISE, ESTIMATE)
    return agent, rule


async def _send(server: tactful.Server, agent: tactful.Agent) -> tuple[tactful.Event, Trace]:
    session = await server.create_session(agent)
    reply = await server.send(session, "when does my order arrive?")
    return reply, await server.runtime.store.get(Trace, reply.trace_id)


def test_conditions_about_the_reply_are_recognised_or_declared() -> None:
    assert about_reply(Guideline(condition=PROMISE))
    assert about_reply(Guideline(condition="the reply mentions a competitor"))
    assert not about_reply(Guideline(condition=TRACK))
    assert about_reply(Guideline(condition="a date is promised", about_reply=True))
    assert not about_reply(Guideline(condition=PROMISE, about_reply=False))


async def test_a_draft_that_breaks_a_rule_is_revised_once(
    server: tactful.Server, model: Model
) -> None:
    agent, rule = await _shop(server)
    model.verdict = DraftCheck(rules=[RuleCheck(rule=1, applies=True, follows=False)])
    reply, trace = await _send(server, agent)
    assert reply.data["message"] == "It should arrive on Friday (an estimate, not a guarantee)."
    record = trace.composition.self_check
    assert record is not None and record.draft == "It arrives on Friday."
    assert record.revised == reply.data["message"]
    assert record.because == [rule.id]
    assert rule.id in reply.data["guidelines"]
    # The rule was not matched before the draft: it is not a matching candidate.
    assert rule.id not in {c.guideline_id for c in trace.candidates}
    [check] = model.generator.calls_for("self_check")[:1]
    assert "DRAFT (the agent's reply, not sent yet):\nIt arrives on Friday." in check.prompt.user
    assert f"1. When {PROMISE}, then {ESTIMATE}" in check.prompt.user
    assert [c.schema for c in model.generator.calls_for("self_check")] == [DraftCheck, Revision]


async def test_a_draft_that_breaks_a_followed_guideline_is_revised(
    server: tactful.Server, model: Model
) -> None:
    agent, _ = await _shop(server)
    model.verdict = DraftCheck(broken=[1])
    reply, trace = await _send(server, agent)
    assert reply.data["message"].startswith("It should arrive")
    track = next(g for g in await agent.guidelines() if g.condition == TRACK)
    assert trace.composition.self_check is not None
    assert trace.composition.self_check.broken == [track.id]


async def test_a_draft_that_passes_goes_out_as_written(
    server: tactful.Server, model: Model
) -> None:
    agent, _ = await _shop(server)
    model.verdict = DraftCheck(rules=[RuleCheck(rule=1, applies=False, follows=False)])
    reply, trace = await _send(server, agent)
    assert reply.data["message"] == "It arrives on Friday."
    assert trace.composition.self_check is not None
    assert trace.composition.self_check.revised is None
    assert len(model.generator.calls_for("self_check")) == 1


async def test_a_failed_check_sends_the_draft_and_says_so(
    server: tactful.Server, model: Model
) -> None:
    agent, _ = await _shop(server)
    model.verdict = ModelError("provider down")
    reply, trace = await _send(server, agent)
    assert reply.data["message"] == "It arrives on Friday."
    assert trace.composition.self_check is not None
    assert "provider down" in (trace.composition.self_check.failed or "")


async def test_no_check_without_rules_about_the_reply(server: tactful.Server, model: Model) -> None:
    agent = await server.create_agent("Shop")
    await agent.create_guideline(TRACK, "give the delivery date")
    reply, trace = await _send(server, agent)
    assert reply.data["message"] == "It arrives on Friday."
    assert trace.composition.self_check is None
    assert model.generator.calls_for("self_check") == []
