"""Stage hooks through whole turns: order, views, bails (silent and handed off), on_error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio

import tactful
from tactful.domain import EventKind, EventSource, Session, SessionMode, Trace, TraceStatus
from tactful.engine.compose import ReplyAnswer
from tactful.engine.hooks import STAGES
from tactful.engine.match import ListedGuideline, MatchAnswer, answer_listed
from tactful.llm.scripted import ScriptedCall, ScriptedGenerator


def refund_matcher(call: ScriptedCall) -> MatchAnswer:
    """The refund guideline applies when the latest customer message says "refund"."""
    head = call.prompt.user.split("DETAILED CHECKS:")[0].strip().splitlines()
    said = next(line for line in reversed(head) if line.startswith("customer:"))

    def decide(g: ListedGuideline) -> str | None:
        return "asks for a refund" if "refund" in g.condition and "refund" in said else None

    return answer_listed(call.prompt.user, decide)


@pytest_asyncio.fixture
async def model() -> ScriptedGenerator:
    return ScriptedGenerator(
        {"match": refund_matcher, "compose": lambda c: ReplyAnswer(message="ok")}
    )


async def _setup(server: tactful.Server) -> tuple[tactful.Agent, tactful.Guideline, Session]:
    agent = await server.create_agent("A")
    refund = await agent.create_guideline("the customer wants a refund", "explain refunds")
    customer = await server.create_customer("Ann")
    session = await server.create_session(agent, customer)
    return agent, refund, session


async def _turn(server: tactful.Server, session: Session, text: str) -> dict[str, Any]:
    """Post ``text`` and wait for its turn: its trace, statuses and the agent's messages."""
    engine, store = server.runtime.engine, server.runtime.store
    posted = await engine.post_customer_message(session.id, text)
    await engine.wait_idle(session.id)
    events = await store.list_events(session.id, min_offset=posted.offset, trace_id=posted.trace_id)
    return {
        "trace": await store.get(Trace, posted.trace_id),
        "statuses": [e.data for e in events if e.kind is EventKind.STATUS],
        "replies": [
            e.data["message"]
            for e in events
            if e.kind is EventKind.MESSAGE and e.source is EventSource.AI_AGENT
        ],
        "session": await store.get(Session, session.id),
    }


async def test_hooks_run_around_each_stage_in_order_and_see_what_it_produced(
    server: tactful.Server,
) -> None:
    agent, refund, session = await _setup(server)
    seen: list[tuple[str, str]] = []
    views: dict[tuple[str, str], tactful.TurnView] = {}

    def record(view: tactful.TurnView) -> None:
        seen.append((view.when, view.stage))
        views[(view.when, view.stage)] = view

    async def second(view: tactful.TurnView) -> None:
        seen.append(("second", view.stage))

    for stage in STAGES:
        if stage != "context":
            agent.before(stage, record)
        agent.after(stage, record)
    agent.before("match", second)  # after ``record``: registration order
    agent.before("match", record)  # registered once however often

    out = await _turn(server, session, "I want a refund")
    assert out["replies"] == ["ok"]
    expected = [("after", "context")]
    for stage in STAGES[1:]:
        expected += [("before", stage)] + ([("second", stage)] if stage == "match" else [])
        expected += [("after", stage)]
    assert seen == expected
    # Each view shows the turn so far.
    assert views[("after", "context")].latest_message == "I want a refund"
    assert views[("before", "resolve")].guidelines == ()
    assert [g.id for g in views[("after", "resolve")].guidelines] == [refund.id]
    assert [g.id for g in views[("after", "act")].guidelines] == [refund.id]
    assert views[("before", "compose")].draft is None
    assert views[("after", "compose")].draft == "ok"
    assert views[("before", "emit")].message is None
    message = views[("after", "emit")].message
    assert message is not None and message.data["message"] == "ok"
    assert views[("after", "emit")].trace_id == out["trace"].id
    trace: Trace = out["trace"]
    assert trace.bailed is None and trace.composition.hook_errors == []
    assert "hooks before match" in trace.stage_timings_ms
    assert out["statuses"][-1] == {"status": "ready", "data": {}}


