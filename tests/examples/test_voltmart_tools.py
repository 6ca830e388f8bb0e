"""The Voltmart example's order tools: the business rules on a temporary database, and offline
conversations with the real embedder in which the tools run and their results are the reply."""

import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import pytest_asyncio
from voltmart_example import load_example

import tactful
from tactful.domain.common import utcnow
from tactful.tools import PythonTool, ToolArgumentsError

TODAY = date(2025, 3, 14)  # a Friday


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load_example("voltmart_tools_example")


@pytest.fixture(scope="module")
def orders(example: ModuleType) -> ModuleType:
    return example.orders


@pytest_asyncio.fixture
async def tools(orders: ModuleType, tmp_path: Path) -> AsyncIterator[Any]:
    """The tool service over a fresh database file, its clock pinned to ``TODAY``."""
    service = orders.OrderTools(orders.OrderStore(tmp_path / "orders.db", today=lambda: TODAY))
    yield service
    await service.close()


def context() -> tactful.ToolContext:
    return tactful.ToolContext(agent_id="voltmart-support", session_id="s1", customer_id="c1")


async def call(tool: PythonTool[Any, Any], **arguments: Any) -> tactful.ToolResult:
    """Through ``run``, as the engine calls it: arguments validated against the schema."""
    return await tool.run(arguments, context())


def day(offset: int) -> str:
    value = TODAY + timedelta(days=offset)
    return f"{value:%A, %B} {value.day}"


# -- the tools on a temporary database ------------------------------------------------------------


async def test_the_database_is_created_and_seeded_once(
    orders: ModuleType, tools: Any, tmp_path: Path
) -> None:
    path = tmp_path / "orders.db"
    assert not path.exists()  # nothing happens before the first call
    await call(tools.change_address, order_id="VM42890018", new_address="1 New Road, Salem, OR")
    assert path.exists()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM orders").fetchone() == (10,)
    db.close()
    # Opened again (another server start), it keeps its data and is not seeded again.
    again = orders.OrderStore(path, today=lambda: TODAY + timedelta(days=3))
    order = await again.order("VM42890018")
    await again.close()
    assert order is not None and order["address"] == "1 New Road, Salem, OR"
    assert order["placed_on"] == (TODAY - timedelta(days=1)).isoformat()


async def test_specs_patterns_and_consequential_flags(tools: Any) -> None:
    specs = {spec.name: spec for spec in await tools.list_tools()}
    assert set(specs) == {
        "find_order",
        "order_status",
        "start_return",
        "refund",
        "change_address",
        "hand_off_to_person",
    }
    assert all(spec.id == f"voltmart:{name}" for name, spec in specs.items())
    consequential = {name for name, spec in specs.items() if spec.consequential}
    assert consequential == {"start_return", "refund", "change_address"}
    for name in ("order_status", "start_return", "refund", "change_address"):
        order_id = specs[name].parameters["properties"]["order_id"]
        assert order_id["pattern"] == r"^VM\d{8}$"
        assert order_id["description"] and order_id["examples"]
    assert "pattern" in specs["find_order"].parameters["properties"]["email"]
    assert specs["start_return"].required == ["order_id"]  # the reason is optional
    with pytest.raises(ToolArgumentsError, match="order_id"):
        await call(tools.order_status, order_id="12345678")


async def test_order_status(tools: Any) -> None:
    shipped = await call(tools.order_status, order_id="VM10234568")
    assert shipped.data["status"] == "shipped"
    assert shipped.data["eta"] == (TODAY + timedelta(days=3)).isoformat()
    assert shipped.fields == {
        "order_id": "VM10234568",
        "status": "shipped",
        "items": "Lumen 27-inch 4K monitor",
        "eta": day(3),
        "delivered_on": None,
        "order_problem": None,
    }
    delivered = await call(tools.order_status, order_id="VM10234567")
    assert delivered.fields["status"] == "delivered"
    assert delivered.fields["delivered_on"] == day(-12)
    assert delivered.fields["eta"] is None
    # The model sees no email or address.
    assert "email" not in delivered.data and "address" not in delivered.data


async def test_an_unknown_order_is_not_found(tools: Any) -> None:
    for tool, extra in [
        (tools.order_status, {}),
        (tools.start_return, {"reason": "too big"}),
        (tools.refund, {}),
        (tools.change_address, {"new_address": "1 New Road, Salem, OR"}),
    ]:
        result = await call(tool, order_id="VM00000000", **extra)
        assert result.data["ok"] is False, tool
        assert result.data["reason"].startswith("not found"), tool
    result = await call(tools.order_status, order_id="VM00000000")
    assert result.fields["status"] is None
    assert "no order with that number" in result.fields["order_problem"]


