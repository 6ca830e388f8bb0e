"""How the engine reads journey graphs (``JourneyGraph``) and draws them (Mermaid)."""

from __future__ import annotations

from journey_graphs import address_journey, valid, with_exit, with_sub
from tactful.domain.journeys import JourneyState, JourneyTransition, StateKind
from tactful.engine.journeys.graph import JourneyGraph, blank, mermaid


def test_mermaid() -> None:
    assert mermaid(valid()).splitlines() == [
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


def test_mermaid_draws_sub_journeys_and_cross_journey_transitions() -> None:
    journey = with_sub("address")
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
    drawn = mermaid(journey, journeys={"address": address_journey()}).splitlines()
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
    graph = JourneyGraph(valid())
    assert graph.numbers == {"ask": 1, "find": 2, "fork": 3, "refund": 4, "end": 5}
    assert graph.exits == {}
    assert [graph.by_number(n) for n in (1, 3, 5)] == ["ask", "fork", "end"]
    assert graph.by_number(0) is None
    assert graph.by_number(6) is None
    assert graph.by_number(None) is None


def test_an_initial_state_with_an_action_is_step_one() -> None:
    journey = valid()
    journey.states[0].action = "Greet the customer"
    graph = JourneyGraph(journey)
    assert graph.numbers["start"] == 1
    assert graph.numbers["end"] == 6
    assert graph.by_number(1) == "start"


def test_transitions_into_other_journeys_are_numbered_after_the_states() -> None:
    journey = with_exit()
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
    graph = JourneyGraph(valid())
    assert graph.label("ask") == "1 (Ask for the order ID)"
    assert graph.label("find") == "2 (shop:find_order)"
    assert graph.label("fork") == "3 (fork)"
    assert graph.label("start") == "start (chat)"
    assert graph.label("ghost") == "ghost"
    assert graph.label(None) == "None"


def test_route_is_the_shortest_chain_of_local_transitions() -> None:
    graph = JourneyGraph(valid())
    # fork -> end directly is shorter than fork -> refund -> end.
    assert [t.id for t in graph.route("start", "end") or []] == ["t1", "t2", "t3", "t5"]
    assert [t.id for t in graph.route("fork", "refund") or []] == ["t4"]
    assert graph.route("ask", "ask") == []
    assert graph.route("refund", "ask") is None
    assert graph.route("start", "ghost") is None


def test_route_ignores_transitions_into_other_journeys() -> None:
    journey = valid()
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
    journey = valid()
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