async def test_a_silent_bail_skips_the_rest_of_the_turn(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent, _, session = await _setup(server)
    ran: list[str] = []

    def stop(view: tactful.TurnView) -> tactful.Bail:
        return tactful.Bail(reason="the BFF answers this one")

    agent.before("compose", stop)
    agent.before("compose", lambda v: ran.append("next before compose"))
    agent.after("compose", lambda v: ran.append("after compose"))

    out = await _turn(server, session, "I want a refund")
    assert out["replies"] == [] and ran == []
    assert model.calls_for("compose") == []
    trace: Trace = out["trace"]
    assert trace.status is TraceStatus.DONE
    assert trace.bailed is not None
    assert trace.bailed.model_dump() == {
        "hook": stop.__qualname__,
        "stage": "compose",
        "when": "before",
        "reason": "the BFF answers this one",
        "hand_off": False,
    }
    assert "compose" not in trace.stage_timings_ms
    assert out["statuses"][-1] == {
        "status": "ready",
        "data": {"bailed": trace.bailed.model_dump(mode="json")},
    }
    assert out["session"].mode is SessionMode.AUTO


async def test_a_bail_may_hand_the_session_to_a_person(server: tactful.Server) -> None:
    agent, refund, session = await _setup(server)

    @agent.on_message
    def sent(ctx: tactful.MatchContext, event: tactful.Event) -> None:
        raise AssertionError("no message goes out")

    async def escalate(view: tactful.TurnView) -> tactful.Bail | None:
        if any(g.id == refund.id for g in view.guidelines):
            return tactful.Bail(reason="refunds go to the billing team", hand_off=True)
        return None

    agent.after("resolve", escalate)
    out = await _turn(server, session, "I want a refund")
    assert out["replies"] == []
    assert out["session"].mode is SessionMode.MANUAL
    assert out["session"].handoff.reason == "refunds go to the billing team"
    trace: Trace = out["trace"]
    assert trace.bailed is not None and trace.bailed.hand_off and trace.bailed.when == "after"
    assert trace.composition.handoff == f"hook {escalate.__qualname__}"
    assert trace.composition.handoff_reason == "refunds go to the billing team"
    assert out["statuses"][-1]["data"]["bailed"]["stage"] == "resolve"
    events = await server.runtime.store.list_events(session.id, kinds=[EventKind.CUSTOM])
    assert events[-1].data["reason"] == "refunds go to the billing team"


async def test_a_bail_after_emit_keeps_the_reply_and_hands_off(server: tactful.Server) -> None:
    agent, _, session = await _setup(server)
    agent.after("emit", lambda v: tactful.Bail(reason="follow up by phone", hand_off=True))
    out = await _turn(server, session, "I want a refund")
    assert out["replies"] == ["ok"]
    assert out["session"].mode is SessionMode.MANUAL
    assert out["trace"].message_event_id is not None
    assert out["statuses"][-1]["data"]["bailed"]["stage"] == "emit"


async def test_failing_slow_and_odd_hooks_never_break_the_turn(server: tactful.Server) -> None:
    agent, _, session = await _setup(server)
    server.runtime.engine.hooks.timeout = 0.05
    ran: list[str] = []

    def boom(view: tactful.TurnView) -> None:
        raise RuntimeError("the BFF is down")

    async def slow(view: tactful.TurnView) -> None:
        await asyncio.sleep(30)

    def odd(view: tactful.TurnView) -> bool:
        return True

    agent.before("match", boom)
    agent.before("match", slow)
    agent.before("match", odd)  # type: ignore[arg-type]
    agent.before("match", lambda v: ran.append(v.stage))
    out = await _turn(server, session, "I want a refund")
    assert out["replies"] == ["ok"] and ran == ["match"]
    errors = out["trace"].composition.hook_errors
    assert len(errors) == 3
    assert "RuntimeError: the BFF is down" in errors[0]
    assert "timed out after 0.05s" in errors[1]
    assert "returned True, not None or a Bail" in errors[2]
    assert out["trace"].bailed is None


async def test_on_error_sees_what_a_stage_raised_and_the_turn_fails_as_before(
    server: tactful.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, _, session = await _setup(server)
    errors: list[tuple[str, str]] = []

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("template store unreachable")

    monkeypatch.setattr(server.runtime.engine.pipeline.composer, "compose", broken)

    @agent.on_error
    def failed(view: tactful.TurnView) -> tactful.Bail:
        errors.append((view.stage, str(view.error)))
        return tactful.Bail(reason="ignored: the turn fails anyway")

    agent.after("compose", lambda v: errors.append(("after", "compose")))
    out = await _turn(server, session, "I want a refund")
    assert errors == [("compose", "template store unreachable")]
    trace: Trace = out["trace"]
    assert trace.status is TraceStatus.ERROR and trace.bailed is None
    assert [s["status"] for s in out["statuses"]][-2:] == ["error", "ready"]
    assert out["replies"] == []


async def test_stage_hooks_are_per_agent_and_checked_when_registered(
    server: tactful.Server,
) -> None:
    agent, _, session = await _setup(server)
    other = await server.create_agent("B")
    other.before("compose", lambda v: tactful.Bail(reason="not this agent's"))
    out = await _turn(server, session, "I want a refund")
    assert out["replies"] == ["ok"]
    with pytest.raises(tactful.ValidationError, match="after\\('context'\\)"):
        agent.before("context", lambda v: None)
    with pytest.raises(tactful.ValidationError, match="unknown stage 'tools'"):
        agent.after("tools", lambda v: None)
