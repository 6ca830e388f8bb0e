"""Journey plan: which journeys the matcher sees each turn, and how each one is written."""

from __future__ import annotations

import pytest

from tactful.domain import (
    Agent,
    Customer,
    Guideline,
    Journey,
    JourneyProgress,
    JourneyRun,
    JourneyState,
    JourneyTransition,
    RunStatus,
    Session,
    StateKind,
    ToolSpec,
    journey_tag,
    tool_id,
)
from tactful.engine.context import TurnContext, Utterance
from tactful.engine.journeys.graph import JourneyGraph
from tactful.engine.journeys.plan import FRESH_RANK, MAX_NEW_LISTED, Listed, plan, render
from tactful.engine.match import listed_journeys
from tactful.engine.retrieve import Ranked

# -- plan --------------------------------------------------------------------------------------


def _journey(jid: str, *conditions: str) -> Journey:
    return Journey(
        id=jid,
        title=f"Journey {jid}",
        conditions=list(conditions),
        initial_state_id=f"{jid}0",
        states=[JourneyState(id=f"{jid}0"), JourneyState(id=f"{jid}1", action="Ask")],
        transitions=[JourneyTransition(source=f"{jid}0", target=f"{jid}1")],
    )


def _context(
    journeys: list[Journey],
    runs: dict[str, RunStatus] | None = None,
    guidelines: list[Guideline] | None = None,
) -> TurnContext:
    agent = Agent(name="Shop")
    progress = JourneyProgress(
        id="s",
        runs={
            jid: JourneyRun(journey_id=jid, status=status, path=[f"{jid}0", f"{jid}1"])
            for jid, status in (runs or {}).items()
        },
    )
    return TurnContext(
        agent=agent,
        session=Session(agent_id=agent.id, customer_id="c"),
        customer=Customer(name="c"),
        messages=[Utterance(role="customer", text="hello", offset=0)],
        guidelines=guidelines or [],
        canned_responses=[],
        terms=[],
        journeys=journeys,
        progress=progress,
    )


def _ranked(*ids: str) -> list[Ranked]:
    """Observations ranked in this order (the first is the best)."""
    return [
        Ranked(Guideline(id=gid, condition=f"condition {gid}"), 1.0 - i / 100)
        for i, gid in enumerate(ids)
    ]


def _listed(ctx: TurnContext, ranked: list[Ranked]) -> list[tuple[int, str, RunStatus | None]]:
    return [
        (i.number, i.graph.id, i.run.status if i.run else None) for i in plan(ctx, ranked).listed
    ]


def test_live_runs_come_first_and_waiting_runs_are_not_listed() -> None:
    journeys = [
        _journey("fresh", "o_fresh"),
        _journey("active"),
        _journey("waiting"),
        _journey("paused"),
    ]
    ctx = _context(
        journeys,
        runs={
            "active": RunStatus.ACTIVE,
            "waiting": RunStatus.WAITING,
            "paused": RunStatus.PAUSED,
        },
    )
    assert _listed(ctx, _ranked("o_fresh")) == [
        (1, "active", RunStatus.ACTIVE),
        (2, "paused", RunStatus.PAUSED),
        (3, "fresh", None),
    ]
    journey_plan = plan(ctx, _ranked("o_fresh"))
    assert set(journey_plan.graphs) == {"fresh", "active", "waiting", "paused"}
    listed = journey_plan.by_number(3)
    assert listed is not None and listed.graph.id == "fresh"
    assert journey_plan.by_number(4) is None


def test_a_live_journey_whose_condition_ranks_is_listed_once() -> None:
    ctx = _context([_journey("a", "o_a")], runs={"a": RunStatus.ACTIVE})
    assert _listed(ctx, _ranked("o_a")) == [(1, "a", RunStatus.ACTIVE)]


def test_a_journey_not_started_is_listed_only_when_its_condition_ranks_near_the_top() -> None:
    fillers = [f"g{i}" for i in range(FRESH_RANK + 5)]
    near = _context([_journey("j", "o_j")])
    # The best of its conditions counts.
    assert _listed(near, _ranked(*fillers[: FRESH_RANK - 1], "o_j")) == [(1, "j", None)]
    assert _listed(near, _ranked(*fillers[:FRESH_RANK], "o_j")) == []
    assert _listed(near, _ranked("o_j")) == [(1, "j", None)]
    assert _listed(near, _ranked(*fillers)) == []
    two = _context([_journey("j", "o_far", "o_near")])
    assert _listed(two, _ranked(*fillers[: FRESH_RANK - 1], "o_near", "o_far")) == [(1, "j", None)]


