"""Journey graph validation and the Mermaid drawing."""

from __future__ import annotations

from tactful.domain.journeys import Journey, JourneyState, JourneyTransition, StateKind
from tactful.engine.journeys import mermaid, validate


def _journey(
    states: list[JourneyState], transitions: list[JourneyTransition], initial: str = "start"
) -> Journey:
    return Journey(title="Return", initial_state_id=initial, states=states, transitions=transitions)


def _valid() -> Journey:
    return _journey(
        [
            JourneyState(id="start"),
            JourneyState(id="ask", action="Ask for the order ID"),
            JourneyState(id="find", kind=StateKind.TOOL, tools=["shop:find_order"]),
            JourneyState(id="fork", kind=StateKind.FORK),
            JourneyState(id="refund", action='Say "refund: done"'),
            JourneyState(id="end", kind=StateKind.END),
        ],
        [
            JourneyTransition(id="t1", source="start", target="ask"),
            JourneyTransition(
                id="t2", source="ask", target="find", condition="the customer gave an order ID"
            ),
            JourneyTransition(id="t3", source="find", target="fork"),
            JourneyTransition(id="t4", source="fork", target="refund", condition="eligible"),
            JourneyTransition(id="t5", source="fork", target="end", condition="not eligible"),
            JourneyTransition(id="t6", source="refund", target="end"),
        ],
    )


def test_a_valid_graph_has_no_problems() -> None:
    assert validate(_valid()) == []
    assert validate(_valid(), known_tools={"shop:find_order"}) == []


def test_initial_state_missing_or_unknown() -> None:
    assert validate(_journey([JourneyState(id="a", action="x")], [], initial="")) == [
        "the journey has no initial state"
    ]
    problems = validate(_journey([JourneyState(id="a", action="x")], [], initial="zz"))
    assert problems == ["the initial state 'zz' is not a state"]


def test_dangling_transitions() -> None:
    journey = _journey(
        [JourneyState(id="start")],
        [
            JourneyTransition(id="t1", source="start", target="nowhere"),
            JourneyTransition(id="t2", source="x", target="y"),
        ],
    )
    assert validate(journey) == [
        "transition 't1' is dangling: its target 'nowhere' is not a state",
        "transition 't2' is dangling: its source 'x' and target 'y' are not a state",
    ]


def test_transition_out_of_an_end_state() -> None:
    journey = _journey(
        [JourneyState(id="start"), JourneyState(id="end", kind=StateKind.END)],
        [
            JourneyTransition(id="t1", source="start", target="end"),
            JourneyTransition(id="t2", source="end", target="start"),
        ],
    )
    assert validate(journey) == ["transition 't2' leaves the end state 'end'"]


def test_unreachable_states() -> None:
    journey = _journey([JourneyState(id="start"), JourneyState(id="lost", action="Hi")], [])
    assert validate(journey) == ["state 'lost' ('Hi') is unreachable from the initial state"]


def test_tool_states() -> None:
    journey = _valid()
    journey.states[2].tools = []
    assert validate(journey) == ["tool state 'find' names no tools"]
    assert validate(_valid(), known_tools={"shop:other"}) == [
        "tool state 'find' names unknown tool 'shop:find_order'"
    ]


def test_fork_needs_two_conditional_branches_unless_incomplete() -> None:
    journey = _valid()
    journey.transitions[4].condition = None
    expected = ["fork state 'fork' needs at least two outgoing conditional transitions (it has 1)"]
    assert validate(journey) == expected
    assert validate(journey, complete=False) == []


def test_chat_states_need_an_action_except_the_initial_one() -> None:
    journey = _valid()
    journey.states[1].action = "  "
    assert validate(journey) == ["chat state 'ask' has no action"]


def test_duplicate_state_ids() -> None:
    journey = _journey([JourneyState(id="start"), JourneyState(id="start")], [])
    assert validate(journey) == ["state id 'start' is used by 2 states"]


def test_mermaid() -> None:
    assert mermaid(_valid()).splitlines() == [
        "stateDiagram-v2",
        "    [*] --> s0",
        "    s1 : Ask for the order ID",
        "    s2 : tool shop#58;find_order",
        "    s3 : fork",
        "    s4 : Say #quot;refund#58; done#quot;",
        "    s0 --> s1",
        "    s1 --> s2 : the customer gave an order ID",
        "    s2 --> s3",
        "    s3 --> s4 : eligible",
        "    s3 --> s5 : not eligible",
        "    s4 --> s5",
        "    s5 --> [*]",
    ]
