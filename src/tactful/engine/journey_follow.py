"""Journeys at turn time: which journeys are in play, where each one stands, and its next step.

Each session keeps one ``JourneyRun`` per journey it entered (``JourneyProgress``): the path of
states taken and a status (active, paused, waiting for a sub-journey, ended). A turn:

1. ``plan``: the journeys in play. Live runs (active, paused) and the few not-yet-started
   journeys whose conditions rank best are *listed* for the matcher, which decides their next
   step in the same model wave as guideline matching (``render`` writes a journey for the
   prompt). Guidelines scoped to a journey (tagged ``journey:<id>``) are checked only while
   that journey is live or listed.
2. ``Follower.decide``: applies the matcher's answers (or, offline, deterministic rules) to
   the runs. A journey starts when one of its conditions (observations) matched; then:
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

from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tactful.domain import (
    Criticality,
    Endpoint,
    EndpointKind,
    Guideline,
    Journey,
    JourneyProgress,
    JourneyRun,
    JourneyState,
    JourneyTransition,
    MatchVerdict,
    Relationship,
    RunStatus,
    StateKind,
    ToolSpec,
    journey_tag,
)
from tactful.domain.traces import JourneyStep, TransitionConsidered
from tactful.engine.context import TurnContext, Utterance
from tactful.engine.hooks import BranchContext, Hooks
from tactful.engine.match import JourneyCheck, Match, ModelMatcher, describe_tool
from tactful.engine.retrieve import EmbeddingCache, Ranked
from tactful.engine.tools import HIDDEN, from_patterns, plan_tool_calls
from tactful.engine.trace import TraceRecorder

# Not-yet-started journeys listed for the matcher each turn (best-ranked conditions first).
MAX_NEW_LISTED = 3
# ... among those whose best condition ranks in the top FRESH_RANK. A journey whose condition
# matches without being listed starts at its first step.
FRESH_RANK = 20
# Longest walk through states in one decision (guards against cycles of unconditional edges).
MAX_WALK = 25
OFFLINE_CONDITION_THRESHOLD = 0.40

_KINDS = {
    StateKind.CHAT: "ask",
    StateKind.TOOL: "tool",
    StateKind.FORK: "fork",
    StateKind.END: "end",
    StateKind.JOURNEY: "journey",
}


def synthetic_id(journey_id: str) -> str:
    """The id of the synthetic guideline a followed journey becomes (its tag's id)."""
    return journey_tag(journey_id)


@dataclass
class JourneyGraph:
    """A journey's states and transitions, indexed, with prompt numbers for its steps.

    Steps are numbered in the journey's order (an action-less initial state gets none); each
    transition into another journey gets a number after them (an "exit").
    """

    journey: Journey
    states: dict[str, JourneyState] = field(init=False)
    out: dict[str, list[JourneyTransition]] = field(init=False)
    numbers: dict[str, int] = field(init=False)
    exits: dict[int, JourneyTransition] = field(init=False)

    def __post_init__(self) -> None:
        self.states = {s.id: s for s in self.journey.states}
        self.out = {}
        for t in self.journey.transitions:
            if t.source in self.states:
                self.out.setdefault(t.source, []).append(t)
        self.numbers = {}
        for s in self.journey.states:
            if s.id == self.journey.initial_state_id and blank(s):
                continue  # an action-less initial state only marks where the journey begins
            self.numbers.setdefault(s.id, len(self.numbers) + 1)
        self.exits = {}
        for t in self.journey.transitions:
            if t.target_journey_id and t.source in self.states:
                self.exits[len(self.numbers) + len(self.exits) + 1] = t

    @property
    def id(self) -> str:
        return self.journey.id

    @property
    def initial(self) -> str:
        return self.journey.initial_state_id

    def state(self, state_id: str | None) -> JourneyState | None:
        return self.states.get(state_id) if state_id else None

    def by_number(self, number: int | None) -> str | None:
        for sid, n in self.numbers.items():
            if n == number:
                return sid
        return None

    def exit_number(self, t: JourneyTransition) -> int | None:
        for n, e in self.exits.items():
            if e.id == t.id:
                return n
        return None

    def label(self, state_id: str | None) -> str:
        """A state as traces name it: "2 (Ask for the order number)"."""
        state = self.state(state_id)
        if state is None:
            return str(state_id)
        n = self.numbers.get(state.id)
        what = state.action or (", ".join(state.tools) if state.tools else state.kind.value)
        return f"{n if n is not None else 'start'} ({what})"

    def local_out(self, state_id: str) -> list[JourneyTransition]:
        return [t for t in self.out.get(state_id, []) if not t.target_journey_id]

    def route(self, source: str, target: str) -> list[JourneyTransition] | None:
        """The shortest chain of local transitions from ``source`` to ``target`` (None: none)."""
        if source == target:
            return []
        previous: dict[str, JourneyTransition] = {}
        todo = deque([source])
        seen = {source}
        while todo:
            sid = todo.popleft()
            for t in self.local_out(sid):
                if t.target in seen:
                    continue
                seen.add(t.target)
                previous[t.target] = t
                if t.target == target:
                    chain = [t]
                    while chain[0].source != source:
                        chain.insert(0, previous[chain[0].source])
                    return chain
                todo.append(t.target)
        return None

    def actionable(self, state_id: str | None) -> bool:
        """Whether being at this state means doing something in this turn's reply."""
        state = self.state(state_id)
        if state is None:
            return False
        if state.kind is StateKind.TOOL:
            return True
        return state.kind in (StateKind.CHAT, StateKind.END) and not blank(state)


def blank(state: JourneyState) -> bool:
    """A chat state without an action (an initial state may be one)."""
    return state.kind is StateKind.CHAT and not (state.action or "").strip()


@dataclass
class Listed:
    """A journey put before the matcher this turn."""

    number: int
    graph: JourneyGraph
    run: JourneyRun | None


@dataclass
class JourneyPlan:
    graphs: dict[str, JourneyGraph]
    listed: list[Listed]
    # Guidelines scoped to journeys that are live or listed (checked in detail) ...
    scope: set[str]
    # ... and those scoped to other journeys (not checked this turn).
    hidden: set[str]

    def by_number(self, number: int) -> Listed | None:
        for item in self.listed:
            if item.number == number:
                return item
        return None


def _scoped(guidelines: Sequence[Guideline], journey_ids: set[str]) -> dict[str, str]:
    """Guideline id -> the journey it is scoped to (by tag)."""
    tags = {journey_tag(j): j for j in journey_ids}
    return {g.id: tags[t] for g in guidelines for t in g.tags if t in tags}


def plan(ctx: TurnContext, ranked: Sequence[Ranked]) -> JourneyPlan:
    """Which journeys the matcher sees this turn, and which scoped guidelines it checks."""
    graphs = {j.id: JourneyGraph(j) for j in ctx.journeys}
    runs = ctx.progress.runs
    live = [runs[j] for j in graphs if j in runs and runs[j].status is not RunStatus.ENDED]
    # Best rank of each journey's conditions (observations are ranked like any guideline);
    # only those near the top are worth listing with their steps.
    best: dict[str, int] = {}
    rank = {r.guideline.id: i for i, r in enumerate(ranked)}
    for jid, g in graphs.items():
        values = [rank[c] for c in g.journey.conditions if c in rank]
        if values and min(values) < FRESH_RANK:
            best[jid] = min(values)
    fresh = sorted(
        (j for j in best if j not in {r.journey_id for r in live}),
        key=lambda j: (best[j], j),
    )[:MAX_NEW_LISTED]
    listed: list[Listed] = []
    for run in live:
        if run.status is RunStatus.WAITING:
            continue  # it continues when its sub-journey ends; nothing to decide meanwhile
        listed.append(Listed(len(listed) + 1, graphs[run.journey_id], run))
    for jid in fresh:
        listed.append(Listed(len(listed) + 1, graphs[jid], runs.get(jid)))
    # Scoped guidelines are checked while their journey is live (from the turn after it starts).
    in_play = {r.journey_id for r in live}
    scoped = _scoped(ctx.guidelines, set(graphs))
    return JourneyPlan(
        graphs=graphs,
        listed=listed,
        scope={gid for gid, jid in scoped.items() if jid in in_play},
        hidden={gid for gid, jid in scoped.items() if jid not in in_play},
    )


def render(
    item: Listed,
    tools: Mapping[str, ToolSpec],
    conditions: Mapping[str, str],
    titles: Mapping[str, str],
) -> str:
    """One journey as the match prompt lists it: title, status, start conditions and steps."""
    g, run = item.graph, item.run
    if run is None or run.status is RunStatus.ENDED:
        status = "not started" if run is None else "completed earlier; not started again"
    else:
        done = [g.numbers[s] for s in run.path[:-1] if s in g.numbers]
        now = g.numbers.get(run.current or "")
        status = f"at step {now}" if now is not None else "at its start"
        if run.status is RunStatus.PAUSED:
            status = "paused " + status
        if done:
            status += f"; steps taken: {', '.join(map(str, dict.fromkeys(done)))}"
    lines = [f'J{item.number}. "{g.journey.title}" [{status}]']
    starts = "; or ".join(conditions[c] for c in g.journey.conditions if c in conditions)
    if starts:
        lines.append(f"   starts when: {starts}")
    if g.initial not in g.numbers and (begin := _edges(g, g.initial)):
        lines.append(f"   begins: {begin}")
    for sid, n in g.numbers.items():
        state = g.states[sid]
        if state.kind is StateKind.TOOL:
            text = "; ".join(describe_tool(tools[t]) if t in tools else t for t in state.tools)
        elif state.kind is StateKind.JOURNEY:
            sub = state.sub_journey_id or ""
            text = f'run the journey "{titles.get(sub, sub)}", then go on'
        else:
            text = state.action or ""
        edges = _edges(g, sid)
        head = f"   {n}. {_KINDS[state.kind]}" + (f": {text}" if text.strip() else "")
        lines.append(head + (f" | {edges}" if edges else ""))
    for n, t in g.exits.items():
        other = titles.get(t.target_journey_id or "", t.target_journey_id or "")
        lines.append(f'   {n}. continue in the journey "{other}"')
    return "\n".join(lines)


def _edges(g: JourneyGraph, sid: str) -> str:
    parts = []
    for t in g.out.get(sid, []):
        to = g.exit_number(t) if t.target_journey_id else g.numbers.get(t.target, "start")
        parts.append(f"-> {to}" + (f" when {t.condition}" if t.condition else ""))
    return "; ".join(parts)


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


def _choice_ahead(graph: JourneyGraph, source: str) -> list[JourneyTransition]:
    """The conditional transitions met on the way on from ``source`` (through forks)."""
    found: list[JourneyTransition] = []
    todo, seen = [source], {source}
    while todo:
        for t in graph.out.get(todo.pop(), []):
            if t.condition:
                found.append(t)
            target = graph.states.get(t.target)
            if target is not None and target.kind is StateKind.FORK and t.target not in seen:
                seen.add(t.target)
                todo.append(t.target)
    return found


def _alternatives(
    graph: JourneyGraph, current: str, walk: _Walk, wanted: int | None
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


Handoff = tuple[str, str]  # (journey id, state id) a cross-journey transition leads to


@dataclass
class _Walk:
    """Where a decision leads: the states entered, skipped and considered on the way."""

    entered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    considered: list[TransitionConsidered] = field(default_factory=list)
    handoff: Handoff | None = None


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
        threshold: float = OFFLINE_CONDITION_THRESHOLD,
        hooks: Hooks | None = None,
    ) -> None:
        self.cache = cache
        self.threshold = threshold
        self.hooks = hooks or Hooks()

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
    ) -> tuple[JourneyStep, _Walk]:
        step = _step(graph, None, "start", "model" if answers is not None else "offline")
        conditions = {g.id: g.condition for g in ctx.guidelines}
        step.rationale = "its condition holds: " + "; ".join(conditions.get(c, c) for c in held)
        wanted = check.step if check is not None else None
        target = graph.by_number(wanted)
        exit_ = graph.exits.get(wanted or 0)
        if target is not None and graph.route(graph.initial, target) is not None:
            walk = self._towards(graph, graph.initial, target)
        elif exit_ is not None and graph.route(graph.initial, exit_.source) is not None:
            walk = self._towards(graph, graph.initial, exit_.source, exit_=exit_)
        else:
            if wanted is not None:
                step.rationale += f"; step {wanted} cannot be reached from the start"
            walk = await self._forward(
                ctx, graph, graph.initial, fresh=True, specs=specs, found=found
            )
        walk.entered.insert(0, graph.initial)
        if walk.skipped:
            step.rationale += "; skipped " + ", ".join(graph.label(s) for s in walk.skipped)
        return step, walk

    def _model_step(
        self, graph: JourneyGraph, run: JourneyRun, check: JourneyCheck | None
    ) -> tuple[JourneyStep, _Walk]:
        current = run.current or graph.initial
        step = _step(graph, run, "stay", "model")
        walk = _Walk()
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
            walk = self._towards(graph, current, exit_.source, exit_=exit_)
            step.kind = "skip" if walk.skipped else "advance"
        elif target is None or target == current:
            step.kind = stay
            if target is None:
                step.rationale += f" (there is no step {wanted}: stays)"
        elif graph.states[target].kind is StateKind.FORK:
            step.kind = stay
            step.rationale += f" (step {wanted} is a fork: choose one of its branches; stays)"
        elif graph.route(current, target) is not None:
            walk = self._towards(graph, current, target)
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
    ) -> tuple[JourneyStep, _Walk]:
        current = run.current or graph.initial
        step = _step(graph, run, "stay", "offline")
        state = graph.states.get(current)
        if state is not None and state.kind is StateKind.TOOL:
            step.status_after = RunStatus.ACTIVE.value
            step.kind = "resume" if run.status is RunStatus.PAUSED else "stay"
            step.rationale = "the tool step runs (again) before the journey goes on"
            return step, _Walk()
        # The latest message answers the step's question, unless it asks one itself.
        fill = "?" not in ctx.last_customer_message
        walk = await self._forward(
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

    # -- walking -------------------------------------------------------------------------------

    def _towards(
        self,
        graph: JourneyGraph,
        source: str,
        target: str,
        *,
        exit_: JourneyTransition | None = None,
    ) -> _Walk:
        """Follow the shortest route to ``target``, stopping early at a tool or sub-journey
        state on the way (it must run first); then take ``exit_`` into another journey."""
        walk = _Walk()
        route = graph.route(source, target) or []
        for i, t in enumerate(route):
            state = graph.states[t.target]
            walk.entered.append(t.target)
            walk.considered.append(
                TransitionConsidered(
                    transition_id=t.id,
                    target=t.target,
                    condition=t.condition,
                    taken=True,
                    why="on the way to the step chosen",
                )
            )
            if i < len(route) - 1:
                if state.kind in (StateKind.TOOL, StateKind.JOURNEY):
                    return walk  # it runs first: the exit is not reached this time
                if state.kind is StateKind.CHAT:
                    walk.skipped.append(t.target)
        if exit_ is not None:
            walk.handoff = (exit_.target_journey_id or "", exit_.target)
            walk.considered.append(
                TransitionConsidered(
                    transition_id=exit_.id,
                    target=exit_.target,
                    condition=exit_.condition,
                    taken=True,
                    why=f"continues in the journey {exit_.target_journey_id}",
                )
            )
        return walk

    async def _forward(
        self,
        ctx: TurnContext,
        graph: JourneyGraph,
        source: str,
        *,
        fresh: bool,
        specs: Mapping[str, ToolSpec],
        found: dict[str, list[dict[str, Any]]] | None = None,
        fill: bool = False,
    ) -> _Walk:
        """Follow the transitions that hold, from ``source``: a state whose question was
        asked (``fresh=False``: the customer's reply may take an unconditional transition)
        or one just entered (``fresh=True``: only conditions already met lead on). Stops at a
        step that needs the customer, a tool or sub-journey state (it must run) or an end."""
        walk = _Walk()
        at, answered = source, not fresh
        for _ in range(MAX_WALK):
            state = graph.states.get(at)
            if state is None or not graph.out.get(at):
                break
            if (
                at != source
                and state.kind is not StateKind.CHAT
                and state.kind is not StateKind.FORK
            ):
                break
            free = answered or blank(state) or state.kind is StateKind.FORK
            chosen, considered = await self._choose(
                ctx,
                graph,
                graph.out[at],
                unconditional=free,
                specs=specs,
                answered=answered and fill,
                found=found,
            )
            walk.considered += considered
            if chosen is None:
                break
            if chosen.target_journey_id:
                walk.handoff = (chosen.target_journey_id, chosen.target)
                break
            if at != source and state.kind is StateKind.CHAT and not blank(state):
                walk.skipped.append(at)
            walk.entered.append(chosen.target)
            at, answered = chosen.target, False
        # Never rest at a fork: without a branch that holds, stay before it.
        while walk.entered and graph.states[walk.entered[-1]].kind is StateKind.FORK:
            walk.entered.pop()
            if walk.skipped and walk.skipped[-1] == (walk.entered[-1] if walk.entered else source):
                walk.skipped.pop()
        return walk

    async def _choose(
        self,
        ctx: TurnContext,
        graph: JourneyGraph,
        moves: Sequence[JourneyTransition],
        *,
        unconditional: bool,
        specs: Mapping[str, ToolSpec],
        evidence: str | None = None,
        forced: bool = False,
        results: Sequence[tuple[str, Any]] = (),
        answered: bool = False,
        found: dict[str, list[dict[str, Any]]] | None = None,
    ) -> tuple[JourneyTransition | None, list[TransitionConsidered]]:
        """The transition that holds: a code condition decides its transition; then, by the
        offline rules, a tool state with its arguments, a condition close to the latest
        message (``forced``, after a tool state: the closest condition wins), an
        unconditional transition. None when none holds."""
        considered = [
            TransitionConsidered(transition_id=t.id, target=t.target, condition=t.condition)
            for t in moves
        ]
        coded = [i for i, t in enumerate(moves) if t.id in self.hooks.branches]
        if coded:
            view = BranchContext.with_results(ctx, results)
            for i in coded:
                holds, error = await self.hooks.run_branch(moves[i].id, view)
                considered[i].why = error or f"code condition: {'holds' if holds else 'not met'}"
                if holds:
                    considered[i].taken = True
                    return moves[i], considered
        # Offline, a step into a tool state is taken when the tool can run, never on wording.
        into_tool = {
            i
            for i, t in enumerate(moves)
            if not t.target_journey_id
            and (target := graph.states.get(t.target)) is not None
            and target.kind is StateKind.TOOL
        }
        conditional = [
            i
            for i, t in enumerate(moves)
            if t.condition and t.id not in self.hooks.branches and i not in into_tool
        ]
        for i in sorted(into_tool):
            if not moves[i].condition or moves[i].id in self.hooks.branches:
                continue
            calls = self._tool_ready(ctx, graph, moves[i], specs, answered)
            if calls is not None:
                if found is not None:
                    found[moves[i].target] = calls
                considered[i].taken = True
                considered[i].why = "the tool step it leads to has every argument it needs"
                return moves[i], considered
        if conditional:
            text = evidence if evidence is not None else ctx.last_customer_message
            vectors = await self.cache.embed(
                [text or " ", *(moves[i].condition or "" for i in conditional)]
            )
            fit = vectors[1:] @ vectors[0]
            for k, i in enumerate(conditional):
                considered[i].why = f"similarity {float(fit[k]):.3f}"
            best = int(np.argmax(fit))
            if forced or float(fit[best]) >= self.threshold:
                i = conditional[best]
                considered[i].taken = True
                considered[i].why += (
                    ": the closest condition" if forced else f" >= {self.threshold:.2f}"
                )
                return moves[i], considered
        plain = [
            i for i, t in enumerate(moves) if not t.condition and t.id not in self.hooks.branches
        ]
        if plain and (unconditional or forced):
            i = plain[0]
            considered[i].taken = True
            considered[i].why = "unconditional"
            return moves[i], considered
        return None, considered

    @staticmethod
    def _tool_ready(
        ctx: TurnContext,
        graph: JourneyGraph,
        t: JourneyTransition,
        specs: Mapping[str, ToolSpec],
        answered: bool,
    ) -> list[dict[str, Any]] | None:
        """Offline: a transition into a tool state holds once its tools' arguments are given;
        returns their calls (None: not ready). Arguments come from parameter patterns in the
        customer's messages and, when the customer just answered a step, the answer itself
        fills the one required argument still missing (the step asked for it)."""
        state = graph.states.get(t.target)
        if t.target_journey_id or state is None or state.kind is not StateKind.TOOL:
            return None
        calls: list[dict[str, Any]] = []
        answer = ctx.last_customer_message.strip()
        for tid in state.tools:
            spec = specs.get(tid)
            if spec is None:
                return None
            given = dict(from_patterns(spec, ctx))
            properties = spec.parameters.get("properties", {})
            missing = [n for n in spec.required if n not in given and not properties[n].get(HIDDEN)]
            if answered and answer and len(missing) == 1:
                name = missing[0]
                schema = properties[name]
                fits = (
                    schema.get("type", "string") == "string"
                    and "pattern" not in schema
                    and "enum" not in schema
                    and schema.get("minLength", 0) <= len(answer) <= schema.get("maxLength", 2000)
                )
                if fits:
                    given[name] = {"name": name, "value": answer, "source": "customer"}
            calls.append({"tool": spec.name, "arguments": list(given.values())})
        probe = Match(
            Ranked(synthetic(graph, state.id), 1.0, 1.0),
            MatchVerdict(
                guideline_id="probe",
                condition="",
                applies=True,
                method="offline",
                tool_calls=calls,
            ),
        )
        planned = plan_tool_calls([probe], specs, ctx)
        ready = bool(planned) and all(p.blocked is None for p in planned)
        return calls if ready else None

    # -- bookkeeping ---------------------------------------------------------------------------

    def _apply(
        self,
        outcome: JourneyOutcome,
        graph: JourneyGraph,
        run: JourneyRun,
        step: JourneyStep,
        walk: _Walk,
        journeys: JourneyPlan,
        offset: int,
    ) -> None:
        """Write a decided step into its run, and start what it leads into."""
        step.entered = list(walk.entered)
        step.skipped = list(walk.skipped)
        step.considered = walk.considered or step.considered
        if not step.rationale:
            taken = [c for c in walk.considered if c.taken]
            step.rationale = "; ".join(f"{c.condition or 'unconditional'}: {c.why}" for c in taken)
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
            walk = _Walk(entered=[plain[0].target] if plain else [])
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
            walk = _Walk()
            ahead = _choice_ahead(graph, state.id)
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
                    walk = self._towards(graph, state.id, target)
                elif exit_ is not None and (
                    exit_.source == state.id or graph.route(state.id, exit_.source)
                ):
                    walk = self._towards(graph, state.id, exit_.source, exit_=exit_)
                else:
                    step.rationale += " (no step ahead chosen: stays at the tool step)"
                if check is not None and check.tool_calls:
                    calls[jid] = check
            else:
                step.method = ("code" if coded else "offline") if choice else "engine"
                walk = await self._after_tool(ctx, graph, state.id, results, specs)
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

    async def _after_tool(
        self,
        ctx: TurnContext,
        graph: JourneyGraph,
        source: str,
        results: Sequence[tuple[str, Any]],
        specs: Mapping[str, ToolSpec],
    ) -> _Walk:
        """Without the model: the way on from a tool state that ran, through forks."""
        shown = "\n".join(f"{tool}: {data}" for tool, data in results)
        walk = _Walk()
        at = source
        for _ in range(MAX_WALK):
            moves = graph.out.get(at, [])
            if not moves:
                break
            chosen, considered = await self._choose(
                ctx,
                graph,
                moves,
                unconditional=True,
                specs=specs,
                evidence=f"{shown}\n{ctx.last_customer_message}",
                forced=True,
                results=results,
            )
            walk.considered += considered
            if chosen is None:
                break
            if chosen.target_journey_id:
                walk.handoff = (chosen.target_journey_id, chosen.target)
                break
            walk.entered.append(chosen.target)
            at = chosen.target
            if graph.states[at].kind is not StateKind.FORK:
                break
        return walk