def test_at_most_a_few_journeys_not_started_are_listed_best_first() -> None:
    journeys = [_journey(j, f"o_{j}") for j in ("a", "b", "c", "d", "e")]
    ctx = _context(journeys, runs={"e": RunStatus.ACTIVE})
    listed = _listed(ctx, _ranked("o_e", "o_d", "o_b", "g", "o_c", "o_a"))
    assert MAX_NEW_LISTED == 3
    assert listed == [
        (1, "e", RunStatus.ACTIVE),
        (2, "d", None),
        (3, "b", None),
        (4, "c", None),
    ]


def test_a_journey_completed_earlier_is_listed_with_its_run() -> None:
    ctx = _context([_journey("done", "o_done")], runs={"done": RunStatus.ENDED})
    assert _listed(ctx, _ranked("o_done")) == [(1, "done", RunStatus.ENDED)]
    assert _listed(ctx, _ranked("other")) == []


def test_scoped_guidelines_are_checked_only_while_their_journey_is_live() -> None:
    journeys = [_journey(j, f"o_{j}") for j in ("active", "paused", "waiting", "listed", "done")]
    guidelines = [
        Guideline(id=f"g_{j}", condition="x", action="y", tags=[journey_tag(j)])
        for j in ("active", "paused", "waiting", "listed", "done")
    ]
    guidelines.append(Guideline(id="global", condition="x", action="y"))
    guidelines.append(Guideline(id="other", condition="x", action="y", tags=["vip"]))
    ctx = _context(
        journeys,
        runs={
            "active": RunStatus.ACTIVE,
            "paused": RunStatus.PAUSED,
            "waiting": RunStatus.WAITING,
            "done": RunStatus.ENDED,
        },
        guidelines=guidelines,
    )
    journey_plan = plan(ctx, _ranked("o_listed", "o_done"))
    assert [i.graph.id for i in journey_plan.listed] == ["active", "paused", "listed", "done"]
    # Listed without a live run is not enough: scoped guidelines wait for the next turn.
    assert journey_plan.scope == {"g_active", "g_paused", "g_waiting"}
    assert journey_plan.hidden == {"g_listed", "g_done"}


# -- render ------------------------------------------------------------------------------------

FIND_ORDER = ToolSpec(
    id=tool_id("shop", "find_order"),
    service_name="shop",
    name="find_order",
    description="Look an order up.",
    parameters={
        "type": "object",
        "properties": {
            "order_id": {
                "type": "string",
                "description": "VM and 8 digits",
                "pattern": r"^VM\d{8}$",
            }
        },
    },
    required=["order_id"],
)
SPECS = {FIND_ORDER.id: FIND_ORDER}
CONDITIONS = {
    "o_return": "the customer wants to return an item",
    "o_refund": "the customer asks for a refund",
}
TITLES = {"ret": "Return an item", "address": "Change delivery address"}


def _return() -> Journey:
    return Journey(
        id="ret",
        title="Return an item",
        conditions=["o_return", "o_refund", "o_unknown"],
        initial_state_id="start",
        states=[
            JourneyState(id="start"),
            JourneyState(id="ask", action="Ask for the order number"),
            JourneyState(id="look", kind=StateKind.TOOL, tools=["shop:find_order"]),
            JourneyState(id="fork", kind=StateKind.FORK),
            JourneyState(id="ok", action="Ask why"),
            JourneyState(id="no", action="Explain the 30-day window"),
            JourneyState(id="end", kind=StateKind.END),
        ],
        transitions=[
            JourneyTransition(id="t1", source="start", target="ask"),
            JourneyTransition(
                id="t2", source="ask", target="look", condition="the customer gave an order number"
            ),
            JourneyTransition(
                id="x",
                source="ask",
                target="a0",
                condition="the customer wants to change the address",
                target_journey_id="address",
            ),
            JourneyTransition(id="t3", source="look", target="fork"),
            JourneyTransition(
                id="t4", source="fork", target="ok", condition="the order can be returned"
            ),
            JourneyTransition(
                id="t5", source="fork", target="no", condition="the order cannot be returned"
            ),
            JourneyTransition(id="t6", source="ok", target="end"),
            JourneyTransition(id="t7", source="no", target="end"),
        ],
    )


STEPS = [
    "   begins: -> 1",
    "   1. ask: Ask for the order number | -> 2 when the customer gave an order number; "
    "-> 7 when the customer wants to change the address",
    "   2. tool: find_order(order_id: string, required - VM and 8 digits): Look an order up."
    " | -> 3",
    "   3. fork | -> 4 when the order can be returned; -> 5 when the order cannot be returned",
    "   4. ask: Ask why | -> 6",
    "   5. ask: Explain the 30-day window | -> 6",
    "   6. end",
    '   7. continue in the journey "Change delivery address"',
]


def _render(run: JourneyRun | None, number: int = 1) -> str:
    return render(Listed(number, JourneyGraph(_return()), run), SPECS, CONDITIONS, TITLES)


def test_render_a_journey_not_started() -> None:
    assert _render(None).splitlines() == [
        'J1. "Return an item" [not started]',
        "   starts when: the customer wants to return an item; or the customer asks for a refund",
        *STEPS,
    ]


