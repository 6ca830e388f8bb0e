"""A journey's rules, applied by the SDK and REST alike: what makes its graph valid
(``validate``), and which observation a condition reuses (``condition_observation``)."""

from __future__ import annotations

from journey_graphs import address_journey, graph_of, valid, with_exit, with_sub
from tactful.domain import Guideline
from tactful.domain.journeys import (
    JourneyState,
    JourneyTransition,
    StateKind,
    condition_observation,
    validate,
)


def test_a_valid_graph_has_no_problems() -> None:
    assert validate(valid()) == []
    assert validate(valid(), known_tools={"shop:find_order"}) == []


def test_initial_state_missing_or_unknown() -> None:
    assert validate(graph_of([JourneyState(id="a", action="x")], [], initial="")) == [
        "the journey has no initial state"
    ]
    problems = validate(graph_of([JourneyState(id="a", action="x")], [], initial="zz"))
    assert problems == ["the initial state 'zz' is not a state"]


def test_dangling_transitions() -> None:
    journey = graph_of(
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
    journey = graph_of(
        [JourneyState(id="start"), JourneyState(id="end", kind=StateKind.END)],
        [
            JourneyTransition(id="t1", source="start", target="end"),
            JourneyTransition(id="t2", source="end", target="start"),
        ],
    )
    assert validate(journey) == ["transition 't2' leaves the end state 'end'"]


def test_unreachable_states() -> None:
    journey = graph_of([JourneyState(id="start"), JourneyState(id="lost", action="Hi")], [])
    assert validate(journey) == ["state 'lost' ('Hi') is unreachable from the initial state"]


def test_tool_states() -> None:
    journey = valid()
    journey.states[2].tools = []
    assert validate(journey) == ["tool state 'find' names no tools"]
    assert validate(valid(), known_tools={"shop:other"}) == [
        "tool state 'find' names unknown tool 'shop:find_order'"
    ]


def test_fork_needs_two_conditional_branches_unless_incomplete() -> None:
    journey = valid()
    journey.transitions[4].condition = None
    expected = ["fork state 'fork' needs at least two outgoing conditional transitions (it has 1)"]
    assert validate(journey) == expected
    assert validate(journey, complete=False) == []


def test_chat_states_need_an_action_except_the_initial_one() -> None:
    journey = valid()
    journey.states[1].action = "  "
    assert validate(journey) == ["chat state 'ask' has no action"]


def test_duplicate_state_ids() -> None:
    journey = graph_of([JourneyState(id="start"), JourneyState(id="start")], [])
    assert validate(journey) == ["state id 'start' is used by 2 states"]


def test_a_cross_journey_transition_targets_a_state_of_the_named_journey() -> None:
    others = {"address": address_journey()}
    assert validate(with_exit(), journeys=others) == []
    assert validate(with_exit("a1"), journeys=others) == []
    # Unchecked without the other journeys.
    assert validate(with_exit("nope")) == []
    assert validate(with_exit("nope"), journeys=others) == [
        "transition 'x' is dangling: its target 'nope' is not a state of journey 'address'"
    ]
    assert validate(with_exit(target_journey_id="gone"), journeys=others) == [
        "transition 'x' leads to unknown journey 'gone'"
    ]


def test_a_cross_journey_transition_naming_its_own_journey_is_refused() -> None:
    journey = with_exit(target="refund", target_journey_id="")
    journey.transitions[-1].target_journey_id = journey.id
    assert validate(journey) == [
        "transition 'x' names its own journey as target_journey_id; leave target_journey_id "
        "out for a transition within the journey"
    ]


def test_a_cross_journey_transition_makes_no_local_state_reachable() -> None:
    journey = graph_of(
        [JourneyState(id="start"), JourneyState(id="a1", action="Stranded")],
        [JourneyTransition(id="x", source="start", target="a1", target_journey_id="address")],
    )
    assert validate(journey, journeys={"address": address_journey()}) == [
        "state 'a1' ('Stranded') is unreachable from the initial state"
    ]
    journey.transitions[0].source = "ghost"
    assert validate(journey)[0] == "transition 'x' is dangling: its source 'ghost' is not a state"


def test_a_cross_journey_transition_counts_as_a_fork_branch() -> None:
    journey = valid()
    journey.transitions[4] = JourneyTransition(
        id="t5", source="fork", target="a0", condition="not eligible", target_journey_id="address"
    )
    assert validate(journey, journeys={"address": address_journey()}) == []
    journey.transitions[4].condition = None
    assert validate(journey, journeys={"address": address_journey()}) == [
        "fork state 'fork' needs at least two outgoing conditional transitions (it has 1)"
    ]


def test_journey_states_name_a_known_other_journey() -> None:
    others = {"address": address_journey()}
    # A journey state is not an end: it goes on to the next state.
    assert validate(with_sub("address"), journeys=others) == []
    assert validate(with_sub("gone")) == []
    assert validate(with_sub("gone"), journeys=others) == [
        "state 'ask' names unknown sub-journey 'gone'"
    ]
    assert validate(with_sub(None)) == ["journey state 'ask' names no sub-journey"]
    own = with_sub(None)
    own.states[1].sub_journey_id = own.id
    assert validate(own) == ["journey state 'ask' runs its own journey as a sub-journey"]


def test_sub_journeys_that_lead_back_are_refused() -> None:
    journey = with_sub("address")
    address = address_journey()
    address.states[1] = JourneyState(id="a1", kind=StateKind.JOURNEY, sub_journey_id=journey.id)
    assert validate(journey, journeys={"address": address, journey.id: journey}) == [
        "journey state 'ask' runs 'address', which runs this journey in turn"
    ]


def test_only_journey_states_name_a_sub_journey() -> None:
    journey = valid()
    journey.states[1].sub_journey_id = "address"
    assert validate(journey) == [
        "chat state 'ask' names a sub-journey; only a journey state runs one"
    ]


def test_canned_responses_of_states_must_exist_when_known() -> None:
    journey = valid()
    journey.states[1].canned_responses = ["c1", "c2"]
    assert validate(journey) == []
    assert validate(journey, known_canned_responses={"c1"}) == [
        "state 'ask' names unknown canned response 'c2'"
    ]


def test_a_journey_reuses_the_observation_with_its_condition_and_exactly_its_tags() -> None:
    plain = Guideline(id="plain", condition="wants a refund", tags=["agent:a"])
    vip = Guideline(id="vip", condition="wants a refund", tags=["vip", "agent:a"])
    rule = Guideline(id="rule", condition="wants a refund", action="explain", tags=["agent:a"])
    stored = [rule, plain, vip]
    assert condition_observation(stored, "wants a refund", ["agent:a"]) is plain
    assert condition_observation(stored, "wants a refund", ["agent:a", "vip"]) is vip
    assert condition_observation(stored, "wants a refund", ["agent:a", "vip", "gold"]) is None
    assert condition_observation(stored, "wants a refund", []) is None
    assert condition_observation(stored, "wants an exchange", ["agent:a"]) is None
