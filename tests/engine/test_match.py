"""The model matcher: two tiers in one wave, bounded batches, re-application, failing closed."""

from __future__ import annotations

from typing import Any

from tactful.domain import Agent, Criticality, Customer, Guideline, MatchVerdict, Session, Trace
from tactful.engine.context import TurnContext, Utterance
from tactful.engine.match import (
    GuidelineCheck,
    ListedGuideline,
    MatchAnswer,
    ModelMatcher,
    OfflineMatcher,
    _conversation,
    answer_listed,
    prompt_head,
)
from tactful.engine.match_batches import MatchBatch
from tactful.engine.retrieve import Ranked
from tactful.engine.trace import TraceRecorder
from tactful.errors import ModelError
from tactful.llm.scripted import ScriptedCall, ScriptedGenerator


def ranked(n: int, *, words: int = 8, **extra: Any) -> list[Ranked]:
    return [
        Ranked(
            Guideline(id=f"g{i}", condition=f"condition {i} " + "word " * words, **extra),
            score=1 - i / 1000,
        )
        for i in range(n)
    ]


def context(*messages: str) -> TurnContext:
    agent = Agent(name="Support")
    return TurnContext(
        agent=agent,
        session=Session(agent_id=agent.id, customer_id="c"),
        customer=Customer(id="c", name="Ann", metadata={"tier": "premium"}),
        messages=[
            Utterance(role="customer" if i % 2 == 0 else "agent", text=m, offset=i)
            for i, m in enumerate(messages)
        ],
        guidelines=[],
        canned_responses=[],
        terms=[],
    )


def answer_with(applies: set[str], *, reapply: bool | None = None) -> Any:
    """Applies the guidelines whose condition starts with one of ``applies``."""

    def respond(call: ScriptedCall) -> MatchAnswer:
        def decide(g: ListedGuideline) -> str | None:
            return "quoted" if any(g.condition.startswith(a + " ") for a in applies) else None

        return answer_listed(call.prompt.user, decide, reapply=reapply)

    return respond


def recorder() -> TraceRecorder:
    return TraceRecorder(Trace(session_id="s", agent_id="a"))


async def test_detailed_and_screened_verdicts_come_from_one_wave() -> None:
    model = ScriptedGenerator({"match": answer_with({"condition 1", "condition 25"})})
    matcher = ModelMatcher(model)
    items = ranked(30)
    outcome = await matcher.match(context("hello"), items[:10], items[10:], recorder())
    applied = {v.guideline_id: v for v in outcome.verdicts if v.applies}
    assert set(applied) == {"g1", "g25"}
    assert applied["g1"].tier == 1 and applied["g25"].tier == 2
    assert applied["g1"].evidence == "quoted" and applied["g1"].condition_restated
    # A verdict for every detailed check; a screened guideline only when it was flagged (the
    # other 19 are in the trace's candidates, not in its verdicts).
    assert len(outcome.verdicts) == 11 and outcome.failures == []
    assert {v.guideline_id for v in outcome.verdicts} == {f"g{i}" for i in range(10)} | {"g25"}
    assert len(model.calls) == 1


async def test_prompt_is_compact_for_screened_guidelines() -> None:
    model = ScriptedGenerator({"match": answer_with(set())})
    matcher = ModelMatcher(model)
    items = ranked(200, words=10)
    await matcher.match(context("hello"), items[:10], items[10:], recorder())
    tokens = sum(c.usage.prompt_tokens for c in model.calls)
    fewer = ScriptedGenerator({"match": answer_with(set())})
    await ModelMatcher(fewer).match(context("hello"), items[:10], items[10:100], recorder())
    per_screened = (tokens - sum(c.usage.prompt_tokens for c in fewer.calls)) / 100
    assert per_screened <= 20, per_screened  # a 12-word condition, its number and a line


async def test_batches_share_the_cacheable_prefix() -> None:
    model = ScriptedGenerator({"match": answer_with(set())})
    matcher = ModelMatcher(model, batch_tokens=200)
    items = ranked(60)
    await matcher.match(context("hi", "hello!", "my order"), items[:20], items[20:], recorder())
    prompts = [c.prompt for c in model.calls]
    assert len(prompts) == 3
    assert len({p.system for p in prompts}) == 1
    heads = {p.user.split("DETAILED CHECKS:")[0] for p in prompts}
    assert len(heads) == 1 and "customer: my order" in heads.pop()
    assert [c.usage.cached_tokens > 0 for c in model.calls][1:] == [True, True]


async def test_applied_before_needs_reapply() -> None:
    items = ranked(3)
    ctx = context("again?")
    once = ScriptedGenerator({"match": answer_with({"condition 0"}, reapply=False)})
    outcome = await ModelMatcher(once).match(ctx, items, [], recorder(), applied_before={"g0"})
    v = outcome.verdicts[0]
    assert (v.applies, v.applied_before, v.reapply) == (False, True, False)
    assert "not to be repeated" in v.rationale
    assert "applied earlier" in once.calls[0].prompt.user

    again = ScriptedGenerator({"match": answer_with({"condition 0"}, reapply=True)})
    outcome = await ModelMatcher(again).match(ctx, items, [], recorder(), applied_before={"g0"})
    assert (outcome.verdicts[0].applies, outcome.verdicts[0].reapply) == (True, True)