@pytest.mark.parametrize(
    ("status", "path", "expected"),
    [
        (RunStatus.ACTIVE, ["start"], "at its start"),
        (RunStatus.ACTIVE, ["start", "ask"], "at step 1"),
        (
            RunStatus.ACTIVE,
            ["start", "ask", "look", "fork", "ok"],
            "at step 4; steps taken: 1, 2, 3",
        ),
        # A backtrack: each step taken is named once, in the order first taken.
        (
            RunStatus.ACTIVE,
            ["start", "ask", "look", "fork", "ok", "ask", "look"],
            "at step 2; steps taken: 1, 2, 3, 4",
        ),
        (RunStatus.PAUSED, ["start", "ask"], "paused at step 1"),
        (
            RunStatus.PAUSED,
            ["start", "ask", "look", "fork", "no"],
            "paused at step 5; steps taken: 1, 2, 3",
        ),
        (
            RunStatus.ENDED,
            ["start", "ask", "look", "fork", "no", "end"],
            "completed earlier; not started again",
        ),
    ],
)
def test_render_the_status_of_a_run(status: RunStatus, path: list[str], expected: str) -> None:
    run = JourneyRun(journey_id="ret", status=status, path=path)
    lines = _render(run).splitlines()
    assert lines[0] == f'J1. "Return an item" [{expected}]'
    assert lines[2:] == STEPS


def test_render_a_sub_journey_an_unknown_tool_and_an_initial_step() -> None:
    journey = Journey(
        id="j",
        title="Onboard",
        initial_state_id="hello",
        states=[
            JourneyState(id="hello", action="Greet the customer"),
            JourneyState(id="sub", kind=StateKind.JOURNEY, sub_journey_id="address"),
            JourneyState(id="check", kind=StateKind.TOOL, tools=["crm:check", "shop:find_order"]),
            JourneyState(id="bye", kind=StateKind.END, action="Say goodbye"),
        ],
        transitions=[
            JourneyTransition(source="hello", target="sub"),
            JourneyTransition(source="sub", target="check"),
            JourneyTransition(source="check", target="bye", condition="all is well"),
            JourneyTransition(source="check", target="hello", condition="something is off"),
        ],
    )
    text = render(Listed(2, JourneyGraph(journey), None), SPECS, CONDITIONS, TITLES)
    # No "starts when" without known conditions, no "begins" when the start is a step.
    assert text.splitlines() == [
        'J2. "Onboard" [not started]',
        "   1. ask: Greet the customer | -> 2",
        '   2. journey: run the journey "Change delivery address", then go on | -> 3',
        "   3. tool: crm:check; find_order(order_id: string, required - VM and 8 digits): "
        "Look an order up. | -> 4 when all is well; -> 1 when something is off",
        "   4. end: Say goodbye",
    ]


def test_what_render_writes_is_what_the_matcher_reads_back() -> None:
    run = JourneyRun(
        journey_id="ret", status=RunStatus.PAUSED, path=["start", "ask", "look", "fork", "ok"]
    )
    onboard = _journey("b")
    written = "\n".join(
        [
            _render(run),
            render(Listed(2, JourneyGraph(onboard), None), SPECS, CONDITIONS, TITLES),
        ]
    )
    parsed = listed_journeys(f"Conversation ...\n\nJOURNEYS:\nInstructions.\n{written}")
    assert [(j.number, j.title, j.status) for j in parsed] == [
        (1, "Return an item", "paused at step 4; steps taken: 1, 2, 3"),
        (2, "Journey b", "not started"),
    ]
    assert parsed[0].steps == {
        1: "ask: Ask for the order number",
        2: "tool: find_order(order_id: string, required - VM and 8 digits): Look an order up.",
        3: "fork",
        4: "ask: Ask why",
        5: "ask: Explain the 30-day window",
        6: "end",
        7: 'continue in the journey "Change delivery address"',
    }
    assert parsed[1].steps == {1: "ask: Ask"}


def test_render_keeps_an_action_with_a_bar_or_a_line_break_on_its_line() -> None:
    journey = Journey(
        id="j",
        title="Order",
        initial_state_id="ask",
        states=[
            JourneyState(id="ask", action="Ask for the size | colour\nand the quantity"),
            JourneyState(id="end", kind=StateKind.END),
        ],
        transitions=[JourneyTransition(source="ask", target="end", condition="all\ngiven | done")],
    )
    text = render(Listed(1, JourneyGraph(journey), None), SPECS, CONDITIONS, TITLES)
    assert text.splitlines()[1] == (
        "   1. ask: Ask for the size / colour and the quantity | -> 2 when all given / done"
    )
    [parsed] = listed_journeys(f"JOURNEYS:\nInstructions.\n{text}")
    assert parsed.steps[1] == "ask: Ask for the size / colour and the quantity"
