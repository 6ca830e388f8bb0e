"""Sample journeys for the tests of journey graphs: their rules (``domain.journeys.validate``)
and how the engine reads and draws them (``engine.journeys.graph``)."""

from __future__ import annotations

from tactful.domain.journeys import Journey, JourneyState, JourneyTransition, StateKind


def graph_of(
    states: list[JourneyState], transitions: list[JourneyTransition], initial: str = "start"
) -> Journey:
    """A journey titled "Return" with these states and transitions."""
    return Journey(title="Return", initial_state_id=initial, states=states, transitions=transitions)


def valid() -> Journey:
    """A valid graph: ask, look the order up, fork on eligibility, refund, end."""
    return graph_of(
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


def address_journey() -> Journey:
    """Another journey (id ``address``) to lead into or run as a sub-journey."""
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


def with_exit(target: str = "a0", target_journey_id: str = "address") -> Journey:
    """``valid()`` with a transition ``x`` from ``ask`` into another journey."""
    journey = valid()
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


def with_sub(sub: str | None) -> Journey:
    """``valid()`` whose ``ask`` state runs the journey ``sub``."""
    journey = valid()
    journey.states[1] = JourneyState(id="ask", kind=StateKind.JOURNEY, sub_journey_id=sub)
    return journey
