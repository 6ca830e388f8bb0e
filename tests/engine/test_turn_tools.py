"""Tools through whole turns: gated calls, missing arguments, guesses, parallel runs, timeouts,
errors, hand-off, and the offline tier."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest_asyncio

import tactful
from tactful.domain import EventKind, Reevaluation, SessionMode, ToolSpec, Trace
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import (
    GuidelineCheck,
    MatchAnswer,
    ProposedArgument,
    ProposedCall,
    listed_guidelines,
)
from tactful.llm.scripted import HashingEmbedder, ScriptedCall, ScriptedGenerator
from tactful.tools import SessionControl, ToolContext, ToolResult, ToolService

GIVEN = ("order_id", "VM12345678", "customer")
ORDER = Annotated[str, tactful.ToolParam(description="VM and 8 digits", examples=["VM12345678"])]
calls: list[str] = []


@tactful.tool
async def order_status(context: tactful.ToolContext, order_id: ORDER) -> tactful.ToolResult:
    """Look up an order's status."""
    assert context.session is not None and context.customer is not None
    calls.append(f"status {order_id}")
    return tactful.ToolResult(data={"status": "shipped"}, fields={"status": "shipped"})


@tactful.tool(consequential=True)
async def refund(context: tactful.ToolContext, order_id: ORDER) -> str:
    """Refund an order."""
    calls.append(f"refund {order_id}")
    return "refunded"


@tactful.tool(timeout_s=0.05)
async def slow(context: tactful.ToolContext) -> str:
    """Never answers."""
    await asyncio.Event().wait()
    return "never"


@tactful.tool
async def broken(context: tactful.ToolContext) -> str:
    """Always fails."""
    raise RuntimeError("database is down")


@tactful.tool
async def human(context: tactful.ToolContext) -> tactful.ToolResult:
    """Hand the conversation to a person."""
    await context.emit_message("Connecting you with a colleague.")
    return tactful.ToolResult(
        data="queued", control=SessionControl.HANDOFF, handoff_reason="asked for a person"
    )


def matcher(args: dict[str, list[tuple[str, Any, str]]]) -> Any:
    """Every detailed guideline whose condition is in ``args`` applies, proposing its calls."""

    def answer(call: ScriptedCall) -> MatchAnswer:
        checks = []
        for g in listed_guidelines(call.prompt.user):
            if not g.detailed:
                continue
            proposals = [
                ProposedCall(
                    tool=tool,
                    arguments=[ProposedArgument(name=n, value=v, source=src)]  # type: ignore[arg-type]
                    if n
                    else [],
                )
                for tool, (n, v, src) in [(t, a) for t, a in args.get(g.condition, [])]
            ]
            checks.append(
                GuidelineCheck(
                    guideline=g.number,
                    condition_restated=g.condition,
                    evidence="yes" if g.condition in args else "no",
                    applies=g.condition in args,
                    tool_calls=proposals,
                )
            )
        return MatchAnswer(checks=checks)

    return answer


@pytest_asyncio.fixture
async def model() -> ScriptedGenerator:
    calls.clear()
    return ScriptedGenerator({"compose": lambda c: ReplyAnswer(message="done")})


async def _agent(server: tactful.Server) -> tactful.Agent:
    agent = await server.create_agent("Shop")
    await agent.create_guideline("asks about an order", "look it up", tools=[order_status])
    await agent.create_guideline("wants a refund", "refund it", tools=[refund])
    await agent.create_guideline("asks about the weather", "talk about the weather")
    return agent


async def _trace(server: tactful.Server, reply: tactful.Event) -> Trace:
    return await server.runtime.store.get(Trace, reply.trace_id)


