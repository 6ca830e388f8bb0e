"""The τ²-bench adapter's tactful side (bench/tau2/adapter.py), without τ²: τ²'s retail tools
(their schemas, saved in ``tau2_retail_tools.json``) as a tactful tool service; a conversation
through a real HTTP server in which each tool call tactful makes is handed to a τ²-shaped
environment, run there once, and reported as τ²'s messages once; and the retail policy
document applying cleanly over those tools."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import pytest_asyncio

import tactful
from tactful.definitions.apply import plan_document, read_document
from tactful.definitions.files import load_documents
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import (
    GuidelineCheck,
    MatchAnswer,
    ProposedArgument,
    ProposedCall,
    listed_guidelines,
)
from tactful.errors import TactfulError
from tactful.llm.scripted import HashingEmbedder, ScriptedCall, ScriptedGenerator

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "tau2"
SCHEMAS: list[dict[str, Any]] = json.loads(
    (Path(__file__).with_name("tau2_retail_tools.json")).read_text()
)
WRITES = {
    "cancel_pending_order",
    "exchange_delivered_order_items",
    "modify_pending_order_address",
    "modify_pending_order_items",
    "modify_pending_order_payment",
    "modify_user_address",
    "return_delivered_order_items",
}
ORDER = "#W2378156"
LOOK_UP = "The customer asks about an order"
EXCHANGE = "The customer confirms the exchange"


def _adapter() -> ModuleType:
    """bench/tau2/adapter.py, loaded by path (bench/ is no package)."""
    known = sys.modules.get("tau2_bench_adapter")
    if known is not None:
        return known
    spec = importlib.util.spec_from_file_location("tau2_bench_adapter", BENCH / "adapter.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tau2_bench_adapter"] = module
    spec.loader.exec_module(module)
    return module


adapter = _adapter()


class FakeEnvironment:
    """τ²'s environment as the orchestrator uses it: a call in, a ToolMessage's content out;
    every call recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def execute(self, name: str, arguments: dict[str, Any]) -> Any:
        self.calls.append((name, arguments))
        if name == "get_order_details":
            return adapter.ToolAnswer(
                json.dumps({"order_id": arguments["order_id"], "status": "delivered"})
            )
        return adapter.ToolAnswer(json.dumps({"status": "exchange requested", **arguments}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _model(turn: dict[str, int]) -> ScriptedGenerator:
    """A model for which, on turn 1, the look-up guideline applies and proposes
    get_order_details on the order the customer wrote, and on turn 2 the exchange guideline
    proposes exchange_delivered_order_items with a list argument taken from the results."""

    def match(call: ScriptedCall) -> MatchAnswer:
        checks = []
        for g in listed_guidelines(call.prompt.user):
            if not g.detailed:
                continue
            calls: list[ProposedCall] = []
            if g.condition == LOOK_UP and turn["n"] == 1:
                order = ProposedArgument(name="order_id", value=ORDER, source="customer")
                calls = [ProposedCall(tool="get_order_details", arguments=[order])]
            elif g.condition == EXCHANGE and turn["n"] == 2:
                calls = [
                    ProposedCall(
                        tool="exchange_delivered_order_items",
                        arguments=[
                            ProposedArgument(name="order_id", value=ORDER, source="customer"),
                            ProposedArgument(
                                name="item_ids", value='["1151293680"]', source="context"
                            ),
                            ProposedArgument(
                                name="new_item_ids", value="7706410293", source="context"
                            ),
                            ProposedArgument(
                                name="payment_method_id",
                                value="credit_card_9513926",
                                source="context",
                            ),
                        ],
                    )
                ]
            checks.append(
                GuidelineCheck(
                    guideline=g.number,
                    condition_restated=g.condition,
                    evidence="scripted",
                    applies=bool(calls),
                    tool_calls=calls,
                )
            )
        return MatchAnswer(checks=checks)

    def compose(call: ScriptedCall) -> ReplyAnswer:
        return ReplyAnswer(message=f"Done with turn {turn['n']}.")

    return ScriptedGenerator({"match": match, "compose": compose})


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[tactful.Server, Any, dict[str, int]]]:
    """A tactful server on loopback whose agent looks orders up and exchanges items through
    the adapter's tool service (its executor: a bridge), on the scripted model."""
    turn = {"n": 0}
    bridge = adapter.ToolBridge()
    service = adapter.Tau2ToolService(SCHEMAS, bridge, consequential=WRITES)
    server = tactful.Server(
        transient=True, embedder=HashingEmbedder(), generator=_model(turn), port=_free_port()
    )
    async with server:
        await server.add_service(service)
        agent = await server.create_agent("Retail", id="retail")
        await agent.create_guideline(LOOK_UP, "look it up", tools=["tau2:get_order_details"])
        await agent.create_guideline(
            EXCHANGE, "exchange the items", tools=["tau2:exchange_delivered_order_items"]
        )
        await server.start_http()
        yield server, service, turn


def test_the_service_lists_tau2_tools_with_writes_consequential_and_lists_as_json() -> None:
    service = adapter.Tau2ToolService(SCHEMAS, adapter.ToolBridge(), consequential=WRITES)
    specs = {s.name: s for s in asyncio.run(service.list_tools())}
    assert set(specs) == {s["function"]["name"] for s in SCHEMAS}
    assert {n for n, s in specs.items() if s.consequential} == WRITES
    exchange = specs["exchange_delivered_order_items"]
    assert exchange.id == "tau2:exchange_delivered_order_items"
    assert exchange.parameters["properties"]["item_ids"]["type"] == "string"
    assert exchange.required == ["order_id", "item_ids", "new_item_ids", "payment_method_id"]
    # Back to τ²'s shapes: a JSON list, a comma-separated one, a single id.
    assert service.arguments(
        exchange.name, {"item_ids": '["1", "2"]', "new_item_ids": "3, 4", "order_id": "#W1"}
    ) == {"item_ids": ["1", "2"], "new_item_ids": ["3", "4"], "order_id": "#W1"}
    assert service.arguments(exchange.name, {"item_ids": "5"}) == {"item_ids": ["5"]}


async def test_each_tool_call_runs_once_in_the_environment_and_is_reported_once(
    served: tuple[tactful.Server, Any, dict[str, int]],
) -> None:
    server, service, turn = served
    env = FakeEnvironment()
    bridge = service.executor

    def simulate() -> tuple[list[dict[str, Any]], Any]:
        """τ²'s orchestrator's part: each tool call the agent returns goes to the environment
        and its result back; the trajectory is every message, in order."""
        conversation = adapter.Conversation(server.url, "retail", bridge, turn_timeout_s=60)
        trajectory: list[dict[str, Any]] = []
        try:
            conversation.open()
            for n, text in [(1, f"What is the status of {ORDER}?"), (2, "Yes, exchange it.")]:
                turn["n"] = n
                trajectory.append({"role": "user", "content": text})
                step = conversation.say(text)
                while isinstance(step, adapter.ToolRequest):
                    trajectory.append(step.tool_call())
                    answer = env.execute(step.name, step.arguments)
                    trajectory.append(step.tool_result(answer))
                    step.answer(answer)
                    step = conversation.next_step()
                assert step.status == "ready"
                assert conversation.unreported(step.trace_id, service) == []
                trajectory.append({"role": "assistant", "content": step.text})
            return trajectory, conversation.tool_events()
        finally:
            conversation.close()

    trajectory, tool_events = await asyncio.to_thread(simulate)

    exchange = {
        "order_id": ORDER,
        "item_ids": ["1151293680"],
        "new_item_ids": ["7706410293"],
        "payment_method_id": "credit_card_9513926",
    }
    assert env.calls == [
        ("get_order_details", {"order_id": ORDER}),
        ("exchange_delivered_order_items", exchange),
    ]
    roles = [(m["role"], bool(m.get("tool_calls"))) for m in trajectory]
    assert roles == [
        ("user", False),
        ("assistant", True),
        ("tool", False),
        ("assistant", False),
        ("user", False),
        ("assistant", True),
        ("tool", False),
        ("assistant", False),
    ]
    first, second = trajectory[1]["tool_calls"], trajectory[5]["tool_calls"]
    assert [(c["name"], c["arguments"], c["requestor"]) for c in first + second] == [
        ("get_order_details", {"order_id": ORDER}, "assistant"),
        ("exchange_delivered_order_items", exchange, "assistant"),
    ]
    # Each result follows its call, with its id (what τ²'s set_state checks when it replays).
    assert trajectory[2]["id"] == first[0]["id"] and trajectory[6]["id"] == second[0]["id"]
    assert first[0]["id"] != second[0]["id"]
    assert trajectory[3]["content"] == "Done with turn 1."
    # tactful recorded the same two calls, each with the environment's result.
    assert [(c["tool_id"], c["result"]["data"]["status"]) for c in tool_events] == [
        ("tau2:get_order_details", "delivered"),
        ("tau2:exchange_delivered_order_items", "exchange requested"),
    ]


async def test_a_call_in_a_session_no_simulation_drives_fails_instead_of_waiting() -> None:
    bridge = adapter.ToolBridge()
    answer = await bridge("no-such-session", "get_order_details", {"order_id": ORDER})
    assert answer.error and "no-such-session" in answer.content
    inbox = bridge.open("s1")
    waiting = asyncio.create_task(bridge("s1", "get_user_details", {"user_id": "u"}))
    request = await asyncio.to_thread(inbox.get, True, 5)
    assert request.name == "get_user_details"
    bridge.close("s1")  # the simulation ended: the waiting call fails, nothing hangs
    closed = await asyncio.wait_for(waiting, 5)
    assert closed.error and "ended" in closed.content


async def test_the_retail_policy_applies_cleanly_over_the_retail_tools() -> None:
    policy = BENCH / "retail.yaml"
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as server:
        service = adapter.Tau2ToolService(SCHEMAS, adapter.ToolBridge(), consequential=WRITES)
        agent_id = await adapter.install_agent(server, service, policy)
        assert agent_id == "tau2-retail"
        runtime = server.runtime
        [(_, document)] = load_documents([policy])
        wanted = await read_document(runtime.store, document)
        again = await plan_document(runtime.store, runtime.engine.tools, wanted)
        assert again.changes == []  # applied as written: nothing left to change
        named = {t for g in wanted.guidelines for t in g.tools} | {
            t for j in wanted.journeys for s in j.states for t in s.tools
        }
        assert named <= {f"tau2:{s['function']['name']}" for s in SCHEMAS}
        assert {j.title for j in wanted.journeys} == {
            "Cancel a pending order",
            "Return delivered items",
        }


async def test_the_retail_policy_is_refused_without_a_tool_it_names() -> None:
    without = [s for s in SCHEMAS if s["function"]["name"] != "cancel_pending_order"]
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as server:
        service = adapter.Tau2ToolService(without, adapter.ToolBridge())
        with pytest.raises(TactfulError, match="cancel_pending_order"):
            await adapter.install_agent(server, service, BENCH / "retail.yaml")
