"""Following journeys turn by turn: ``Follower.decide`` moves every journey in play, from the
matcher's answers or, offline, by ``walk.Walker``'s rules; ``Follower.after_tools`` lets a
journey at a tool state whose tools ran go on from there, with the results in view.

A journey starts when one of its conditions (observations) matched; then it may advance, stay,
skip ahead, go back, pause when interrupted, resume, switch, end, drop, enter a sub-journey or
continue in another journey. The engine checks every step the model proposes against the
graph: it never jumps to an unreachable state, never walks past a tool state without running
it, and records why in a ``JourneyStep``. How a decided step changes the runs is
``progress``; what the runs then mean for the turn's guidelines is ``projection``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from tactful.domain import (
    Guideline,
    JourneyRun,
    JourneyStep,
    MatchMethod,
    MatchVerdict,
    ProposedToolCall,
    RunStatus,
    StateKind,
    ToolSpec,
    TransitionConsidered,
)
from tactful.domain import JourneyStepKind as StepKind
from tactful.domain import JourneyStepMethod as StepMethod
from tactful.engine.context import TurnContext, Utterance
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.hooks import Hooks
from tactful.engine.journeys.graph import JourneyGraph
from tactful.engine.journeys.plan import JourneyPlan, Listed, render
from tactful.engine.journeys.progress import JourneyOutcome, apply_step, new_step, resume_parents
from tactful.engine.journeys.projection import project
from tactful.engine.journeys.walk import Walk, Walker, choice_ahead
from tactful.engine.match import JourneyCheck, Match, ModelMatcher, traced_calls
from tactful.engine.options import JOURNEY_CONDITION_THRESHOLD
from tactful.engine.tool_stage import ToolStage
from tactful.engine.tools import ToolFindings
from tactful.engine.trace import TraceRecorder


def _alternatives(
    graph: JourneyGraph, current: str, walk: Walk, wanted: int | None
) -> list[TransitionConsidered]:
    """Every transition out of the current state, the one the model's choice took marked."""
    first = walk.considered[0].transition_id if walk.considered else None
    shown = []
    for t in graph.out.get(current, []):
        taken = t.id == first
        why = f"leads to step {wanted}, the one chosen" if taken else "not on the way"
        shown.append(
            TransitionConsidered(
                transition_id=t.id, target=t.target, condition=t.condition, taken=taken, why=why
            )
        )
    return shown


