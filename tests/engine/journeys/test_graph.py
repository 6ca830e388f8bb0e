"""Journey graph validation and the Mermaid drawing."""

from __future__ import annotations

from tactful.domain.journeys import Journey, JourneyState, JourneyTransition, StateKind
from tactful.engine.journeys.graph import JourneyGraph, blank, mermaid, validate


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


def _address() -> Journey:
    return Journey(
        id="address",
        title="Change delivery address",
        initial_state_id="a0",
        states=[
            JourneyState(id="a0"),
            JourneyState(id="a1", action="Ask for the new address"),
            JourneyState(id="a2", kind=StateKind.END),
        ],
        transitions=[
            JourneyTransition(source="a0", target="a1"),
            JourneyTransition(source="a1", target="a2"),
        ],
    )


def _with_exit(target: str = "a0", target_journey_id: str = "address") -> Journey:
    journey = _valid()
    journey.transitions.append(
        JourneyTransition(
            id="x",
            source="ask",
            target=target,
            condition="the customer wants to change the address",
            target_journey_id=target_journey_id,
        )
    )
    return journey


def test_a_cross_journey_transition_targets_a_state_of_the_named_journey() -> None:
    others = {"address": _address()}
    assert validate(_with_exit(), journeys=others) == []
    assert validate(_with_exit("a1"), journeys=others) == []
    # Unchecked without the other journeys.
    assert validate(_with_exit("nope")) == []
    assert validate(_with_exit("nope"), journeys=others) == [
        "transition 'x' is dangling: its target 'nope' is not a state of journey 'address'"
    ]
    assert validate(_with_exit(target_journey_id="gone"), journeys=others) == [
        "transition 'x' leads to unknown journey 'gone'"
    ]


def test_a_cross_journey_transition_naming_its_own_journey_is_refused() -> None:
    journey = _with_exit(target="refund", target_journey_id="")
    journey.transitions[-1].target_journey_id = journey.id
    assert validate(journey) == [
        "transition 'x' names its own journey as target_journey_id; leave target_journey_id "
        "out for a transition within the journey"
    ]


def test_a_cross_journey_transition_makes_no_local_state_reachable() -> None:
    journey = _journey(
        [JourneyState(id="start"), JourneyState(id="a1", action="Stranded")],
        [JourneyTransition(id="x", source="start", target="a1", target_journey_id="address")],
    )
    assert validate(journey, journeys={"address": _address()}) == [
        "state 'a1' ('Stranded') is unreachable from the initial state"
    ]
    journey.transitions[0].source = "ghost"
    assert validate(journey)[0] == "transition 'x' is dangling: its source 'ghost' is not a state"


def test_a_cross_journey_transition_counts_as_a_fork_branch() -> None:
    journey = _valid()
    journey.transitions[4] = JourneyTransition(
        id="t5", source="fork", target="a0", condition="not eligible", target_journey_id="address"
    )
    assert validate(journey, journeys={"address": _address()}) == []
    journey.transitions[4].condition = None
    assert validate(journey, journeys={"address": _address()}) == [
        "fork state 'fork' needs at least two outgoing conditional transitions (it has 1)"
    ]


def _with_sub(sub: str | None) -> Journey:
    journey = _valid()
    journey.states[1] = JourneyState(id="ask", kind=StateKind.JOURNEY, sub_journey_id=sub)
    return journey


def test_journey_states_name_a_known_other_journey() -> None:
    others = {"address": _address()}
    # A journey state is not an end: it goes on to the next state.
    assert validate(_with_sub("address"), journeys=others) == []
    assert validate(_with_sub("gone")) == []
    assert validate(_with_sub("gone"), journeys=others) == [
        "state 'ask' names unknown sub-journey 'gone'"
    ]
    assert validate(_with_sub(None)) == ["journey state 'ask' names no sub-journey"]
    own = _with_sub(None)
    own.states[1].sub_journey_id = own.id
    assert validate(own) == ["journey state 'ask' runs its own journey as a sub-journey"]


def test_sub_journeys_that_lead_back_are_refused() -> None:
    journey = _with_sub("address")
    address = _address()
    address.states[1] = JourneyState(id="a1", kind=StateKind.JOURNEY, sub_journey_id=journey.id)
    assert validate(journey, journeys={"address": address, journey.id: journey}) == [
        "journey state 'ask' runs 'address', which runs this journey in turn"
    ]


def test_only_journey_states_name_a_sub_journey() -> None:
    journey = _valid()
    journey.states[1].sub_journey_id = "address"
    assert validate(journey) == [
        "chat state 'ask' names a sub-journey; only a journey state runs one"
    ]


def test_canned_responses_of_states_must_exist_when_known() -> None:
    journey = _valid()
    journey.states[1].canned_responses = ["c1", "c2"]
    assert validate(journey) == []
    assert validate(journey, known_canned_responses={"c1"}) == [
        "state 'ask' names unknown canned response 'c2'"
    ]