async def test_returns_only_within_30_days_of_delivery(tools: Any) -> None:
    started = await call(tools.start_return, order_id="VM10234567", reason="too quiet")
    assert started.data["ok"] is True and started.data["days_left"] == 18
    rma = started.fields["rma"]
    assert re.fullmatch(r"RMA-\d{6}", rma) and started.fields["return_problem"] is None
    again = await call(tools.start_return, order_id="VM10234567")
    assert again.data["already_open"] is True and again.fields["rma"] == rma

    edge = await call(tools.start_return, order_id="VM31478821")  # delivered exactly 30 days ago
    assert edge.data["ok"] is True

    late = await call(tools.start_return, order_id="VM20561234")
    assert late.data == {
        "ok": False,
        "order_id": "VM20561234",
        "reason": "it was delivered 45 days ago, past the 30-day return window (a faulty item "
        "is still covered by its warranty)",
    }
    assert late.fields["rma"] is None and "45 days ago" in late.fields["return_problem"]

    in_transit = await call(tools.start_return, order_id="VM10234568")
    assert in_transit.data["ok"] is False and "hasn't been delivered" in in_transit.data["reason"]


async def test_refunds_only_after_the_return_arrived_or_before_shipping(tools: Any) -> None:
    refunded = await call(tools.refund, order_id="VM20561235")  # its return was received
    assert refunded.data["ok"] is True and refunded.data["kind"] == "return"
    tx = refunded.fields["transaction_id"]
    assert re.fullmatch(r"TX-[0-9A-F]{10}", tx) and refunded.fields["amount"] == "$89.99"
    assert (await call(tools.refund, order_id="VM20561235")).fields["transaction_id"] == tx

    seeded = await call(tools.refund, order_id="VM42890017")  # refunded before
    assert seeded.data["already_refunded"] is True
    assert seeded.fields["transaction_id"] == "TX-7F3A9C21D0"

    waiting = await call(tools.refund, order_id="VM31478820")  # return started, not received
    assert waiting.data["ok"] is False and "RMA-593014" in waiting.data["reason"]
    assert waiting.fields["transaction_id"] is None and waiting.fields["refund_problem"]

    kept = await call(tools.refund, order_id="VM10234567")  # delivered, never returned
    assert kept.data["ok"] is False and "no return was started" in kept.data["reason"]

    cancelled = await call(tools.refund, order_id="VM10234569")  # not shipped yet
    assert cancelled.data["ok"] is True and cancelled.data["kind"] == "cancellation"
    status = await call(tools.order_status, order_id="VM10234569")
    assert status.fields["status"] == "cancelled" and status.fields["eta"] is None


async def test_address_changes_only_while_processing(tools: Any) -> None:
    changed = await call(
        tools.change_address, order_id="VM42890018", new_address="  12 Oak Street,\n Salem, OR "
    )
    assert changed.data["ok"] is True
    assert changed.fields == {
        "order_id": "VM42890018",
        "new_address": "12 Oak Street, Salem, OR",
        "address_problem": None,
    }
    refused = await call(tools.change_address, order_id="VM55012346", new_address="1 Elm St, X")
    assert refused.data["ok"] is False and "already shipped" in refused.data["reason"]
    assert refused.fields["new_address"] is None


async def test_find_orders_by_email(tools: Any) -> None:
    found = await call(tools.find_order, email="Dana@Example.com")
    assert [o["order_id"] for o in found.data["orders"]] == [
        "VM10234569",
        "VM10234568",
        "VM10234567",
    ]
    assert found.fields["orders"].startswith("VM10234569 (Pulse 65W USB-C charger")
    missing = await call(tools.find_order, email="nobody@example.com")
    assert missing.data["ok"] is False and missing.data["reason"].startswith("not found")
    assert missing.fields == {"email": "nobody@example.com", "orders": None}


