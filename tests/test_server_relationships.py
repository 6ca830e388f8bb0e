"""The SDK's relationships, code matchers and hooks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

import tactful
from tactful.domain import Endpoint, Event, EventKind, EventSource, Relationship, RelationshipKind
from tactful.engine.context import load_context
from tactful.engine.hooks import Hooks, MatchContext
from tactful.llm.scripted import HashingEmbedder

K = RelationshipKind


@pytest_asyncio.fixture
async def server() -> AsyncIterator[tactful.Server]:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        yield s


async def _stored(server: tactful.Server) -> list[tuple[str, str, str]]:
    return sorted(
        (r.kind.value, r.source.id, r.target.id)
        for r in await server.runtime.store.list(Relationship)
    )


async def _define(server: tactful.Server) -> dict[str, str]:
    agent = await server.create_agent("Voltmart", "Electronics support")
    billing = await server.create_tag("billing")
    refund = await agent.create_guideline("the customer wants a refund", "explain refunds")
    angry = await agent.create_guideline("the customer is angry", "apologise first")
    order = await agent.create_observation("the customer gave an order number", id="has-order")
    vague = await agent.create_observation("the customer says something is wrong", id="vague")
    exchange = await agent.create_guideline("the customer wants an exchange", "explain exchanges")
    invoice = await agent.create_guideline(
        "the customer asks for an invoice", "send it", tags=[billing.id]
    )
    await agent.prioritize(angry, over=refund)
    await agent.entail(refund, order)
    await agent.exclude(refund, exchange)
    await agent.depend(refund, on=[order], on_any=["has-order", angry.id])
    await agent.disambiguate(vague, [refund, exchange])
    await agent.prioritize(billing, over=exchange)
    return {
        "agent": agent.id,
        "billing": billing.id,
        "refund": refund.id,
        "angry": angry.id,
        "exchange": exchange.id,
        "invoice": invoice.id,
    }


async def test_relationships_persist_and_are_idempotent_across_restarts(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    async with tactful.Server(data_dir=tmp_path, embedder=embedder, offline=True) as server:
        ids = await _define(server)
        await _define(server)
        first = await server.runtime.store.list(Relationship)
        assert await _stored(server) == sorted(
            [
                ("priority", ids["angry"], ids["refund"]),
                ("entailment", ids["refund"], "has-order"),
                ("exclusion", ids["refund"], ids["exchange"]),
                ("dependency", ids["refund"], "has-order"),
                ("dependency_any", ids["refund"], "has-order"),
                ("dependency_any", ids["refund"], ids["angry"]),
                ("disambiguation", "vague", ids["refund"]),
                ("disambiguation", "vague", ids["exchange"]),
                ("priority", ids["billing"], ids["exchange"]),
            ]
        )
        tag_ended = next(r for r in first if r.source.id == ids["billing"])
        assert tag_ended.source == Endpoint.tag(ids["billing"])

    async with tactful.Server(data_dir=tmp_path, embedder=embedder, offline=True) as server:
        again = await _define(server)
        assert again == ids
        assert [r.id for r in await server.runtime.store.list(Relationship)] == [
            r.id for r in first
        ]
        agent = await server.find_agent(id=ids["agent"])
        assert agent is not None
        assert len(await agent.relationships()) == len(first)


async def test_a_relationship_made_elsewhere_is_not_duplicated(server: tactful.Server) -> None:
    agent = await server.create_agent("A")
    a = await agent.create_guideline("a", "x")
    b = await agent.create_guideline("b", "y")
    # Created without the SDK's key, e.g. by an older version.
    made = await server.runtime.store.create(
        Relationship(
            kind=K.PRIORITY, source=Endpoint.guideline(a.id), target=Endpoint.guideline(b.id)
        )
    )
    assert (await agent.prioritize(a, over=b)).id == made.id
    assert len(await server.runtime.store.list(Relationship)) == 1


async def test_cycles_are_rejected_with_the_cycle_named(server: tactful.Server) -> None:
    agent = await server.create_agent("A")
    a = await agent.create_guideline("a", "x", id="a")
    b = await agent.create_guideline("b", "y", id="b")
    c = await agent.create_guideline("c", "z", id="c")
    await agent.entail(a, b)
    await agent.entail(b, c)
    with pytest.raises(tactful.ValidationError, match="cycle: c -> a -> b -> c"):
        await agent.entail(c, a)
    with pytest.raises(tactful.ValidationError, match="cycle: a -> a"):
        await agent.prioritize(a, over=a)
    await agent.depend(a, on=[b])
    # All or nothing: the first dependency is not kept when the second closes a cycle.
    with pytest.raises(tactful.ValidationError, match="cycle: b -> a -> b"):
        await agent.depend(b, on=[c], on_any=[a])
    assert await _stored(server) == [
        ("dependency", "a", "b"),
        ("entailment", "a", "b"),
        ("entailment", "b", "c"),
    ]


async def test_a_cycle_through_a_tag_is_rejected(server: tactful.Server) -> None:
    agent = await server.create_agent("A")
    vip = await server.create_tag("vip")
    a = await agent.create_guideline("a", "x", id="a")
    await agent.create_guideline("b", "y", id="b", tags=[vip.id])
    await agent.prioritize(a, over=vip)
    with pytest.raises(tactful.ValidationError, match=f"cycle: b -> a -> {vip.id} -> b"):
        await agent.prioritize("b", over=a)


async def test_unknown_ends_and_bad_arguments(server: tactful.Server) -> None:
    agent = await server.create_agent("A")
    a = await agent.create_guideline("a", "x", id="a")
    with pytest.raises(tactful.NotFoundError, match="Guideline 'nope' was not found"):
        await agent.entail(a, "nope")
    ghost = tactful.Tag(name="ghost")
    with pytest.raises(tactful.NotFoundError, match="Tag"):
        await agent.prioritize(ghost, over=a)
    with pytest.raises(tactful.ValidationError, match="at least two options"):
        await agent.disambiguate(a, ["a"])
    with pytest.raises(tactful.ValidationError, match="on_any"):
        await agent.depend(a)
    with pytest.raises(tactful.ValidationError, match="two different ends"):
        await agent.exclude(a, a)
    # A tool id naming no stored tool, as POST /relationships refuses it.
    with pytest.raises(tactful.NotFoundError, match="Tool 'orders:nope' was not found"):
        await agent.reevaluate_after("orders:nope", a)
    assert await server.runtime.store.list(Relationship) == []


async def test_match_always_persists(server: tactful.Server) -> None:
    agent = await server.create_agent("A")
    polite = await agent.create_guideline("always", "be polite")
    assert not polite.always
    assert (await agent.match_always(polite)).always
    assert (await agent.match_always(polite.id)).always
    stored = await server.runtime.store.get(tactful.Guideline, polite.id)
    assert stored.always


# -- code matchers and hooks ----------------------------------------------------------------------


def _ctx(agent_id: str = "ag", message: str = "I want a refund") -> MatchContext:
    return MatchContext(
        agent_id=agent_id,
        session_id="s",
        customer_id="c",
        customer_name="Ada",
        customer_metadata={"tier": "gold"},
        latest_message=message,
        messages=(("customer", message),),
    )


async def test_sdk_registers_matchers_and_hooks_on_the_engine(server: tactful.Server) -> None:
    agent = await server.create_agent("A")
    refund = await agent.create_guideline("refund", "explain refunds")

    def wants_refund(ctx: MatchContext) -> bool:
        return "refund" in ctx.latest_message

    seen: list[str] = []

    async def selected(ctx: MatchContext, guideline: tactful.Guideline) -> None:
        seen.append(f"selected {guideline.id}")

    @agent.on_message
    def sent(ctx: MatchContext, event: Event) -> None:
        seen.append(f"sent {event.data['message']}")

    assert agent.match_with(refund, wants_refund) is wants_refund
    agent.on_selected(refund.id, selected)
    agent.on_selected(refund.id, selected)  # registering twice calls it once
    agent.on_message(sent)

    hooks = server.runtime.engine.hooks
    assert isinstance(hooks, Hooks)
    assert hooks.matchers == {refund.id: wants_refund}
    assert hooks.on_selected == {refund.id: [selected]}
    assert hooks.on_message == {agent.id: [sent]}

    assert await hooks.run_matchers(_ctx(agent.id)) == {refund.id: True}
    assert await hooks.run_matchers(_ctx(agent.id, "hello")) == {refund.id: False}
    assert await hooks.run_matchers(_ctx(agent.id), guideline_ids=["other"]) == {}
    assert await hooks.fire_selected(_ctx(agent.id), [refund]) == []
    event = Event(
        session_id="s",
        offset=1,
        kind=EventKind.MESSAGE,
        source=EventSource.AI_AGENT,
        data={"message": "Refunds take 5 days."},
    )
    assert await hooks.fire_message(_ctx(agent.id), event) == []
    assert await hooks.fire_message(_ctx("another agent"), event) == []
    assert seen == [f"selected {refund.id}", "sent Refunds take 5 days."]

    with pytest.raises(tactful.ValidationError):
        agent.match_with(tactful.Tag(name="t"), wants_refund)  # type: ignore[arg-type]


async def test_failing_callables_never_escape(caplog: pytest.LogCaptureFixture) -> None:
    hooks = Hooks(timeout=0.05)

    def boom(ctx: MatchContext) -> bool:
        raise RuntimeError("no database")

    async def slow(ctx: MatchContext) -> bool:
        await asyncio.sleep(1)
        return True

    async def async_yes(ctx: MatchContext) -> bool:
        return True

    def not_a_bool(ctx: MatchContext) -> bool:
        return "yes"  # type: ignore[return-value]

    for gid, predicate in [("a", boom), ("b", slow), ("c", async_yes), ("d", not_a_bool)]:
        hooks.add_matcher(gid, predicate)
    with caplog.at_level(logging.WARNING, logger="tactful.hooks"):
        verdicts = await hooks.run_matchers(_ctx())
    assert verdicts == {"a": False, "b": False, "c": True, "d": False}
    assert verdicts.errors == [
        "code matcher test_failing_callables_never_escape.<locals>.boom of guideline a: "
        "RuntimeError: no database",
        "code matcher test_failing_callables_never_escape.<locals>.slow of guideline b: "
        "timed out after 0.05s",
        "code matcher test_failing_callables_never_escape.<locals>.not_a_bool of guideline d: "
        "returned 'yes', not True or False",
    ]
    assert len(caplog.records) == 3

    def bad_hook(ctx: MatchContext, guideline: tactful.Guideline) -> None:
        raise ValueError("oops")

    def bad_message_hook(ctx: MatchContext, event: Event) -> None:
        raise ValueError("down")

    hooks.add_selected("a", bad_hook)
    hooks.add_message("ag", bad_message_hook)
    guideline = tactful.Guideline(id="a", condition="a", action="x")
    [error] = await hooks.fire_selected(_ctx(), [guideline])
    assert error.endswith("bad_hook of guideline a: ValueError: oops")
    event = Event(session_id="s", offset=0, kind=EventKind.MESSAGE, source=EventSource.AI_AGENT)
    [error] = await hooks.fire_message(_ctx(), event)
    assert error.endswith("bad_message_hook of agent ag: ValueError: down")


async def test_match_context_of_a_turn(server: tactful.Server) -> None:
    agent = await server.create_agent("A")
    customer = await server.create_customer("Ada", metadata={"tier": "gold"})
    session = await server.create_session(agent, customer)
    await server.runtime.store.append_event(
        session.id,
        kind=EventKind.MESSAGE,
        source=EventSource.CUSTOMER,
        data={"message": "hello"},
    )
    ctx = MatchContext.of(await load_context(server.runtime.store, session.id))
    assert ctx == MatchContext(
        agent_id=agent.id,
        session_id=session.id,
        customer_id=customer.id,
        customer_name="Ada",
        customer_metadata={"tier": "gold"},
        latest_message="hello",
        messages=(("customer", "hello"),),
    )