class Follower:
    """Decides each journey's next step from the matcher's answers or, offline, from rules:
    transitions into a tool state hold once its arguments are given, others when their
    condition is close enough to the latest message, unconditional ones once the customer
    answered; after a tool state the closest condition to the results wins."""

    def __init__(
        self,
        cache: EmbeddingCache,
        threshold: float = JOURNEY_CONDITION_THRESHOLD,
        hooks: Hooks | None = None,
    ) -> None:
        self.hooks = hooks or Hooks()
        self.walker = Walker(cache, threshold, self.hooks)

    async def decide(
        self,
        ctx: TurnContext,
        journeys: JourneyPlan,
        verdicts: Sequence[MatchVerdict],
        answers: Mapping[int, JourneyCheck] | None,
        specs: Mapping[str, ToolSpec],
        *,
        offset: int,
    ) -> JourneyOutcome:
        """Move every journey in play. ``answers`` (by listed number) is None offline."""
        applies = {v.guideline_id for v in verdicts if v.applies}
        scoped = set(journeys.scope)
        others = any(v.applies and v.action and v.guideline_id not in scoped for v in verdicts)
        outcome = JourneyOutcome(ctx.progress.model_copy(deep=True))
        runs = outcome.progress.runs
        checks = {i.graph.id: (answers or {}).get(i.number) for i in journeys.listed}
        came: list[str] = []
        # Live journeys first: offline, a message that moved one of them on answered it, and
        # starts no other journey (an order number given for one procedure is not a request
        # for another that happens to mention order numbers).
        ordered = sorted(journeys.graphs, key=lambda j: not (runs.get(j) and runs[j].live))
        consumed = False
        # Offline, one message starts at most one journey: the one whose condition fits best.
        score = {v.guideline_id: v.score or 0.0 for v in verdicts if v.applies}
        fits = {
            jid: max((score[c] for c in g.journey.conditions if c in score), default=0.0)
            for jid, g in journeys.graphs.items()
        }
        best_new = max(
            (j for j in journeys.graphs if not (runs.get(j) and runs[j].live) and fits[j] > 0),
            key=lambda j: (fits[j], j),
            default=None,
        )
        before = {jid: id(run) for jid, run in runs.items()}
        for jid in ordered:
            graph = journeys.graphs[jid]
            run = runs.get(jid)
            if run is not None and run.status is RunStatus.WAITING:
                continue
            if run is not None and id(run) != before.get(jid):
                continue  # entered this turn by another journey's step (hand-off, sub-journey)
            held = [c for c in graph.journey.conditions if c in applies]
            check = checks.get(jid)
            if run is None or not run.live:
                if answers is None and (consumed or jid != best_new):
                    continue
                wanted = check is None or check.status == "following"
                if run is not None and answers is not None:
                    wanted = check is not None and check.status == "following"
                if not held or not wanted:
                    continue
                step, walk = await self._start(
                    ctx, graph, held, check, answers, specs, outcome.calls
                )
                runs[jid] = JourneyRun(journey_id=jid, path=[], updated_offset=offset)
                outcome.started[jid] = fits[jid]
                came.append(jid)
            elif answers is not None:
                step, walk = self._model_step(graph, run, check)
            else:
                step, walk = await self._offline_step(
                    ctx, graph, run, bool(held), others, specs, outcome.calls
                )
            if step.status_before == RunStatus.PAUSED and step.status_after == "active":
                came.append(jid)
            if step.status_before is not None and (walk.entered or walk.handoff):
                consumed = True
            apply_step(outcome, graph, runs[jid], step, walk, journeys, offset)
        for step in outcome.steps:
            if step.kind == "pause" and (to := [j for j in came if j != step.journey_id]):
                step.kind = StepKind.SWITCH
                titles = ", ".join(repr(journeys.graphs[j].journey.title) for j in to)
                step.rationale += f" (switched to {titles})"
        resume_parents(outcome, journeys, offset)
        project(ctx, journeys, outcome)
        for jid, match in outcome.projected.items():
            check = checks.get(jid)
            if check is not None and check.tool_calls and match.ranked.guideline.tools:
                match.verdict.tool_calls = traced_calls(check.tool_calls)
                match.verdict.method = MatchMethod.MODEL
            elif (state_id := match.ranked.guideline.metadata.get("state_id")) in outcome.calls:
                match.verdict.tool_calls = outcome.calls[state_id]
        return outcome

    # -- one journey ---------------------------------------------------------------------------

    async def _start(
        self,
        ctx: TurnContext,
        graph: JourneyGraph,
        held: Sequence[str],
        check: JourneyCheck | None,
        answers: Mapping[int, JourneyCheck] | None,
        specs: Mapping[str, ToolSpec],
        found: dict[str, list[ProposedToolCall]],
    ) -> tuple[JourneyStep, Walk]:
        step = new_step(
            graph,
            None,
            StepKind.START,
            StepMethod.MODEL if answers is not None else StepMethod.OFFLINE,
        )
        conditions = {g.id: g.condition for g in ctx.guidelines}
        step.rationale = "its condition holds: " + "; ".join(conditions.get(c, c) for c in held)
        wanted = check.step if check is not None else None
        target = graph.by_number(wanted)
        exit_ = graph.exits.get(wanted or 0)
        if target is not None and graph.route(graph.initial, target) is not None:
            walk = self.walker.towards(graph, graph.initial, target)
        elif exit_ is not None and graph.route(graph.initial, exit_.source) is not None:
            walk = self.walker.towards(graph, graph.initial, exit_.source, exit_=exit_)
        else:
            if wanted is not None:
                step.rationale += f"; step {wanted} cannot be reached from the start"
            walk = await self.walker.forward(
                ctx, graph, graph.initial, fresh=True, specs=specs, found=found
            )
        walk.entered.insert(0, graph.initial)
        if walk.skipped:
            step.rationale += "; skipped " + ", ".join(graph.label(s) for s in walk.skipped)
        return step, walk

    def _model_step(
        self, graph: JourneyGraph, run: JourneyRun, check: JourneyCheck | None
    ) -> tuple[JourneyStep, Walk]:
        current = run.current or graph.initial
        step = new_step(graph, run, StepKind.STAY, StepMethod.MODEL)
        walk = Walk()
        if check is None:
            step.rationale = "no decision this turn (its matching batch failed): stays"
            return step, walk
        step.rationale = check.evidence
        if check.status == "dropped":
            step.kind, step.status_after = StepKind.DROP, RunStatus.ENDED
            return step, walk
        if check.status != "following":
            if run.status is RunStatus.ACTIVE:
                step.kind, step.status_after = StepKind.PAUSE, RunStatus.PAUSED
            return step, walk
        resumed = run.status is RunStatus.PAUSED
        step.status_after = RunStatus.ACTIVE
        stay = StepKind.RESUME if resumed else StepKind.STAY
        state = graph.states.get(current)
        wanted = check.step
        target = graph.by_number(wanted) if wanted is not None else current
        exit_ = graph.exits.get(wanted or 0)
        if state is not None and state.kind is StateKind.TOOL and target != current:
            step.kind = stay
            step.rationale += " (the tool step runs first; the way on is chosen after it)"
        elif exit_ is not None and (
            exit_.source == current or graph.route(current, exit_.source) is not None
        ):
            walk = self.walker.towards(graph, current, exit_.source, exit_=exit_)
            step.kind = StepKind.SKIP if walk.skipped else StepKind.ADVANCE
        elif target is None or target == current:
            step.kind = stay
            if target is None:
                step.rationale += f" (there is no step {wanted}: stays)"
        elif graph.states[target].kind is StateKind.FORK:
            step.kind = stay
            step.rationale += f" (step {wanted} is a fork: choose one of its branches; stays)"
        elif graph.route(current, target) is not None:
            walk = self.walker.towards(graph, current, target)
            step.kind = StepKind.SKIP if walk.skipped else StepKind.ADVANCE
        elif target in run.path:
            step.kind = StepKind.BACKTRACK
            walk.entered = [target]
        else:
            step.kind = stay
            step.rationale += (
                f" (step {wanted} is neither ahead of {graph.label(current)} nor taken "
                "before: stays)"
            )
        if resumed and step.kind in ("advance", "skip", "backtrack"):
            step.rationale += " (resumed)"
        walk.considered = _alternatives(graph, current, walk, wanted) + walk.considered[1:]
        return step, walk

    async def _offline_step(
        self,
        ctx: TurnContext,
        graph: JourneyGraph,
        run: JourneyRun,
        held: bool,
        others: bool,
        specs: Mapping[str, ToolSpec],
        found: dict[str, list[ProposedToolCall]],
    ) -> tuple[JourneyStep, Walk]:
        current = run.current or graph.initial
        step = new_step(graph, run, StepKind.STAY, StepMethod.OFFLINE)
        state = graph.states.get(current)
        if state is not None and state.kind is StateKind.TOOL:
            step.status_after = RunStatus.ACTIVE
            step.kind = StepKind.RESUME if run.status is RunStatus.PAUSED else StepKind.STAY
            step.rationale = "the tool step runs (again) before the journey goes on"
            return step, Walk()
        # The latest message answers the step's question, unless it asks one itself.
        fill = "?" not in ctx.last_customer_message
        walk = await self.walker.forward(
            ctx, graph, current, fresh=False, specs=specs, found=found, fill=fill
        )
        if walk.entered or walk.handoff:
            step.status_after = RunStatus.ACTIVE
            step.kind = StepKind.SKIP if walk.skipped else StepKind.ADVANCE
            if run.status is RunStatus.PAUSED:
                step.rationale = "the customer came back to it"
            return step, walk
        # Why the step holds the journey: its question is not answered, or no way on holds.
        why = walk.unanswered or "no way on from this step"
        if run.status is RunStatus.PAUSED:
            if held:
                step.kind, step.status_after = StepKind.RESUME, RunStatus.ACTIVE
                step.rationale = "its condition holds again"
            else:
                step.rationale = "still paused: the latest message does not continue it"
                if walk.unanswered:
                    step.rationale += f" ({walk.unanswered})"
            step.considered = walk.considered
            return step, walk
        if others:
            step.kind, step.status_after = StepKind.PAUSE, RunStatus.PAUSED
            step.rationale = (
                f"{why}, and other guidelines answer the latest message: "
                "the customer turned to something else"
            )
        else:
            why = walk.unanswered or "no way on from this step yet"
            step.rationale = f"{why}: stays (the step is carried out again)"
        step.considered = walk.considered
        return step, walk

    def suppress(
        self, ctx: TurnContext, journeys: JourneyPlan, outcome: JourneyOutcome, jid: str
    ) -> None:
        """A relationship removed a followed journey this turn (a guideline took priority over
        it, a dependency is missing...): its run stays as it was before the turn."""
        before = ctx.progress.runs.get(jid)
        runs = outcome.progress.runs
        for other, run in list(runs.items()):
            if run.parent_journey_id == jid and other not in ctx.progress.runs:
                del runs[other]  # a sub-journey it started this turn
        if before is None:
            runs.pop(jid, None)
        else:
            runs[jid] = before.model_copy(deep=True)
        graph = journeys.graphs[jid]
        step = new_step(graph, before, StepKind.SUPPRESSED, StepMethod.ENGINE)
        step.rationale = "a relationship removed it this turn (see resolution); no step taken"
        outcome.steps.append(step)
        outcome.projected.pop(jid, None)

    # -- after the tools ran -------------------------------------------------------------------

    async def after_tools(
        self,
        ctx: TurnContext,
        journeys: JourneyPlan,
        outcome: JourneyOutcome,
        ran: Collection[str],
        results: Sequence[tuple[str, Any]],
        rec: TraceRecorder,
        matcher: ModelMatcher | None,
        specs: Mapping[str, ToolSpec],
        *,
        offset: int,
    ) -> list[str]:
        """Journeys whose tool state ran go on from it, with the results in view. Returns the
        journeys now at another tool state (the caller runs those tools next)."""
        again: list[str] = []
        titles = {g.id: g.journey.title for g in journeys.graphs.values()}
        conditions = {g.id: g.condition for g in ctx.guidelines}
        calls: dict[str, JourneyCheck] = {}
        for jid in list(outcome.projected):
            run = outcome.progress.runs[jid]
            graph = journeys.graphs[jid]
            state = graph.state(run.current)
            if state is None or state.kind is not StateKind.TOOL or not set(state.tools) & set(ran):
                continue
            step = new_step(graph, run, StepKind.CONTINUE, StepMethod.ENGINE)
            walk = Walk()
            ahead = choice_ahead(graph, state.id)
            choice = bool(ahead)
            # Code conditions decide where they exist: no model call is needed for them.
            coded = all(t.id in self.hooks.branches for t in ahead)
            if choice and matcher is not None and not coded:
                step.method = StepMethod.MODEL
                shown = "\n".join(f"- {tool} returned: {data}" for tool, data in results)
                seen = Utterance(role="agent", text=f"[tool results]\n{shown}", offset=-1)
                after = replace(ctx, messages=[*ctx.messages, seen])
                text = render(Listed(1, graph, run), specs, conditions, titles)
                answer = await matcher.match(after, [], [], rec, journeys=[(1, text)])
                check = answer.journeys.get(1)
                wanted = check.step if check is not None else None
                target = graph.by_number(wanted)
                exit_ = graph.exits.get(wanted or 0)
                step.rationale = check.evidence if check is not None else "no answer"
                if target is not None and target != state.id and graph.route(state.id, target):
                    walk = self.walker.towards(graph, state.id, target)
                elif exit_ is not None and (
                    exit_.source == state.id or graph.route(state.id, exit_.source)
                ):
                    walk = self.walker.towards(graph, state.id, exit_.source, exit_=exit_)
                else:
                    step.rationale += " (no step ahead chosen: stays at the tool step)"
                if check is not None and check.tool_calls:
                    calls[jid] = check
            else:
                step.method = (
                    (StepMethod.CODE if coded else StepMethod.OFFLINE)
                    if choice
                    else StepMethod.ENGINE
                )
                walk = await self.walker.after_tool(ctx, graph, state.id, results, specs)
            if not walk.entered and walk.handoff is None:
                step.considered = walk.considered
                outcome.steps.append(step)
                continue
            apply_step(outcome, graph, run, step, walk, journeys, offset)
            new = graph.state(run.current)
            if run.status is RunStatus.ACTIVE and new is not None and new.kind is StateKind.TOOL:
                again.append(jid)
        resume_parents(outcome, journeys, offset)
        project(ctx, journeys, outcome)
        for jid, check in calls.items():
            match = outcome.projected.get(jid)
            if match is not None and match.ranked.guideline.tools:
                match.verdict.tool_calls = traced_calls(check.tool_calls)
                match.verdict.method = MatchMethod.MODEL
        return again