async def test_where_the_database_lives(
    orders: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(orders.DB_ENV, raising=False)
    assert orders.database_path(tactful.Server(transient=True)) == ":memory:"
    assert orders.database_path(tactful.Server(data_dir=tmp_path)) == str(
        tmp_path / "voltmart-orders.db"
    )
    monkeypatch.setenv(orders.DB_ENV, str(tmp_path / "elsewhere.db"))
    assert orders.database_path(tactful.Server(transient=True)) == str(tmp_path / "elsewhere.db")


# -- offline conversations ------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def live(example: ModuleType) -> AsyncIterator[tuple[tactful.Server, tactful.Agent]]:
    """An offline server with the real embedder; its order database is in memory."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(example.orders.DB_ENV, raising=False)
        async with tactful.Server(transient=True, offline=True) as server:
            agent = await example.define(server)
            await example.define(server)  # idempotent: the same tools, nothing twice
            yield server, agent


async def _chat(
    server: tactful.Server, agent: tactful.Agent, *messages: str
) -> tuple[tactful.Session, list[tactful.Event]]:
    customer = await server.create_customer("Dana", id="vm-tools-dana")
    session = await server.create_session(agent, customer)
    return session, [await server.send(session, m) for m in messages]


async def _tool_calls(server: tactful.Server, session: tactful.Session) -> list[dict[str, Any]]:
    events = await server.runtime.store.list_events(session.id, kinds=[tactful.EventKind.TOOL])
    return [c for e in events for c in e.data["tool_calls"]]


@pytest.mark.embedder
@pytest.mark.asyncio(loop_scope="module")
async def test_offline_an_order_number_gets_the_looked_up_status(
    live: tuple[tactful.Server, tactful.Agent],
) -> None:
    server, agent = live
    session, [reply] = await _chat(server, agent, "where is my order VM10234568?")
    assert reply.data["message"].startswith("Your order VM10234568 (Lumen 27-inch 4K monitor) is ")
    assert "shipped and should arrive by" in reply.data["message"]
    assert reply.data["guidelines"] == ["vm-orders-track-lookup"]

    events = await server.runtime.store.list_events(session.id, kinds=[tactful.EventKind.TOOL])
    [event] = events
    assert event.trace_id == reply.trace_id
    [tool_call] = event.data["tool_calls"]
    assert tool_call["tool_id"] == "voltmart:order_status"
    assert tool_call["arguments"] == {"order_id": "VM10234568"}
    assert tool_call["error"] is None
    assert tool_call["result"]["data"]["status"] == "shipped"
    assert tool_call["result"]["fields"]["status"] == "shipped"


@pytest.mark.embedder
@pytest.mark.asyncio(loop_scope="module")
async def test_offline_without_a_number_the_agent_asks_for_it(
    live: tuple[tactful.Server, tactful.Agent],
) -> None:
    server, agent = live
    track = next(g for g in await agent.guidelines() if g.id == "vm-orders-track")
    canned = {c.id: c.value for c in await server.runtime.store.list(tactful.CannedResponse)}
    session, [reply] = await _chat(server, agent, "where is my order?")
    assert reply.data["message"] in {canned[c] for c in track.canned_responses}
    assert "order number" in reply.data["message"]
    assert await _tool_calls(server, session) == []
    trace = await server.runtime.store.get(tactful.Trace, reply.trace_id)
    assert [p.blocked for p in trace.composition.tool_plan] == [
        "missing required arguments: order_id"
    ]


@pytest.mark.embedder
@pytest.mark.asyncio(loop_scope="module")
async def test_offline_the_number_given_when_asked_is_looked_up(
    live: tuple[tactful.Server, tactful.Agent],
) -> None:
    server, agent = live
    session, [asked, answered] = await _chat(server, agent, "where is my order?", "VM10234567")
    assert "order number" in asked.data["message"]
    assert answered.data["message"] == (
        f"Your order VM10234567 (Aurora ANC headphones) was delivered on {_seeded_day(-12)}."
    )
    [tool_call] = await _tool_calls(server, session)
    assert tool_call["tool_id"] == "voltmart:order_status"


@pytest.mark.embedder
@pytest.mark.asyncio(loop_scope="module")
async def test_offline_returns_refunds_and_lookups_by_email(
    live: tuple[tactful.Server, tactful.Agent],
) -> None:
    server, agent = live
    # The return journey looks the order up and says why it cannot be returned.
    _, [refused] = await _chat(server, agent, "I'd like to return order VM20561234")
    assert refused.data["message"].startswith(
        f"Order VM20561234 (Nimbus robot vacuum) was delivered on {_seeded_day(-45)}, more than "
        "30 days ago, so it can no longer be returned for a refund."
    )
    session, [refund] = await _chat(server, agent, "where is my refund for VM20561235")
    assert re.fullmatch(
        r"The refund of \$89\.99 for order VM20561235 has been issued to your original payment "
        r"method\. Your refund reference is TX-[0-9A-F]{10}; .*",
        refund.data["message"],
    )
    [tool_call] = await _tool_calls(server, session)
    assert tool_call["tool_id"] == "voltmart:refund"
    assert tool_call["result"]["data"]["transaction_id"] in refund.data["message"]

    _, [found] = await _chat(
        server, agent, "I don't know my order number, my email is dana@example.com"
    )
    assert found.data["message"].startswith("I found these orders for dana@example.com: VM10234569")


def _seeded_day(offset: int) -> str:
    """A seed date of the live server, whose clock is tactful's (the real one, in UTC)."""
    value = utcnow().date() + timedelta(days=offset)
    return f"{value:%A, %B} {value.day}"
