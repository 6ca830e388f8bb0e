"""Planning tool calls: missing arguments, guesses, consequential tools, hidden arguments."""

from __future__ import annotations

from typing import Any

from tactful.domain import Agent, Customer, Guideline, MatchVerdict, Session, ToolSpec
from tactful.engine.context import TurnContext, Utterance
from tactful.engine.match import Match
from tactful.engine.retrieve import Ranked
from tactful.engine.tools import plan_tool_calls

REFUND = ToolSpec(
    service_name="shop",
    name="refund",
    description="Refund an order",
    parameters={
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "pattern": "^VM\\d{8}$"},
            "reason": {"type": "string"},
            "customer_id": {"type": "string", "x-tactful-hidden": True},
        },
    },
    required=["order_id", "customer_id"],
    consequential=True,
)
LOOKUP = REFUND.model_copy(update={"name": "lookup", "consequential": False})
SPECS = {"shop:refund": REFUND, "shop:lookup": LOOKUP}


def ctx(*customer_says: str) -> TurnContext:
    agent = Agent(name="A")
    return TurnContext(
        agent=agent,
        session=Session(agent_id=agent.id, customer_id="c1"),
        customer=Customer(id="c1", name="Ann"),
        messages=[Utterance("customer", t, i) for i, t in enumerate(customer_says)],
        guidelines=[],
        canned_responses=[],
        terms=[],
    )


def match(tools: list[str], calls: list[dict[str, Any]], method: str = "model") -> Match:
    g = Guideline(id="g", condition="c", action="a", tools=tools)
    verdict = MatchVerdict(
        guideline_id="g", condition="c", applies=True, method=method, tool_calls=calls
    )
    return Match(Ranked(g, 1.0), verdict)


def call(tool: str, **args: tuple[Any, str]) -> dict[str, Any]:
    return {
        "tool": tool,
        "arguments": [{"name": k, "value": v, "source": s} for k, (v, s) in args.items()],
    }


def test_arguments_the_customer_gave_run_and_hidden_ones_come_from_context() -> None:
    m = match(["shop:refund"], [call("refund", order_id=("VM12345678", "customer"))])
    [planned] = plan_tool_calls([m], SPECS, ctx("refund VM12345678 please"))
    assert planned.blocked is None
    assert planned.arguments == {"order_id": "VM12345678", "customer_id": "c1"}
    assert planned.sources == {"order_id": "customer", "customer_id": "context"}


def test_missing_required_argument_blocks_the_call_and_names_it() -> None:
    m = match(["shop:lookup"], [call("lookup", order_id=(None, "missing"))])
    [planned] = plan_tool_calls([m], SPECS, ctx("where is my order"))
    assert planned.missing == ["order_id"]
    assert planned.blocked == "missing required arguments: order_id"


def test_consequential_tool_refuses_guesses_even_when_labelled_customer() -> None:
    claimed = match(["shop:refund"], [call("refund", order_id=("VM99999999", "customer"))])
    [planned] = plan_tool_calls([claimed], SPECS, ctx("refund my last order"))
    assert planned.guessed == ["order_id"]
    assert planned.blocked is not None and "guessed arguments: order_id" in planned.blocked
    inferred = match(["shop:lookup"], [call("lookup", order_id=("VM99999999", "inferred"))])
    [lookup] = plan_tool_calls([inferred], SPECS, ctx("where is my last order"))
    assert lookup.blocked is None and lookup.guessed == ["order_id"]  # not consequential


def test_hidden_arguments_are_never_taken_from_the_model() -> None:
    m = match(
        ["shop:lookup"],
        [call("lookup", order_id=("VM12345678", "customer"), customer_id=("evil", "customer"))],
    )
    [planned] = plan_tool_calls([m], SPECS, ctx("VM12345678"))
    assert planned.arguments["customer_id"] == "c1"


def test_no_proposal_from_the_model_means_no_call_and_unknown_tools_are_reported() -> None:
    assert plan_tool_calls([match(["shop:lookup"], [])], SPECS, ctx("hi")) == []
    [unknown] = plan_tool_calls([match(["shop:nope"], [])], SPECS, ctx("hi"))
    assert unknown.blocked == "unknown tool 'shop:nope'"


def test_offline_tier_takes_arguments_from_patterns_in_what_the_customer_wrote() -> None:
    m = match(["shop:lookup"], [], method="offline-similarity")
    [planned] = plan_tool_calls([m], SPECS, ctx("my order is VM12345678", "where is it?"))
    assert planned.arguments["order_id"] == "VM12345678" and planned.blocked is None
    [nothing] = plan_tool_calls([m], SPECS, ctx("where is my order?"))
    assert nothing.missing == ["order_id"]