async def test_a_tool_runs_only_while_its_guideline_is_active(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await _agent(server)
    session = await server.create_session(agent)
    model.on("match", matcher({"asks about the weather": []}))
    await server.send(session, "nice weather VM12345678")
    assert calls == []
    model.on(
        "match",
        matcher(
            {"asks about an order": [("order_status", ("order_id", "VM12345678", "customer"))]}
        ),
    )
    reply = await server.send(session, "where is VM12345678?")
    assert calls == ["status VM12345678"]
    [event] = await server.runtime.store.list_events(session.id, kinds=[EventKind.TOOL])
    [call] = event.data["tool_calls"]
    assert call["tool_id"] == "local:order_status" and call["result"]["data"] == {
        "status": "shipped"
    }
    assert event.trace_id == reply.trace_id
    assert "local:order_status returned: {'status': 'shipped'}" in model.calls[-1].prompt.user
    trace = await _trace(server, reply)
    candidate = next(c for c in trace.candidates if c.condition == "asks about an order")
    assert "has tools" in candidate.reasons
    assert len([c for c in model.calls if c.stage == "match"]) == 2  # one per turn: args rode along


async def test_missing_argument_asks_for_exactly_it(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await _agent(server)
    session = await server.create_session(agent)
    model.on(
        "match", matcher({"asks about an order": [("order_status", ("order_id", None, "missing"))]})
    )
    reply = await server.send(session, "where is my order?")
    assert calls == []
    trace = await _trace(server, reply)
    [plan] = trace.composition.tool_plan
    assert plan.missing == ["order_id"]
    prompt = model.calls[-1].prompt.user
    assert "local:order_status needs order_id (VM and 8 digits): ask the customer" in prompt


async def test_consequential_tool_never_runs_on_a_guess(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await _agent(server)
    session = await server.create_session(agent)
    model.on(
        "match", matcher({"wants a refund": [("refund", ("order_id", "VM00000001", "customer"))]})
    )
    reply = await server.send(session, "refund my last order please")
    assert calls == []
    trace = await _trace(server, reply)
    assert "guessed arguments: order_id" in (trace.composition.tool_plan[0].blocked or "")


async def test_calls_run_in_parallel_and_failures_degrade_the_turn(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await server.create_agent("Shop")
    await agent.create_guideline(
        "anything goes", "try everything", tools=[slow, broken, order_status]
    )
    session = await server.create_session(agent)
    model.on(
        "match",
        matcher(
            {
                "anything goes": [
                    ("slow", ("", None, "")),
                    ("broken", ("", None, "")),
                    ("order_status", GIVEN),
                ]
            }
        ),
    )
    reply = await server.send(session, "VM12345678 anything")
    assert reply.data["message"] == "done"
    [event] = await server.runtime.store.list_events(session.id, kinds=[EventKind.TOOL])
    by_tool = {c["tool_id"]: c for c in event.data["tool_calls"]}
    assert by_tool["local:slow"]["timed_out"] is True
    assert "RuntimeError: database is down" in by_tool["local:broken"]["error"]
    assert by_tool["local:order_status"]["result"]["data"] == {"status": "shipped"}
    prompt = model.calls[-1].prompt.user
    assert "local:broken FAILED: RuntimeError: database is down. Apologize" in prompt


async def test_the_settings_give_the_timeout_of_tools_without_their_own(
    model: ScriptedGenerator,
) -> None:
    @tactful.tool
    async def hang(context: tactful.ToolContext) -> str:
        """Never answers."""
        await asyncio.Event().wait()
        return "never"

    settings = tactful.Settings(tool_timeout_s=0.05)
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), generator=model, settings=settings
    ) as server:
        agent = await server.create_agent("Shop")
        await agent.create_guideline("anything goes", "try it", tools=[hang])
        model.on("match", matcher({"anything goes": [("hang", ("", None, ""))]}))
        session = await server.create_session(agent)
        await server.send(session, "anything")
        [event] = await server.runtime.store.list_events(session.id, kinds=[EventKind.TOOL])
    [call] = event.data["tool_calls"]
    assert call["timed_out"] is True and call["error"] == "timed out after 0.05 s"


async def test_handoff_switches_the_session_to_manual(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await server.create_agent("Shop")
    await agent.create_guideline("wants a person", "hand over", tools=[human])
    session = await server.create_session(agent)
    model.on("match", matcher({"wants a person": [("human", ("", None, ""))]}))
    await server.send(session, "a human please")
    stored = await server.runtime.store.get(tactful.Session, session.id)
    assert stored.mode is SessionMode.MANUAL
    messages = await server.runtime.store.list_events(session.id, kinds=[EventKind.MESSAGE])
    assert "Connecting you with a colleague." in [m.data["message"] for m in messages]
    # Why, in the trace, the session and on the timeline (with the turn's trace id).
    reply = messages[-1]
    trace = await _trace(server, reply)
    assert trace.composition.handoff == "local:human"
    assert trace.composition.handoff_reason == "asked for a person"
    assert stored.handoff is not None and stored.handoff.reason == "asked for a person"
    assert stored.handoff.by == "tool:local:human" and stored.handoff.trace_id == trace.id
    [step] = await server.runtime.store.list_events(session.id, kinds=[EventKind.CUSTOM])
    assert step.trace_id == trace.id
    assert step.data == {
        "handoff": "requested",
        "by": "tool:local:human",
        "reason": "asked for a person",
    }


async def test_offline_tier_runs_tools_on_patterns_the_customer_wrote() -> None:
    calls.clear()
    settings = tactful.Settings(offline_match_threshold=0.3)
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), offline=True, settings=settings
    ) as server:
        agent = await server.create_agent("Shop", composition_mode=tactful.CompositionMode.STRICT)
        found = await agent.create_canned_response("Order status: {{status}}.")
        ask = await agent.create_canned_response("Please send your order number (VM + 8 digits).")

        @tactful.tool(name="lookup")
        async def lookup(
            context: tactful.ToolContext,
            order_id: Annotated[str, tactful.ToolParam(description="VM and 8 digits")],
        ) -> tactful.ToolResult:
            return tactful.ToolResult(data="ok", fields={"status": "shipped"})

        lookup.spec.parameters["properties"]["order_id"]["pattern"] = r"^VM\d{8}$"
        await agent.create_guideline(
            "where is my order status",
            "look the order up",
            tools=[lookup],
            canned_responses=[found, ask],
        )
        session = await server.create_session(agent)
        reply = await server.send(session, "where is my order status VM12345678")
        assert reply.data["message"] == "Order status: shipped."
        other = await server.create_session(agent)
        reply = await server.send(other, "where is my order status")
        assert reply.data["message"] == "Please send your order number (VM + 8 digits)."


async def test_a_result_re_evaluates_the_guidelines_it_can_change(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    from tactful.domain import EndpointKind, RelationshipKind

    agent = await server.create_agent("Shop")
    await agent.create_guideline("asks about an order", "look it up", tools=[order_status])
    review = await agent.create_guideline("the order was shipped", "mention tracking", id="rv")
    relation = await agent.reevaluate_after(order_status, review)
    assert relation == await agent.reevaluate_after(order_status, review)  # idempotent
    assert (relation.kind, relation.source.kind) == (
        RelationshipKind.REEVALUATION,
        EndpointKind.TOOL,
    )
    first = matcher({"asks about an order": [("order_status", GIVEN)]})

    def respond(call: ScriptedCall) -> MatchAnswer:
        if "[tool results]" not in call.prompt.user:
            return first(call)
        shipped = "'status': 'shipped'" in call.prompt.user
        return matcher({"the order was shipped": []} if shipped else {})(call)

    model.on("match", respond)
    session = await server.create_session(agent)
    reply = await server.send(session, "where is VM12345678?")
    assert review.id in reply.data["guidelines"] and len(reply.data["guidelines"]) == 2
    trace = await _trace(server, reply)
    assert trace.composition.reevaluations == [
        Reevaluation(iteration=2, rechecked=[review.id], now_active=[review.id])
    ]
    assert [c.stage for c in trace.model_calls] == ["match", "match", "compose"]


async def test_without_reevaluation_relationships_no_extra_wave(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await _agent(server)
    model.on("match", matcher({"asks about an order": [("order_status", GIVEN)]}))
    session = await server.create_session(agent)
    reply = await server.send(session, "where is VM12345678?")
    trace = await _trace(server, reply)
    assert [c.stage for c in trace.model_calls] == ["match", "compose"]
    assert trace.composition.reevaluations == []


async def test_strict_mode_prefers_the_template_built_on_this_turns_result() -> None:
    settings = tactful.Settings(offline_match_threshold=0.3)
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), offline=True, settings=settings
    ) as server:
        agent = await server.create_agent("Shop", composition_mode=tactful.CompositionMode.STRICT)

        @tactful.tool(name="process_refund")
        async def process_refund(
            context: tactful.ToolContext,
            order_id: Annotated[str, tactful.ToolParam(description="VM and 8 digits")],
        ) -> tactful.ToolResult:
            return tactful.ToolResult(data="ok", fields={"transaction_id": "TX-42"})

        process_refund.spec.parameters["properties"]["order_id"]["pattern"] = r"^VM\d{8}$"
        generic = await agent.create_canned_response(
            "Refunds for your order take five business days to process my friend."
        )
        done = await agent.create_canned_response(
            "Refund processed. Transaction ID: {{transaction_id}}"
        )
        await agent.create_guideline(
            "refund for my order",
            "process the refund",
            tools=[process_refund],
            canned_responses=[generic, done],
        )
        with_number = await server.send(
            await server.create_session(agent), "refund for my order VM12345678"
        )
        assert with_number.data["message"] == "Refund processed. Transaction ID: TX-42"
        without = await server.send(await server.create_session(agent), "refund for my order")
        assert without.data["message"].startswith("Refunds for your order take five")


async def test_choice_providers_give_the_model_its_options(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    async def stores(context: tactful.ToolContext) -> list[str]:
        assert context.customer is not None
        return ["Berlin Mitte", "Hamburg Hafen"]

    @tactful.tool(name="book_pickup")
    async def book_pickup(
        context: tactful.ToolContext,
        store: Annotated[str, tactful.ToolParam(description="the store", choices=stores)],
    ) -> str:
        return f"booked at {store}"

    agent = await server.create_agent("Shop")
    await agent.create_guideline("wants store pickup", "book it", tools=[book_pickup])
    model.on(
        "match", matcher({"wants store pickup": [("book_pickup", ("store", "Paris", "customer"))]})
    )
    session = await server.create_session(agent)
    reply = await server.send(session, "pickup at Paris please")
    prompt = model.calls_for("match")[0].prompt.user
    assert "one of Berlin Mitte, Hamburg Hafen" in prompt
    [event] = await server.runtime.store.list_events(session.id, kinds=[EventKind.TOOL])
    [call] = event.data["tool_calls"]
    assert call["result"] is None and "store" in call["error"]  # not one of the choices
    assert reply.data["message"] == "done"


class Branches(ToolService):
    """A service that is not Python and knows at run time which branches exist."""

    name = "crm"

    async def list_tools(self) -> list[ToolSpec]:
        schema = {"type": "string", "x-tactful-choices": True}
        return [
            ToolSpec(
                service_name="crm",
                name="visit",
                parameters={"type": "object", "properties": {"branch": schema}},
                required=["branch"],
            )
        ]

    async def choices_for(self, tool: str, param: str, context: ToolContext) -> list[str] | None:
        assert (tool, param) == ("visit", "branch") and context.customer is not None
        return ["North", "South"]

    async def call(self, tool: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        return ToolResult(data=f"visiting {arguments['branch']}")


async def test_any_service_may_give_the_model_its_options(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    await server.add_service(Branches())
    agent = await server.create_agent("Shop")
    await agent.create_guideline("wants a visit", "book it", tools=["crm:visit"])
    model.on("match", matcher({"wants a visit": [("visit", ("branch", "North", "customer"))]}))
    reply = await server.send(await server.create_session(agent), "a visit at North please")
    assert "one of North, South" in model.calls_for("match")[0].prompt.user
    [call] = (await _trace(server, reply)).composition.tool_calls
    assert call.result is not None and call.result.data == "visiting North"
