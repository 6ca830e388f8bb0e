"""How a decided journey step changes the session's runs: the states it enters, an end state
that ends the run, a sub-journey state that starts the sub-journey while its parent waits, a
sub-journey that ended and lets its parent go on, a hand-off to another journey."""

from __future__ import annotations

from dataclasses import dataclass, field

from tactful.domain import (
    JourneyProgress,
    JourneyRun,
    JourneyStep,
    ProposedToolCall,
    RunStatus,
    StateKind,
)
from tactful.domain import JourneyStepKind as StepKind
from tactful.domain import JourneyStepMethod as StepMethod
from tactful.engine.journeys.graph import JourneyGraph, blank
from tactful.engine.journeys.plan import JourneyPlan
from tactful.engine.journeys.walk import Walk
from tactful.engine.match import Match


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
    calls: dict[str, list[ProposedToolCall]] = field(default_factory=dict)
    # Journeys started this turn -> how well their condition matched (their score in
    # resolution; a journey under way scores 1.0).
    started: dict[str, float] = field(default_factory=dict)

    def changed(self, before: JourneyProgress) -> bool:
        return self.progress.runs != before.runs


def new_step(
    graph: JourneyGraph, run: JourneyRun | None, kind: StepKind, method: StepMethod
) -> JourneyStep:
    """A step of ``graph`` as it stands (``run``), to be decided and applied."""
    at = run.current if run is not None and run.live else None
    status = run.status if run is not None and run.live else None
    return JourneyStep(
        journey_id=graph.id,
        title=graph.journey.title,
        kind=kind,
        status_before=status,
        status_after=status or RunStatus.ACTIVE,
        state_before=at,
        state_after=at,
        label_before=graph.label(at) if at else None,
        label_after=graph.label(at) if at else None,
        method=method,
    )


def apply_step(
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
        step.kind, step.status_after = StepKind.HANDOFF, RunStatus.ENDED
        step.rationale += f"; continues in {other.journey.title!r} at {other.label(state_id)}"
        outcome.progress.runs[other_id] = JourneyRun(
            journey_id=other_id, path=[state_id], updated_offset=offset
        )
        _settle(outcome, other, outcome.progress.runs[other_id], journeys, offset, None)
        return
    _settle(outcome, graph, run, journeys, offset, step)


def _settle(
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
            step.status_after = RunStatus.ENDED
            if step.kind in ("advance", "skip", "stay", "resume", "continue"):
                step.kind = StepKind.END
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
        entering = new_step(graph, None, StepKind.SUB_JOURNEY, StepMethod.ENGINE)
        entering.journey_id, entering.title = child.id, child.journey.title
        entering.entered, entering.state_after = [child.initial], child.initial
        entering.label_after = child.label(child.initial)
        entering.rationale = f"started by {graph.journey.title!r} at {graph.label(current.id)}"
        if step is not None:
            step.status_after = RunStatus.WAITING
            step.rationale += f"; runs the journey {child.journey.title!r} first"
        # The sub-journey's first steps need no answer yet: walk its unconditional start.
        plain = [t for t in child.local_out(child.initial) if not t.condition]
        if blank(child.states[child.initial]) and plain:
            child_run.path.append(plain[0].target)
            entering.entered.append(plain[0].target)
            entering.state_after = plain[0].target
            entering.label_after = child.label(plain[0].target)
        outcome.steps.append(entering)


def resume_parents(outcome: JourneyOutcome, journeys: JourneyPlan, offset: int) -> None:
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
        step = new_step(graph, parent, StepKind.RETURN, StepMethod.ENGINE)
        step.status_after = RunStatus.ACTIVE
        step.rationale = f"its sub-journey {run.journey_id} ended ({run.ended_reason})"
        plain = [t for t in graph.local_out(at) if not t.condition]
        walk = Walk(entered=[plain[0].target] if plain else [])
        if not graph.out.get(at):
            step.status_after = RunStatus.ENDED
            parent.ended_reason = "completed"
        apply_step(outcome, graph, parent, step, walk, journeys, offset)