def off_scope(guidelines: Sequence[Guideline], outcome: JourneyOutcome) -> set[str]:
    """Guidelines scoped to a journey that is not live now: they do not apply."""
    return off_scope_of(journey_tags(guidelines), outcome)


def journey_tags(guidelines: Sequence[Guideline]) -> dict[str, tuple[str, ...]]:
    """Guideline id -> the journeys its tags scope it to, for the guidelines with any (worked
    out once per agent snapshot by ``engine/prepared.py``)."""
    found: dict[str, tuple[str, ...]] = {}
    for g in guidelines:
        journeys = tuple(t.removeprefix("journey:") for t in g.tags if t.startswith("journey:"))
        if journeys:
            found[g.id] = found.get(g.id, ()) + journeys
    return found


def off_scope_of(tagged: Mapping[str, Sequence[str]], outcome: JourneyOutcome) -> set[str]:
    """``off_scope`` over ``journey_tags`` worked out ahead."""
    live = {jid for jid, run in outcome.progress.runs.items() if run.live}
    return {gid for gid, journeys in tagged.items() if any(j not in live for j in journeys)}


def with_journeys(matched: Sequence[Match], outcome: JourneyOutcome) -> list[Match]:
    """``matched`` with each journey's synthetic guideline as ``outcome`` now projects it."""
    synthetic = {m.ranked.guideline.id: m for m in outcome.projected.values()}
    kept = [
        m
        for m in matched
        if not m.ranked.guideline.id.startswith("journey:") or m.ranked.guideline.id in synthetic
    ]
    seen = {m.ranked.guideline.id for m in kept}
    result = [synthetic.get(m.ranked.guideline.id, m) for m in kept]
    return result + [m for gid, m in synthetic.items() if gid not in seen]


async def journeys_after_tools(
    follower: Follower,
    tool_stage: ToolStage,
    ctx: TurnContext,
    rec: TraceRecorder,
    matched: list[Match],
    findings: ToolFindings,
    journeys: tuple[JourneyPlan, JourneyOutcome],
) -> list[Match]:
    """Journeys at a tool state whose tools ran go on from it, with the results in view;
    a tool state reached that way runs too (within the agent's iteration bound)."""
    plan, outcome = journeys
    ran = {tool for tool, _ in findings.results}
    specs = tool_stage.specs()
    for _ in range(max(1, ctx.agent.max_engine_iterations)):
        if not ran or not outcome.projected:
            break
        again = await follower.after_tools(
            ctx,
            plan,
            outcome,
            ran,
            findings.results,
            rec,
            tool_stage.model_matcher,
            specs,
            offset=rec.trace.customer_event_offset,
        )
        matched = with_journeys(matched, outcome)
        if not again:
            break
        more = await tool_stage.run(ctx, [outcome.projected[j] for j in again], rec.trace)
        findings.merge(more)
        ran = {tool for tool, _ in more.results}
    rec.trace.journeys = list(outcome.steps)
    rec.trace.final_guideline_ids = [m.ranked.guideline.id for m in matched]
    return matched
