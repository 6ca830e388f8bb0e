"""What a followed journey is to the rest of the turn: a synthetic guideline (id
``journey:<id>``) carrying its current state's action, tools, canned responses and composition
mode, so that relationships, tools and composition treat it like any guideline. In
relationships the journey's tag stands for this synthetic guideline."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from tactful.domain import (
    Criticality,
    Endpoint,
    EndpointKind,
    Guideline,
    MatchMethod,
    MatchVerdict,
    Relationship,
    RunStatus,
    StateKind,
    journey_tag,
)
from tactful.engine.context import TurnContext
from tactful.engine.journeys.graph import JourneyGraph
from tactful.engine.journeys.plan import JourneyPlan
from tactful.engine.journeys.progress import JourneyOutcome
from tactful.engine.match import Match
from tactful.engine.retrieve import Ranked


def synthetic_id(journey_id: str) -> str:
    """The id of the synthetic guideline a followed journey becomes (its tag's id)."""
    return journey_tag(journey_id)


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
        # A followed journey's labels go to the session as an active guideline's do.
        labels=list(j.labels),
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


def project(ctx: TurnContext, journeys: JourneyPlan, outcome: JourneyOutcome) -> None:
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
        if not (run.status is RunStatus.ACTIVE or ended_now) or not graph.actionable(run.current):
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
            method=MatchMethod.JOURNEY,
        )
        strength = outcome.started.get(jid, 1.0)
        projected[jid] = Match(Ranked(g, strength, strength), verdict)
    outcome.projected = projected