def test_mermaid_draws_sub_journeys_and_cross_journey_transitions() -> None:
    journey = _with_sub("address")
    journey.transitions.append(
        JourneyTransition(
            id="x1",
            source="fork",
            target="a1",
            condition="wants: new address",
            target_journey_id="address",
        )
    )
    journey.transitions.append(
        JourneyTransition(id="x2", source="refund", target="a0", target_journey_id="address")
    )
    drawn = mermaid(journey, journeys={"address": _address()}).splitlines()
    assert drawn == [
        "stateDiagram-v2",
        "    [*] --> s0",
        "    s1 : journey Change delivery address",
        "    s2 : tool shop#58;find_order",
        "    s3 : fork",
        "    s4 : Say #quot;refund#58; done#quot;",
        "    x0 : continue in #quot;Change delivery address#quot; at Ask for the new address",
        "    x1 : continue in #quot;Change delivery address#quot;",
        "    s0 --> s1",
        "    s1 --> s2 : the customer gave an order ID",
        "    s2 --> s3",
        "    s3 --> s4 : eligible",
        "    s3 --> s5 : not eligible",
        "    s4 --> s5",
        "    s3 --> x0 : wants#58; new address",
        "    s4 --> x1",
        "    s5 --> [*]",
    ]
    # Without the other journeys, their ids stand in for titles.
    assert mermaid(journey).splitlines()[2] == "    s1 : journey address"
    assert "    x1 : continue in #quot;address#quot; at a0" in mermaid(journey).splitlines()


# -- JourneyGraph: the numbered steps the matcher and the walker share --------------------------


def test_steps_are_numbered_in_order_and_a_blank_initial_state_gets_none() -> None:
    graph = JourneyGraph(_valid())
    assert graph.numbers == {"ask": 1, "find": 2, "fork": 3, "refund": 4, "end": 5}
    assert graph.exits == {}
    assert [graph.by_number(n) for n in (1, 3, 5)] == ["ask", "fork", "end"]
    assert graph.by_number(0) is None
    assert graph.by_number(6) is None
    assert graph.by_number(None) is None


def test_an_initial_state_with_an_action_is_step_one() -> None:
    journey = _valid()
    journey.states[0].action = "Greet the customer"
    graph = JourneyGraph(journey)
    assert graph.numbers["start"] == 1
    assert graph.numbers["end"] == 6
    assert graph.by_number(1) == "start"


def test_transitions_into_other_journeys_are_numbered_after_the_states() -> None:
    journey = _with_exit()
    journey.transitions.append(
        JourneyTransition(id="y", source="refund", target="a1", target_journey_id="address")
    )
    graph = JourneyGraph(journey)
    assert {n: t.id for n, t in graph.exits.items()} == {6: "x", 7: "y"}
    exit_x = journey.transitions[-2]
    assert graph.exit_number(exit_x) == 6
    assert graph.exit_number(journey.transitions[0]) is None
    # An exit is not a state: its number names no state.
    assert graph.by_number(6) is None
    # ... and it is not a local way on from its source.
    assert [t.id for t in graph.local_out("ask")] == ["t2"]


def test_labels_name_a_state_by_its_number_and_what_it_does() -> None:
    graph = JourneyGraph(_valid())
    assert graph.label("ask") == "1 (Ask for the order ID)"
    assert graph.label("find") == "2 (shop:find_order)"
    assert graph.label("fork") == "3 (fork)"
    assert graph.label("start") == "start (chat)"
    assert graph.label("ghost") == "ghost"
    assert graph.label(None) == "None"


def test_route_is_the_shortest_chain_of_local_transitions() -> None:
    graph = JourneyGraph(_valid())
    # fork -> end directly is shorter than fork -> refund -> end.
    assert [t.id for t in graph.route("start", "end") or []] == ["t1", "t2", "t3", "t5"]
    assert [t.id for t in graph.route("fork", "refund") or []] == ["t4"]
    assert graph.route("ask", "ask") == []
    assert graph.route("refund", "ask") is None
    assert graph.route("start", "ghost") is None


def test_route_ignores_transitions_into_other_journeys() -> None:
    journey = _valid()
    # A state of the other journey that happens to share an id with a local state.
    journey.transitions.append(
        JourneyTransition(id="x", source="start", target="refund", target_journey_id="address")
    )
    journey.transitions.append(
        JourneyTransition(id="y", source="refund", target="a1", target_journey_id="address")
    )
    graph = JourneyGraph(journey)
    assert [t.id for t in graph.route("start", "refund") or []] == ["t1", "t2", "t3", "t4"]
    assert graph.route("refund", "a1") is None


def test_actionable_states_ask_for_something_in_the_reply() -> None:
    journey = _valid()
    journey.states[-1].action = "Thank the customer"
    graph = JourneyGraph(journey)
    assert [s for s in graph.states if graph.actionable(s)] == ["ask", "find", "refund", "end"]
    assert not graph.actionable(None)
    assert not graph.actionable("ghost")


def test_blank_is_a_chat_state_without_an_action() -> None:
    assert blank(JourneyState(id="a"))
    assert blank(JourneyState(id="a", action="  "))
    assert not blank(JourneyState(id="a", action="Ask"))
    assert not blank(JourneyState(id="a", kind=StateKind.FORK))
    assert not blank(JourneyState(id="a", kind=StateKind.END))
