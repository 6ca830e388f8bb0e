"""Journey progress: how a decided step changes the runs (end states, sub-journeys and their
return, hand-offs)."""

from __future__ import annotations

from itertools import pairwise

from tactful.domain import (
    Journey,
    JourneyProgress,
    JourneyRun,
    JourneyState,
    JourneyTransition,
    RunStatus,
    StateKind,
)
from tactful.engine.journeys.graph import JourneyGraph
from tactful.engine.journeys.plan import JourneyPlan
from tactful.engine.journeys.progress import (
    JourneyOutcome,
    apply_step,
    new_step,
    resume_parents,
)
from tactful.engine.journeys.walk import Walk


def _journey(jid: str, *states: JourneyState) -> Journey:
    """States in a line, each leading to the next without a condition."""
    return Journey(
        id=jid,
        title=f"Journey {jid}",
        initial_state_id=states[0].id,
        states=list(states),
        transitions=[JourneyTransition(source=a.id, target=b.id) for a, b in pairwise(states)],
    )


PARENT = _journey(
    "p",
    JourneyState(id="p0"),
    JourneyState(id="p1", kind=StateKind.JOURNEY, sub_journey_id="c"),
    JourneyState(id="p2", action="Thank them"),
)
CHILD = _journey(
    "c",
    JourneyState(id="c0"),
    JourneyState(id="c1", action="Ask for the order number"),
    JourneyState(id="c2", kind=StateKind.END),
)
OTHER = _journey("o", JourneyState(id="o0"), JourneyState(id="o1", action="Offer a voucher"))
GRAPHS = {j.id: JourneyGraph(j) for j in (PARENT, CHILD, OTHER)}
JOURNEYS = JourneyPlan(graphs=GRAPHS, listed=[], scope=set(), hidden=set())


def test_a_sub_journey_runs_while_its_parent_waits_then_the_parent_goes_on() -> None:
    outcome = JourneyOutcome(JourneyProgress(id="s"))
    runs = outcome.progress.runs
    parent = JourneyRun(journey_id="p", path=["p0"])
    step = new_step(GRAPHS["p"], parent, "advance", "model")
    apply_step(outcome, GRAPHS["p"], parent, step, Walk(entered=["p1"]), JOURNEYS, offset=3)
    assert (runs["p"].status, step.status_after) == (RunStatus.WAITING, "waiting")
    # The child's blank start is walked at once, to its first step.
    assert (runs["c"].path, runs["c"].parent_journey_id) == (["c0", "c1"], "p")
    assert [s.kind for s in outcome.steps] == ["advance", "sub-journey"]

    done = new_step(GRAPHS["c"], runs["c"], "advance", "model")
    apply_step(outcome, GRAPHS["c"], runs["c"], done, Walk(entered=["c2"]), JOURNEYS, offset=4)
    assert (done.kind, runs["c"].ended_reason) == ("end", "completed")
    resume_parents(outcome, JOURNEYS, offset=4)
    assert (runs["p"].status, runs["p"].current) == (RunStatus.ACTIVE, "p2")
    assert outcome.steps[-1].kind == "return"
    assert runs["c"].parent_journey_id is None


def test_a_hand_off_ends_the_run_and_starts_the_other_journey_at_its_state() -> None:
    outcome = JourneyOutcome(JourneyProgress(id="s"))
    run = JourneyRun(journey_id="p", path=["p0"])
    step = new_step(GRAPHS["p"], run, "advance", "model")
    apply_step(outcome, GRAPHS["p"], run, step, Walk(handoff=("o", "o1")), JOURNEYS, offset=2)
    runs = outcome.progress.runs
    assert (step.kind, runs["p"].ended_reason) == ("handoff", "continued in o")
    assert (runs["o"].path, runs["o"].status, runs["o"].updated_offset) == (
        ["o1"],
        RunStatus.ACTIVE,
        2,
    )
    assert outcome.changed(JourneyProgress(id="s"))