async def test_high_criticality_is_marked_for_careful_checking() -> None:
    model = ScriptedGenerator({"match": answer_with(set())})
    items = ranked(1, criticality=Criticality.HIGH)
    await ModelMatcher(model).match(context("x"), items, [], recorder())
    assert "high criticality" in model.calls[0].prompt.user


async def test_a_failed_batch_fails_closed_and_others_still_count() -> None:
    calls = {"n": 0}
    good = answer_with({"condition 0", "condition 1", "condition 2"})

    def flaky(call: ScriptedCall) -> Any:
        calls["n"] += 1
        return ModelError("invalid JSON twice") if calls["n"] == 2 else good(call)

    model = ScriptedGenerator({"match": flaky})
    items = ranked(40)
    rec = recorder()
    outcome = await ModelMatcher(model, batch_tokens=200).match(
        context("x"), items[:6], items[6:], rec
    )
    assert outcome.failures == ["batch 2 failed closed: invalid JSON twice"]
    closed = [v for v in outcome.verdicts if "failed closed" in v.rationale]
    assert closed and not any(v.applies for v in closed)
    assert {v.guideline_id for v in outcome.verdicts if v.applies} <= {"g0", "g1", "g2"}
    # Every detailed check has a verdict; so does everything in the batch that failed closed.
    assert {f"g{i}" for i in range(6)} <= {v.guideline_id for v in outcome.verdicts}
    assert len(closed) > 6 and len({v.guideline_id for v in outcome.verdicts}) < 40
    assert [c.ok for c in rec.trace.model_calls] == [True, False, True]


async def test_missing_verdict_is_not_a_match() -> None:
    model = ScriptedGenerator({"match": lambda c: MatchAnswer(checks=[], flagged=[])})
    outcome = await ModelMatcher(model).match(context("x"), ranked(2), [], recorder())
    assert [(v.applies, v.rationale) for v in outcome.verdicts] == [
        (False, "no verdict given"),
        (False, "no verdict given"),
    ]


def test_offline_observations_take_no_slot() -> None:
    obs = [Ranked(Guideline(id=f"o{i}", condition=f"o{i}"), 0.9, 0.9) for i in range(3)]
    acts = [
        Ranked(Guideline(id=f"a{i}", condition=f"a{i}", action="x"), 0.85, 0.85) for i in range(5)
    ]
    verdicts = OfflineMatcher(0.4, max_matches=2).match([*obs, *acts])
    assert {v.guideline_id for v in verdicts if v.applies} == {"o0", "o1", "o2", "a0", "a1"}


async def test_history_is_a_window_plus_what_earlier_replies_did() -> None:
    messages = []
    for i in range(12):
        messages += [f"question {i}", f"answer {i}"]
    ctx = context(*messages, "latest question")
    ctx.guidelines = [
        Guideline(id="old", condition="c", action="asked for the order number"),
        Guideline(id="new", condition="c", action="quoted the shipping price"),
    ]
    # One entry per agent reply: the first reply applied "old", the last one "new".
    ctx.applied_history = [["old"]] + [[] for _ in range(10)] + [["new"]]
    model = ScriptedGenerator({"match": answer_with(set())})
    await ModelMatcher(model).match(ctx, ranked(1), [], recorder())
    user = model.calls[0].prompt.user
    assert "question 0" not in user and "latest question" in user
    assert "customer: question 8" in user and "question 7" not in user  # the last 10
    assert "the agent already did:\n- asked for the order number" in user
    assert "- quoted the shipping price" not in user  # that reply is inside the window


async def test_tool_arguments_ride_in_the_matching_wave() -> None:
    from tactful.domain import ToolSpec
    from tactful.engine.match import GuidelineCheck, ProposedArgument, ProposedCall

    spec = ToolSpec(
        service_name="shop",
        name="refund",
        description="Refund an order",
        parameters={
            "type": "object",
            "properties": {
                "order_id": {"type": "string", "description": "VM + 8 digits"},
                "customer_id": {"type": "string", "x-tactful-hidden": True},
            },
        },
        required=["order_id", "customer_id"],
    )
    g = Guideline(id="g", condition="wants a refund", action="x", tools=["shop:refund"])
    proposal = ProposedCall(
        tool="refund",
        arguments=[ProposedArgument(name="order_id", value="VM12345678", source="customer")],
    )
    model = ScriptedGenerator(
        {
            "match": lambda c: MatchAnswer(
                checks=[
                    GuidelineCheck(
                        guideline=1,
                        condition_restated="wants a refund",
                        evidence="refund VM12345678",
                        applies=True,
                        tool_calls=[proposal],
                    )
                ]
            )
        }
    )
    outcome = await ModelMatcher(model).match(
        context("refund VM12345678"), [Ranked(g, 1.0)], [], recorder(), tools={"shop:refund": spec}
    )
    user = model.calls[0].prompt.user
    assert "tools: refund(order_id: string, required - VM + 8 digits): Refund an order" in user
    assert "customer_id" not in user  # hidden: filled from context by the engine
    assert len(model.calls) == 1  # no separate wave for the arguments
    assert [c.model_dump() for c in outcome.verdicts[0].tool_calls] == [proposal.model_dump()]


