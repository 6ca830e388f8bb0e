"""Journey projection: a followed journey as a synthetic guideline, relationships with its tag,
and what each run means for the turn (followed, paused, neither)."""

from __future__ import annotations

from tactful.domain import (
    Agent,
    CannedResponse,
    Customer,
    Endpoint,
    Journey,
    JourneyProgress,
    JourneyRun,
    JourneyState,
    JourneyTransition,
    Relationship,
    RelationshipKind,
    RunStatus,
    Session,
    StateKind,
)
from tactful.engine.context import TurnContext
from tactful.engine.journeys.graph import JourneyGraph
from tactful.engine.journeys.plan import JourneyPlan
from tactful.engine.journeys.progress import JourneyOutcome
from tactful.engine.journeys.projection import (
    journey_relationships,
    project,
    synthetic,
    synthetic_id,
)

RETURNS = Journey(
    id="returns",
    title="Returns",
    initial_state_id="r0",
    states=[
        JourneyState(id="r0"),
        JourneyState(id="r1", kind=StateKind.TOOL, tools=["local:lookup"], canned_responses=["c1"]),
        JourneyState(id="r2", action="Confirm the return"),
    ],
    transitions=[
        JourneyTransition(source="r0", target="r1"),
        JourneyTransition(source="r1", target="r2"),
    ],
)
PAUSED = Journey(
    id="upgrade",
    title="Upgrade",
    initial_state_id="u0",
    states=[JourneyState(id="u0"), JourneyState(id="u1", action="Offer a plan")],
    transitions=[JourneyTransition(source="u0", target="u1")],
)


def test_a_journey_at_a_tool_state_is_a_guideline_carrying_its_tools() -> None:
    g = synthetic(JourneyGraph(RETURNS), "r1", canned=["tagged"])
    assert g.id == synthetic_id("returns") == "journey:returns"
    assert g.action == "carry on with the procedure using local:lookup"
    assert g.tools == ["local:lookup"]
    assert g.canned_responses == ["c1", "tagged"]
    assert g.metadata == {"journey_id": "returns", "state_id": "r1"}
    assert synthetic(JourneyGraph(RETURNS), "r2").tools == []


def test_a_journeys_tag_in_a_relationship_stands_for_its_guideline() -> None:
    about = Relationship(
        kind=RelationshipKind.PRIORITY,
        source=Endpoint.tag("journey:returns"),
        target=Endpoint.guideline("g1"),
    )
    other = Relationship(
        kind=RelationshipKind.PRIORITY,
        source=Endpoint.tag("journey:upgrade"),
        target=Endpoint.tag("vip"),
    )
    swapped, kept = journey_relationships([about, other], ["returns"])
    assert swapped.source == Endpoint.guideline("journey:returns")
    assert swapped.target == Endpoint.guideline("g1")
    assert kept is other


def test_followed_journeys_become_matches_and_paused_ones_notes() -> None:
    agent = Agent(name="Shop")
    progress = JourneyProgress(
        id="s",
        runs={
            "returns": JourneyRun(journey_id="returns", path=["r0", "r1"]),
            "upgrade": JourneyRun(journey_id="upgrade", status=RunStatus.PAUSED, path=["u0", "u1"]),
        },
    )
    ctx = TurnContext(
        agent=agent,
        session=Session(agent_id=agent.id, customer_id="c"),
        customer=Customer(name="c"),
        messages=[],
        guidelines=[],
        canned_responses=[CannedResponse(id="t", value="Done.", tags=["journey:returns"])],
        terms=[],
        journeys=[RETURNS, PAUSED],
        progress=progress,
    )
    graphs = {j.id: JourneyGraph(j) for j in (RETURNS, PAUSED)}
    outcome = JourneyOutcome(progress, started={"returns": 0.7})
    project(ctx, JourneyPlan(graphs=graphs, listed=[], scope=set(), hidden=set()), outcome)
    assert list(outcome.projected) == ["returns"]
    match = outcome.projected["returns"]
    assert match.ranked.guideline.canned_responses == ["c1", "t"]
    assert (match.verdict.method, match.verdict.score, match.ranked.score) == ("journey", 0.7, 0.7)
    assert outcome.paused == ["Upgrade: 1 (Offer a plan)"]
