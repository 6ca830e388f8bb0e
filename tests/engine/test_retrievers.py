"""Retrievers: data for this turn from Python functions attached to an agent (run while
matching runs), a guideline (while it is active) or a journey (while it is followed)."""

from __future__ import annotations

import asyncio

import pytest_asyncio

import tactful
from tactful.domain import Trace
from tactful.engine.compose import ReplyAnswer, TemplateChoice
from tactful.engine.match import JourneyCheck, MatchAnswer, answer_listed
from tactful.engine.retrievers import RetrieverContext, Retrievers
from tactful.llm.scripted import ScriptedCall, ScriptedGenerator

STOCK = "the customer asks whether a product is in stock"


class Model:
    def __init__(self) -> None:
        self.applies: set[str] = set()
        self.follow: str | None = None
        self.events: list[str] = []
        self.generator = ScriptedGenerator({"match": self.match, "compose": self.compose})

    def match(self, call: ScriptedCall) -> MatchAnswer:
        self.events.append("match answered")
        return answer_listed(
            call.prompt.user,
            lambda g: "yes" if g.condition in self.applies else None,
            journeys=lambda j: (
                JourneyCheck(
                    journey=j.number, status="following", evidence="x", step=j.step(self.follow)
                )
                if self.follow
                else None
            ),
        )

    def compose(self, call: ScriptedCall) -> ReplyAnswer | TemplateChoice:
        if call.schema is TemplateChoice:
            return TemplateChoice(templates=[1])
        return ReplyAnswer(message="ok")

    def prompt(self) -> str:
        return self.generator.calls_for("compose")[-1].prompt.user


@pytest_asyncio.fixture
async def model() -> Model:
    return Model()


async def _turn(server: tactful.Server, agent: tactful.Agent, text: str) -> tuple[str, Trace]:
    session = await server.create_session(agent)
    reply = await server.send(session, text)
    return reply.data["message"], await server.runtime.store.get(Trace, reply.trace_id)


async def test_an_agent_retriever_runs_while_matching_and_its_data_reaches_the_reply(
    server: tactful.Server, model: Model
) -> None:
    agent = await server.create_agent("Shop")
    await agent.create_guideline(STOCK, "say whether it is in stock")

    async def inventory(ctx: RetrieverContext) -> dict[str, int]:
        model.events.append("retriever started")
        await asyncio.sleep(0)
        return {"kettle": 3, "toaster": 0}

    assert agent.attach_retriever(inventory) is inventory
    model.applies = {STOCK}
    _, trace = await _turn(server, agent, "is the toaster in stock?")
    # It started before the matching call answered: it ran concurrently, not after.
    assert model.events.index("retriever started") < model.events.index("match answered")
    assert "Retrieved for this turn:\n- inventory: {'kettle': 3, 'toaster': 0}" in model.prompt()
    [described] = trace.composition.retrievers
    assert (described.name, described.owner, described.ok) == (
        "inventory",
        f"agent:{agent.id}",
        True,
    )


async def test_a_guideline_retriever_runs_only_while_its_guideline_is_active(
    server: tactful.Server, model: Model
) -> None:
    agent = await server.create_agent("Shop")
    stock = await agent.create_guideline(STOCK, "say whether it is in stock")
    ran: list[str] = []

    def inventory(ctx: RetrieverContext) -> str:
        ran.append(ctx.latest_message)
        return "kettles: 3"

    agent.attach_retriever(inventory, guideline=stock, id="stock")
    model.applies = set()
    _, trace = await _turn(server, agent, "hello")
    assert ran == [] and trace.composition.retrievers == []
    model.applies = {STOCK}
    await _turn(server, agent, "any kettles?")
    assert ran == ["any kettles?"]
    assert "- stock: kettles: 3" in model.prompt()


async def test_a_journey_retriever_runs_while_the_journey_is_followed(
    server: tactful.Server, model: Model
) -> None:
    agent = await server.create_agent("Shop")
    journey = await agent.create_journey("Return", conditions=["the customer wants a return"])
    await journey.initial_state.transition_to(chat_state="Ask for the order number")
    journey.attach_retriever(lambda ctx: "30-day window", id="policy")
    _, trace = await _turn(server, agent, "hi")
    assert trace.composition.retrievers == []
    model.applies, model.follow = {"the customer wants a return"}, "Ask for the order number"
    await _turn(server, agent, "I want a return")
    assert "- policy: 30-day window" in model.prompt()


async def test_a_retriever_result_gives_fields_templates_and_transient_guidelines(
    server: tactful.Server, model: Model
) -> None:
    agent = await server.create_agent("Shop", composition_mode=tactful.CompositionMode.STRICT)

    def inventory(ctx: RetrieverContext) -> tactful.RetrieverResult:
        return tactful.RetrieverResult(
            data="toasters: 0",
            canned_responses=["We have {{toasters}} toasters left."],
            fields={"toasters": 0},
            guidelines=[
                tactful.TransientGuideline(
                    condition="a product is sold out", action="offer to notify the customer"
                )
            ],
        )

    agent.attach_retriever(inventory)
    text, trace = await _turn(server, agent, "toasters?")
    # No guideline matched, yet strict mode can send the retriever's template with its field.
    assert text == "We have 0 toasters left."
    assert "When a product is sold out, then offer to notify the customer" in model.prompt()
    [transient] = [m for m in trace.matches if m.method == "retriever"]
    assert transient.guideline_id in trace.final_guideline_ids


async def test_a_failing_retriever_is_traced_and_the_turn_goes_on(
    server: tactful.Server, model: Model
) -> None:
    agent = await server.create_agent("Shop")

    def broken(ctx: RetrieverContext) -> str:
        raise RuntimeError("inventory service is down")

    agent.attach_retriever(broken)
    agent.attach_retriever(lambda ctx: "fine", id="other")
    text, trace = await _turn(server, agent, "hello")
    assert text == "ok"
    by_name = {r.name: r for r in trace.composition.retrievers}
    assert by_name["broken"].ok is False
    assert "inventory service is down" in (by_name["broken"].error or "")
    assert by_name["other"].ok is True


async def test_a_slow_retriever_times_out() -> None:
    registry = Retrievers(timeout=0.01)

    async def slow(ctx: RetrieverContext) -> str:
        await asyncio.Event().wait()
        return "never"

    registry.add("agent:a", "slow", slow)
    ctx = RetrieverContext(agent_id="a", session_id="s", customer_id="c", customer_name="C")
    found = await registry.run(ctx, ["agent:a", "agent:b"])
    [item] = found.items
    assert item.result is None and item.error == "timed out after 0.01s"