# --- equivalence with the prompt and verdicts as they were built before ----------------------


def _user_as_before(ctx: TurnContext, batch: MatchBatch, applied_before: set[str]) -> str:
    """The user part of a batch's prompt as ``ModelMatcher.prompt`` wrote it before the shared
    head was worked out once per turn (no tools, notes or journeys)."""
    detailed_lines, screen_lines, n = [], [], 0
    for r in batch.detailed:
        n += 1
        marks = []
        if r.guideline.id in applied_before:
            marks.append("applied earlier")
        if r.guideline.criticality is Criticality.HIGH:
            marks.append("high criticality: require explicit evidence")
        mark = f" [{'; '.join(marks)}]" if marks else ""
        detailed_lines.append(f"{n}.{mark} {r.guideline.condition}")
    for r in batch.screened:
        n += 1
        screen_lines.append(f"{n}. {r.guideline.condition}")
    profile = ", ".join(f"{k}: {v}" for k, v in ctx.customer.metadata.items())
    return (
        f"Agent: {ctx.agent.name}. {ctx.agent.description or ''}\n"
        f"Customer: {ctx.customer.name}{f' ({profile})' if profile else ''}\n\n"
        f"Conversation (latest last):\n{_conversation(ctx)}\n\n"
        f"DETAILED CHECKS:\n{chr(10).join(detailed_lines) or '(none)'}\n\n"
        f"SCREEN:\n{chr(10).join(screen_lines) or '(none)'}"
    )


def _verdicts_as_before(
    matcher: ModelMatcher,
    batch: MatchBatch,
    numbers: dict[int, Ranked],
    answer: MatchAnswer,
    applied_before: set[str],
) -> list[MatchVerdict]:
    """The verdicts of one answered batch as ``ModelMatcher.match`` gathered them before:
    every listed number in turn."""
    by_number = {c.guideline: c for c in answer.checks}
    flagged = {c.guideline: c for c in answer.flagged}
    verdicts = []
    for n, r in numbers.items():
        in_detail = n <= len(batch.detailed)
        check = by_number.get(n) if in_detail else flagged.get(n)
        if in_detail and check is None:
            check = flagged.get(n)
        if check is None and not in_detail:
            continue
        verdicts.append(
            matcher._verdict(
                r,
                check,
                tier=1 if in_detail else 2,
                applied_before=applied_before,
                missing="no verdict given",
            )
        )
    return verdicts


def _check(n: int, applies: bool = True, reapply: bool | None = None) -> GuidelineCheck:
    return GuidelineCheck(
        guideline=n,
        condition_restated=f"restated {n}",
        evidence=f"evidence {n}",
        applies=applies,
        reapply=reapply,
    )


def test_prompts_and_verdicts_are_as_they_were_built_before() -> None:
    matcher = ModelMatcher(ScriptedGenerator({}), batch_tokens=150)
    items = ranked(40) + ranked(5, criticality=Criticality.HIGH)
    ctx = context("hi", "hello! how can I help?", "my order is late", "sorry", "where is it")
    ctx.applied_history = [["g1"], ["g3"]]
    ctx.guidelines = [r.guideline for r in items]
    applied_before = {"g2", "g3", "g41"}
    batches = matcher.plan(items[:12] + items[40:], items[12:40])
    assert len(batches) == 3
    # Checks out of order and repeated, detailed guidelines answered under "flagged", screened
    # ones flagged out of order, numbers that were never listed.
    answer = MatchAnswer(
        checks=[_check(3), _check(1, False), _check(2, True, False), _check(2, True, True)],
        flagged=[_check(9), _check(30), _check(6), _check(7, False), _check(99), _check(0)],
    )
    for batch in batches:
        prompt, numbers = matcher.prompt(ctx, batch, applied_before)
        assert prompt.user == _user_as_before(ctx, batch, applied_before)
        head = prompt_head(ctx)
        assert matcher.prompt(ctx, batch, applied_before, head=head) == (prompt, numbers)
        assert list(numbers.values()) == [*batch.detailed, *batch.screened]
        expected = _verdicts_as_before(matcher, batch, numbers, answer, applied_before)
        got = matcher._answered(batch, numbers, answer, applied_before)
        assert [v.model_dump() for v in got] == [v.model_dump() for v in expected]
        assert any(v.tier == 2 for v in got)
