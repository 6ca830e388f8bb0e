"""Journeys at turn time: which journeys are in play, where each one stands, and its next step.

Each session keeps one ``JourneyRun`` per journey it entered (``JourneyProgress``): the path of
states taken and a status (active, paused, waiting for a sub-journey, ended). A turn:

1. ``plan.plan``: the journeys in play. Live runs (active, paused) and the few
   not-yet-started journeys whose conditions rank best are *listed* for the matcher, which
   decides their next step in the same model wave as guideline matching
   (``plan.render`` writes a journey for the prompt). Guidelines scoped to a journey
   (tagged ``journey:<id>``) are checked only while that journey is live.
2. ``Follower.decide``: applies the matcher's answers (or, offline, deterministic rules) to
   the runs (offline and where the engine walks on its own, ``walk.Walker``'s rules).
   A journey starts when one of its conditions (observations) matched; then:
   advance, stay, skip ahead, go back, pause when interrupted, resume, switch, end, drop,
   enter a sub-journey or continue in another journey. The engine checks every step the
   model proposes against the graph: it never jumps to an unreachable state, never walks past
   a tool state without running it, and records why in a ``JourneyStep``.
3. ``project``: each journey followed this turn becomes a synthetic guideline (id
   ``journey:<id>``) carrying its current state's action, tools, canned responses and
   composition mode, so relationships, tools and composition treat it like any guideline. In
   relationships the journey's tag stands for this synthetic guideline.
4. ``Follower.after_tools``: a journey at a tool state whose tools ran continues from there,
   with the results in view (a second, small model call when the way on is conditional).

The updated progress is saved with the agent's message: a cancelled turn changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tactful.domain import (
    Criticality,
    Endpoint,
    EndpointKind,
    Guideline,
    JourneyProgress,
    JourneyRun,
    MatchVerdict,
    Relationship,
    RunStatus,
    StateKind,
    ToolSpec,
    journey_tag,
)
from tactful.domain.traces import JourneyStep, TransitionConsidered
from tactful.engine.context import TurnContext, Utterance
from tactful.engine.hooks import Hooks
from tactful.engine.journeys.graph import JourneyGraph, blank
from tactful.engine.journeys.plan import JourneyPlan, Listed, render
from tactful.engine.journeys.walk import Walk, Walker, choice_ahead
from tactful.engine.match import JourneyCheck, Match, ModelMatcher
from tactful.engine.options import JOURNEY_CONDITION_THRESHOLD
from tactful.engine.retrieve import EmbeddingCache, Ranked
from tactful.engine.trace import TraceRecorder


def synthetic_id(journey_id: str) -> str:
    """The id of the synthetic guideline a followed journey becomes (its tag's id)."""
    return journey_tag(journey_id)


@dataclass
class JourneyOutcome:
    """What the journeys did this turn (``progress`` is saved with the agent's message)."""

    progress: JourneyProgress
    steps: list[JourneyStep] = field(default_factory=list)
    # Journeys followed now, as synthetic guidelines, by journey id.
    projected: dict[str, Match] = field(default_factory=dict)
    # Paused journeys, for the composer: "title: step".
    paused: list[str] = field(default_factory=list)
    # Offline: the calls of tool states entered this turn (state id -> proposed calls).
    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Journeys started this turn -> how well their condition matched (their score in
    # resolution; a journey under way scores 1.0).
    started: dict[str, float] = field(default_factory=dict)

    def changed(self, before: JourneyProgress) -> bool:
        return self.progress.runs != before.runs


def synthetic(graph: JourneyGraph, state_id: str, canned: Sequence[str] = ()) -> Guideline:
    """The guideline a journey at ``state_id`` stands for this turn."""
    state = graph.states[state_id]
    j = graph.journey
    if state.kind is StateKind.TOOL:
        action = state.action or f"carry on with the procedure using {', '.join(state.tools)}"
    else:
        action = state.action or "carry on with the procedure"
    return Guideline(
        id=synthetic_id(j.id),
        condition=f'the customer is going through the procedure "{j.title}"',
        action=action,
        priority=j.priority,
        criticality=Criticality.MEDIUM,
        composition_mode=state.composition_mode or j.composition_mode,
        tools=list(state.tools) if state.kind is StateKind.TOOL else [],
        canned_responses=list(dict.fromkeys([*state.canned_responses, *canned])),
        metadata={"journey_id": j.id, "state_id": state_id},
    )


def journey_relationships(
    relationships: Sequence[Relationship], journey_ids: Collection[str]
) -> list[Relationship]:
    """Relationships with a journey's tag as an end, that end rewritten to the journey's
    synthetic guideline (so priority, dependency, exclusion... apply to the journey)."""
    tags = {journey_tag(j) for j in journey_ids}

    def swap(end: Endpoint) -> Endpoint:
        if end.kind is EndpointKind.TAG and end.id in tags:
            return Endpoint.guideline(end.id)
        return end

    return [
        r
        if r.source.id not in tags and r.target.id not in tags
        else r.model_copy(update={"source": swap(r.source), "target": swap(r.target)})
        for r in relationships
    ]


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


def _step(graph: JourneyGraph, run: JourneyRun | None, kind: str, method: str) -> JourneyStep:
    at = run.current if run is not None and run.live else None
    status = run.status.value if run is not None and run.live else None
    return JourneyStep(
        journey_id=graph.id,
        title=graph.journey.title,
        kind=kind,
        status_before=status,
        status_after=status or RunStatus.ACTIVE.value,
        state_before=at,
        state_after=at,
        label_before=graph.label(at) if at else None,
        label_after=graph.label(at) if at else None,
        method=method,
    )


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
            if step.status_before == RunStatus.PAUSED.value and step.status_after == "active":
                came.append(jid)
            if step.status_before is not None and (walk.entered or walk.handoff):
                consumed = True
            self._apply(outcome, graph, runs[jid], step, walk, journeys, offset)
        for step in outcome.steps:
            if step.kind == "pause" and (to := [j for j in came if j != step.journey_id]):
                step.kind = "switch"
                titles = ", ".join(repr(journeys.graphs[j].journey.title) for j in to)
                step.rationale += f" (switched to {titles})"
        self._children_done(outcome, journeys, offset)
        self.project(ctx, journeys, outcome)
        for jid, match in outcome.projected.items():
            check = checks.get(jid)
            if check is not None and check.tool_calls and match.ranked.guideline.tools:
                match.verdict.tool_calls = [c.model_dump() for c in check.tool_calls]
                match.verdict.method = "model"
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
        found: dict[str, list[dict[str, Any]]],
    ) -> tuple[JourneyStep, Walk]:
        step = _step(graph, None, "start", "model" if answers is not None else "offline")
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
        step = _step(graph, run, "stay", "model")
        walk = Walk()
        if check is None:
            step.rationale = "no decision this turn (its matching batch failed): stays"
            return step, walk
        step.rationale = check.evidence
        if check.status == "dropped":
            step.kind, step.status_after = "drop", RunStatus.ENDED.value
            return step, walk
        if check.status != "following":
            if run.status is RunStatus.ACTIVE:
                step.kind, step.status_after = "pause", RunStatus.PAUSED.value
            return step, walk
        resumed = run.status is RunStatus.PAUSED
        step.status_after = RunStatus.ACTIVE.value
        stay = "resume" if resumed else "stay"
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
            step.kind = "skip" if walk.skipped else "advance"
        elif target is None or target == current:
            step.kind = stay
            if target is None:
                step.rationale += f" (there is no step {wanted}: stays)"
        elif graph.states[target].kind is StateKind.FORK:
            step.kind = stay
            step.rationale += f" (step {wanted} is a fork: choose one of its branches; stays)"
        elif graph.route(current, target) is not None:
            walk = self.walker.towards(graph, current, target)
            step.kind = "skip" if walk.skipped else "advance"
        elif target in run.path:
            step.kind = "backtrack"
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
        found: dict[str, list[dict[str, Any]]],
    ) -> tuple[JourneyStep, Walk]:
        current = run.current or graph.initial
        step = _step(graph, run, "stay", "offline")
        state = graph.states.get(current)
        if state is not None and state.kind is StateKind.TOOL:
            step.status_after = RunStatus.ACTIVE.value
            step.kind = "resume" if run.status is RunStatus.PAUSED else "stay"
            step.rationale = "the tool step runs (again) before the journey goes on"
            return step, Walk()
        # The latest message answers the step's question, unless it asks one itself.
        fill = "?" not in ctx.last_customer_message
        walk = await self.walker.forward(
            ctx, graph, current, fresh=False, specs=specs, found=found, fill=fill
        )
        if walk.entered or walk.handoff:
            step.status_after = RunStatus.ACTIVE.value
            step.kind = "skip" if walk.skipped else "advance"
            if run.status is RunStatus.PAUSED:
                step.rationale = "the customer came back to it"
            return step, walk
        if run.status is RunStatus.PAUSED:
            if held:
                step.kind, step.status_after = "resume", RunStatus.ACTIVE.value
                step.rationale = "its condition holds again"
            else:
                step.rationale = "still paused: the latest message does not continue it"
            return step, walk
        if others:
            step.kind, step.status_after = "pause", RunStatus.PAUSED.value
            step.rationale = (
                "no way on from this step, and other guidelines answer the latest message: "
                "the customer turned to something else"
            )
        else:
            step.rationale = "no way on from this step yet: stays (the step is carried out again)"
        step.considered = walk.considered
        return step, walk

    # -- bookkeeping ---------------------------------------------------------------------------

    def _apply(
        self,
        outcome: JourneyOutcome,
        graph: JourneyGraph,
        run: JourneyRun,
        step: JourneyStep,
        walk: Walk,
        journeys: JourneyPlan,
        offset: int,
    ) -> None:
        """Write a decided step into its run, and start what it leads into."""
        step.entered = list(walk.entered)
        step.skipped = list(walk.skipped)
        step.considered = walk.considered or step.considered
        taken = "; ".join(
            f"{c.condition}: {c.why}" if c.condition else c.why for c in walk.considered if c.taken
        )
        if not step.rationale:
            step.rationale = taken
        elif taken and step.method != "model":
            step.rationale += f" ({taken})"
        run.path += walk.entered
        run.status = RunStatus(step.status_after)
        if step.kind != "stay" or walk.entered:
            run.updated_offset = offset
        if step.kind == "drop":
            run.ended_reason = "dropped"
        step.state_after = run.current
        step.label_after = graph.label(run.current) if run.current else None
        outcome.steps.append(step)
        outcome.progress.runs[graph.id] = run
        if walk.handoff is not None and walk.handoff[0] in journeys.graphs:
            other_id, state_id = walk.handoff
            other = journeys.graphs[other_id]
            run.status, run.ended_reason = RunStatus.ENDED, f"continued in {other_id}"
            step.kind, step.status_after = "handoff", RunStatus.ENDED.value
            step.rationale += f"; continues in {other.journey.title!r} at {other.label(state_id)}"
            outcome.progress.runs[other_id] = JourneyRun(
                journey_id=other_id, path=[state_id], updated_offset=offset
            )
            self._settle(outcome, other, outcome.progress.runs[other_id], journeys, offset, None)
            return
        self._settle(outcome, graph, run, journeys, offset, step)

    def _settle(
        self,
        outcome: JourneyOutcome,
        graph: JourneyGraph,
        run: JourneyRun,
        journeys: JourneyPlan,
        offset: int,
        step: JourneyStep | None,
    ) -> None:
        """A run that reached an end state ends; one at a sub-journey state waits for it."""
        current = graph.state(run.current)
        if current is None or not run.live:
            return
        if current.kind is StateKind.END:
            run.status, run.ended_reason = RunStatus.ENDED, "completed"
            if step is not None:
                step.status_after = RunStatus.ENDED.value
                if step.kind in ("advance", "skip", "stay", "resume", "continue"):
                    step.kind = "end"
        elif current.kind is StateKind.JOURNEY and current.sub_journey_id in journeys.graphs:
            child = journeys.graphs[current.sub_journey_id]
            run.status = RunStatus.WAITING
            child_run = JourneyRun(
                journey_id=child.id,
                path=[child.initial],
                parent_journey_id=graph.id,
                updated_offset=offset,
            )
            outcome.progress.runs[child.id] = child_run
            entering = _step(graph, None, "sub-journey", "engine")
            entering.journey_id, entering.title = child.id, child.journey.title
            entering.entered, entering.state_after = [child.initial], child.initial
            entering.label_after = child.label(child.initial)
            entering.rationale = f"started by {graph.journey.title!r} at {graph.label(current.id)}"
            if step is not None:
                step.status_after = RunStatus.WAITING.value
                step.rationale += f"; runs the journey {child.journey.title!r} first"
            # The sub-journey's first steps need no answer yet: walk its unconditional start.
            plain = [t for t in child.local_out(child.initial) if not t.condition]
            if blank(child.states[child.initial]) and plain:
                child_run.path.append(plain[0].target)
                entering.entered.append(plain[0].target)
                entering.state_after = plain[0].target
                entering.label_after = child.label(plain[0].target)
            outcome.steps.append(entering)

    def _children_done(self, outcome: JourneyOutcome, journeys: JourneyPlan, offset: int) -> None:
        """A sub-journey that ended lets its waiting parent go on (along an unconditional
        transition; with only conditional ones, the parent decides next turn)."""
        for run in list(outcome.progress.runs.values()):
            parent_id = run.parent_journey_id
            if run.live or parent_id is None:
                continue
            parent = outcome.progress.runs.get(parent_id)
            graph = journeys.graphs.get(parent_id)
            run.parent_journey_id = None
            if parent is None or graph is None or parent.status is not RunStatus.WAITING:
                continue
            at = parent.current or graph.initial
            step = _step(graph, parent, "return", "engine")
            step.status_after = RunStatus.ACTIVE.value
            step.rationale = f"its sub-journey {run.journey_id} ended ({run.ended_reason})"
            plain = [t for t in graph.local_out(at) if not t.condition]
            walk = Walk(entered=[plain[0].target] if plain else [])
            if not graph.out.get(at):
                step.status_after = RunStatus.ENDED.value
                parent.ended_reason = "completed"
            self._apply(outcome, graph, parent, step, walk, journeys, offset)

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
        step = _step(graph, before, "suppressed", "engine")
        step.rationale = "a relationship removed it this turn (see resolution); no step taken"
        outcome.steps.append(step)
        outcome.projected.pop(jid, None)

    def project(self, ctx: TurnContext, journeys: JourneyPlan, outcome: JourneyOutcome) -> None:
        """Journeys followed now become synthetic guidelines; paused ones become notes."""
        # Canned responses tagged with a journey serve all its steps, except those a state
        # lists: they serve that state only.
        on_states = {
            cid
            for g in journeys.graphs.values()
            for st in g.states.values()
            for cid in st.canned_responses
        }
        canned_of: dict[str, list[str]] = {}
        for c in ctx.canned_responses:
            for tag in c.tags:
                if tag.startswith("journey:") and c.id not in on_states:
                    canned_of.setdefault(tag.removeprefix("journey:"), []).append(c.id)
        moved = {s.journey_id: s for s in outcome.steps}
        projected: dict[str, Match] = {}
        outcome.paused.clear()
        for jid, run in outcome.progress.runs.items():
            graph = journeys.graphs.get(jid)
            if graph is None or run.current is None:
                continue
            if run.status is RunStatus.PAUSED:
                outcome.paused.append(f"{graph.journey.title}: {graph.label(run.current)}")
                continue
            # A journey that reached an end state with an action carries it out now.
            ended_now = (
                run.status is RunStatus.ENDED and jid in moved and run.ended_reason == "completed"
            )
            if not (run.status is RunStatus.ACTIVE or ended_now) or not graph.actionable(
                run.current
            ):
                continue
            previous = outcome.projected.get(jid)
            if (
                previous is not None
                and previous.ranked.guideline.metadata.get("state_id") == run.current
            ):
                projected[jid] = previous
                continue
            g = synthetic(graph, run.current, canned_of.get(jid, []))
            step = moved.get(jid)
            verdict = MatchVerdict(
                guideline_id=g.id,
                condition=g.condition,
                action=g.action,
                applies=True,
                score=outcome.started.get(jid, 1.0),
                rationale=f"journey step {graph.label(run.current)}"
                + (f" ({step.kind})" if step else ""),
                method="journey",
            )
            strength = outcome.started.get(jid, 1.0)
            projected[jid] = Match(Ranked(g, strength, strength), verdict)
        outcome.projected = projected

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
            step = _step(graph, run, "continue", "engine")
            walk = Walk()
            ahead = choice_ahead(graph, state.id)
            choice = bool(ahead)
            # Code conditions decide where they exist: no model call is needed for them.
            coded = all(t.id in self.hooks.branches for t in ahead)
            if choice and matcher is not None and not coded:
                step.method = "model"
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
                step.method = ("code" if coded else "offline") if choice else "engine"
                walk = await self.walker.after_tool(ctx, graph, state.id, results, specs)
            if not walk.entered and walk.handoff is None:
                step.considered = walk.considered
                outcome.steps.append(step)
                continue
            self._apply(outcome, graph, run, step, walk, journeys, offset)
            new = graph.state(run.current)
            if run.status is RunStatus.ACTIVE and new is not None and new.kind is StateKind.TOOL:
                again.append(jid)
        self._children_done(outcome, journeys, offset)
        self.project(ctx, journeys, outcome)
        for jid, check in calls.items():
            match = outcome.projected.get(jid)
            if match is not None and match.ranked.guideline.tools:
                match.verdict.tool_calls = [c.model_dump() for c in check.tool_calls]
                match.verdict.method = "model"
        return again
