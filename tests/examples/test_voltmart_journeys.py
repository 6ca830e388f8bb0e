"""The Voltmart example's journeys, offline with the real embedder: returning an item (with an
interruption, tool states and a fork on the looked-up order) and changing a delivery address."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from types import ModuleType

import pytest
import pytest_asyncio
from voltmart_example import load_example

import tactful
from tactful.domain import JourneyProgress, RunStatus


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load_example("voltmart_journeys_example")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def live(example: ModuleType) -> AsyncIterator[tuple[tactful.Server, tactful.Agent]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(example.orders.DB_ENV, raising=False)
        async with tactful.Server(transient=True, offline=True) as server:
            yield server, await example.define(server)


async def _conversation(
    server: tactful.Server, agent: tactful.Agent, *messages: str
) -> tuple[tactful.Session, list[tuple[str, list[tuple[str, str]]]]]:
    """Each reply with the journey steps of its turn as (title, kind)."""
    customer = await server.create_customer("Dana", id="vm-journeys-dana")
    session = await server.create_session(agent, customer)
    turns = []
    for message in messages:
        reply = await server.send(session, message)
        trace = await server.runtime.store.get(tactful.Trace, reply.trace_id)
        turns.append((reply.data["message"], [(j.title, j.kind) for j in trace.journeys]))
    return session, turns


async def _tools(server: tactful.Server, session: tactful.Session) -> list[str]:
    events = await server.runtime.store.list_events(session.id, kinds=[tactful.EventKind.TOOL])
    return [c["tool_id"] for e in events for c in e.data["tool_calls"]]


@pytest.mark.embedder
@pytest.mark.asyncio(loop_scope="module")
async def test_a_return_with_an_interruption(live: tuple[tactful.Server, tactful.Agent]) -> None:
    server, agent = live
    session, turns = await _conversation(
        server,
        agent,
        "I want to return my headphones",
        "by the way, how much is 2-day shipping?",
        "sure, it's VM10234567",
        "they're too small",
        "thank you so much!",
    )
    (ask, steps1), (shipping, steps2), (why, steps3), (rma, steps4), (_, steps5) = turns
    journey = "Return an item"
    assert steps1 == [(journey, "start")] and "What's the order number?" in ask
    # The interruption is answered; the journey waits at its step.
    assert steps2 == [(journey, "pause")] and "Express (2 business days)" in shipping
    # The answer resumes it: the order is looked up and the fork picks the open return window.
    assert steps3 == [(journey, "advance"), (journey, "continue")]
    assert why.startswith("Good news: order VM10234567 (Aurora ANC headphones) can be returned")
    assert steps4 == [(journey, "advance"), (journey, "continue")]
    assert re.match(r"Your return for order VM10234567 is open: your RMA number is RMA-\d{6}", rma)
    assert steps5 == [(journey, "end")]
    assert await _tools(server, session) == ["voltmart:order_status", "voltmart:start_return"]
    progress = await server.runtime.store.get(JourneyProgress, session.id)
    [run] = progress.runs.values()
    assert (run.status, run.ended_reason) == (RunStatus.ENDED, "completed")
    # The tool that opened the return labelled the session and noted the RMA on it.
    stored = await server.runtime.store.get(tactful.Session, session.id)
    assert "return" in stored.labels and stored.metadata["rma"] in rma


@pytest.mark.embedder
@pytest.mark.asyncio(loop_scope="module")
async def test_an_address_change_and_a_refusal(live: tuple[tactful.Server, tactful.Agent]) -> None:
    server, agent = live
    session, turns = await _conversation(
        server,
        agent,
        "I need to change the delivery address of my order",
        "VM42890018",
        "12 Oak Street, Springfield, IL 62704",
    )
    messages = [m for m, _ in turns]
    assert "Which order is it?" in messages[0]
    assert messages[1].startswith("Order VM42890018 hasn't shipped yet")
    assert messages[2] == (
        "Done! Order VM42890018 will now be delivered to 12 Oak Street, Springfield, IL 62704."
    )
    assert await _tools(server, session) == ["voltmart:order_status", "voltmart:change_address"]
    # The same journey on an order that already shipped takes the other branch of the fork.
    _, turns = await _conversation(
        server, agent, "Can you update the shipping address on my order?", "VM10234568"
    )
    assert turns[1][0].startswith("Order VM10234568 is already shipped")
    assert turns[1][1] == [
        ("Change a delivery address", "advance"),
        ("Change a delivery address", "continue"),
    ]
