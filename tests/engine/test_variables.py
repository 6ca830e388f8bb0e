"""Context variables: scope precedence, agent scoping, tool refresh by freshness rule (concurrent,
never raising), relevance, and rendering."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated

import pytest

import tactful
from tactful.domain import Agent, ContextVariable, ContextVariableValue, Customer, Session
from tactful.domain.variables import GLOBAL_KEY, tag_key
from tactful.engine.context import TurnContext, Utterance
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.variables import (
    VariableValue,
    check_freshness_rules,
    cron_problem,
    field_name,
    fields,
    for_prompt,
    is_stale,
    last_tick,
    mentioned,
    read_value,
    relevant,
    resolve_values,
    write_value,
)
from tactful.errors import ValidationError
from tactful.llm.scripted import HashingEmbedder
from tactful.store.base import Store
from tactful.tools import ToolRegistry, register_python

NOW = datetime(2025, 3, 1, 10, 7, 30, tzinfo=UTC)
HiddenCustomer = Annotated[str, tactful.ToolParam(hidden=True)]


def context(
    *messages: str,
    agent: Agent | None = None,
    customer: Customer | None = None,
    roles: tuple[str, ...] = (),
) -> TurnContext:
    agent = agent or Agent(name="Shop")
    customer = customer or Customer(id="ada", name="Ada", metadata={"tier": "gold"})
    return TurnContext(
        agent=agent,
        session=Session(agent_id=agent.id, customer_id=customer.id),
        customer=customer,
        messages=[
            Utterance(role=roles[i] if i < len(roles) else "customer", text=t, offset=i)
            for i, t in enumerate(messages)
        ],
        guidelines=[],
        canned_responses=[],
        terms=[],
    )


def by_name(values: list[VariableValue]) -> dict[str, VariableValue]:
    return {v.name: v for v in values}


# -- precedence and scope -------------------------------------------------------------------------


async def test_customer_value_beats_tag_value_beats_global(store: Store) -> None:
    plan = await store.create(ContextVariable(name="plan"))
    await write_value(store, plan.id, GLOBAL_KEY, "free")
    await write_value(store, plan.id, tag_key("vip"), "gold")
    await write_value(store, plan.id, tag_key("beta"), "beta")
    await write_value(store, plan.id, "ada", "platinum")

    ada = Customer(id="ada", name="Ada", tags=["vip", "beta"])
    [value] = await resolve_values(store, context(customer=ada))
    assert (value.value, value.key, value.refreshed, value.error) == (
        "platinum",
        "ada",
        False,
        None,
    )

    bob = Customer(id="bob", name="Bob", tags=["other", "beta", "vip"])
    [value] = await resolve_values(store, context(customer=bob))
    # The first of the customer's tags that has a value.
    assert (value.value, value.key) == ("beta", "tag:beta")

    cy = Customer(id="cy", name="Cy")
    [value] = await resolve_values(store, context(customer=cy))
    assert (value.value, value.key) == ("free", GLOBAL_KEY)


async def test_a_variable_without_any_value_is_listed_as_not_found(store: Store) -> None:
    await store.create(ContextVariable(name="plan"))
    [value] = await resolve_values(store, context())
    assert not value.found and value.value is None and value.key == ""
    assert for_prompt([value]) == "" and fields([value]) == {}


async def test_only_variables_in_the_agents_scope(store: Store) -> None:
    agent = Agent(name="Shop", tags=["retail"])
    other = Agent(name="Bank")
    names = {
        "global": [],
        "mine": [f"agent:{agent.id}"],
        "by agent tag": ["retail"],
        "theirs": [f"agent:{other.id}"],
        "other tag": ["banking"],
    }
    for name, tags in names.items():
        v = await store.create(ContextVariable(name=name, tags=tags))
        await write_value(store, v.id, GLOBAL_KEY, name)
    values = await resolve_values(store, context(agent=agent))
    assert [v.name for v in values] == ["global", "mine", "by agent tag"]


# -- freshness ------------------------------------------------------------------------------------


def test_cron_rules() -> None:
    assert cron_problem("*/5 * * * *") is None
    assert cron_problem("@hourly") is None
    assert cron_problem("0 8,20 * * 1-5") is None
    assert cron_problem("every five minutes") == "Wrong number of fields"
    assert cron_problem("61 * * * *") == "Bad minute"
    assert cron_problem("0 0 31 2 *") == "Bad day-of-month"
    assert cron_problem("  ") == "it is empty"
    assert check_freshness_rules(" */5 * * * * ") == "*/5 * * * *"
    assert check_freshness_rules(None) is None
    with pytest.raises(ValidationError, match=r"invalid freshness rule '61 \* \* \* \*': Bad"):
        check_freshness_rules("61 * * * *")
    assert last_tick("*/5 * * * *", NOW) == datetime(2025, 3, 1, 10, 5, tzinfo=UTC)
    assert last_tick("@daily", NOW) == datetime(2025, 3, 1, tzinfo=UTC)
    assert last_tick("30 2 * * *", NOW) == datetime(2025, 3, 1, 2, 30, tzinfo=UTC)


def test_stale_means_a_tick_passed_since_the_value_was_written() -> None:
    v = ContextVariable(name="points", tool_id="local:x", freshness_rules="*/5 * * * *")

    def written(at: datetime) -> ContextVariableValue:
        return ContextVariableValue(variable_id=v.id, key="ada", updated_utc=at)

    assert is_stale(v, None, NOW)
    assert is_stale(v, written(datetime(2025, 3, 1, 10, 4, 59, tzinfo=UTC)), NOW)
    assert not is_stale(v, written(datetime(2025, 3, 1, 10, 5, 1, tzinfo=UTC)), NOW)
    ruleless = ContextVariable(name="points", tool_id="local:x")
    assert not is_stale(ruleless, written(NOW - timedelta(days=365)), NOW)


class Recorder:
    """A points tool that records who it was called for."""

    def __init__(self, registry: ToolRegistry) -> None:
        self.calls: list[str] = []
        self.points = 100

        @tactful.tool(name="points")
        async def points(context: tactful.ToolContext, customer_id: HiddenCustomer) -> int:
            """Loyalty points of the customer."""
            assert context.customer_id == customer_id
            self.calls.append(customer_id)
            return self.points

        register_python(registry, points)
        self.tool_id = points.tool_id


async def test_a_stale_value_is_refreshed_once_and_a_fresh_one_is_not(store: Store) -> None:
    registry = ToolRegistry()
    tool = Recorder(registry)
    variable = await store.create(
        ContextVariable(name="points", tool_id=tool.tool_id, freshness_rules="*/5 * * * *")
    )
    # Written at 10:03: the 10:05 tick passed since.
    await write_value(store, variable.id, "ada", 7, now=NOW.replace(minute=3))

    [value] = await resolve_values(store, context(), registry=registry, now=NOW)
    assert tool.calls == ["ada"]
    assert (value.value, value.key, value.refreshed, value.error) == (100, "ada", True, None)
    stored = await read_value(store, variable.id, "ada")
    assert stored is not None and stored.data == 100 and stored.last_modified == NOW

    # A minute later no tick passed: the stored value is used.
    tool.points = 200
    [value] = await resolve_values(
        store, context(), registry=registry, now=NOW + timedelta(minutes=1)
    )
    assert tool.calls == ["ada"]
    assert (value.value, value.refreshed) == (100, False)
    # After the 10:10 tick it is refreshed again.
    [value] = await resolve_values(
        store, context(), registry=registry, now=NOW + timedelta(minutes=3)
    )
    assert tool.calls == ["ada", "ada"] and value.value == 200


async def test_without_a_rule_the_tool_is_called_only_when_there_is_no_value(
    store: Store,
) -> None:
    registry = ToolRegistry()
    tool = Recorder(registry)
    variable = await store.create(ContextVariable(name="points", tool_id=tool.tool_id))
    # A global value does not stop the customer's own refresh...
    await write_value(store, variable.id, GLOBAL_KEY, 0)
    [value] = await resolve_values(store, context(), registry=registry, now=NOW)
    assert tool.calls == ["ada"] and (value.value, value.key) == (100, "ada")
    # ...but the customer's value, once there, is never refreshed without a rule.
    [value] = await resolve_values(
        store, context(), registry=registry, now=NOW + timedelta(days=400)
    )
    assert tool.calls == ["ada"] and not value.refreshed
    # Without a registry nothing is called.
    other = Customer(id="bob", name="Bob")
    [value] = await resolve_values(store, context(customer=other), now=NOW)
    assert tool.calls == ["ada"] and (value.value, value.key) == (0, GLOBAL_KEY)


async def test_refreshes_run_concurrently(store: Store) -> None:
    registry = ToolRegistry()
    first, second = asyncio.Event(), asyncio.Event()

    # Each tool waits for the other to have started: run one after the other, both time out.
    @tactful.tool
    async def alpha(context: tactful.ToolContext) -> str:
        """First."""
        first.set()
        await asyncio.wait_for(second.wait(), timeout=2)
        return "a"

    @tactful.tool
    async def beta(context: tactful.ToolContext) -> str:
        """Second."""
        second.set()
        await asyncio.wait_for(first.wait(), timeout=2)
        return "b"

    for t in (alpha, beta):
        register_python(registry, t)
        await store.create(ContextVariable(name=t.name, tool_id=t.tool_id))
    values = await resolve_values(store, context(), registry=registry, now=NOW)
    assert [(v.value, v.refreshed, v.error) for v in values] == [
        ("a", True, None),
        ("b", True, None),
    ]


async def test_a_failing_tool_keeps_the_old_value_and_reports_the_error(store: Store) -> None:
    registry = ToolRegistry()

    @tactful.tool
    async def broken(context: tactful.ToolContext) -> int:
        """Always fails."""
        raise RuntimeError("points service is down")

    register_python(registry, broken)
    kept = await store.create(
        ContextVariable(name="points", tool_id=broken.tool_id, freshness_rules="* * * * *")
    )
    await write_value(store, kept.id, "ada", 42, now=NOW - timedelta(hours=1))
    await store.create(ContextVariable(name="tier", tool_id=broken.tool_id))
    await store.create(ContextVariable(name="ghost", tool_id="local:unknown"))

    values = by_name(await resolve_values(store, context(), registry=registry, now=NOW))
    points, tier, ghost = values["points"], values["tier"], values["ghost"]
    assert (points.value, points.key, points.refreshed) == (42, "ada", False)
    assert points.error == "RuntimeError: points service is down"
    assert not tier.found and tier.error == "RuntimeError: points service is down"
    assert not ghost.found and ghost.error is not None and "not registered" in ghost.error
    stored = await read_value(store, kept.id, "ada")
    assert stored is not None and stored.data == 42
    assert for_prompt(values.values()) == "- points: 42"


# -- relevance ------------------------------------------------------------------------------------


async def _loyalty_and_address(store: Store) -> list[VariableValue]:
    points = await store.create(
        ContextVariable(name="loyalty points", description="Loyalty points balance")
    )
    address = await store.create(
        ContextVariable(name="shipping_address", description="Street, city and postcode")
    )
    await write_value(store, points.id, GLOBAL_KEY, 1200)
    await write_value(store, address.id, GLOBAL_KEY, "1 Main St, Springfield")
    return await resolve_values(store, context())


async def test_a_variable_is_relevant_when_it_is_about_what_is_said(store: Store) -> None:
    values = await _loyalty_and_address(store)
    cache = EmbeddingCache(HashingEmbedder(), store)

    kept = await relevant(values, context("how many points do I have?"), cache)
    assert [v.name for v in kept] == ["loyalty points"]
    kept = await relevant(values, context("where is my order?"), cache)
    assert kept == []
    # An earlier message still counts, and so does the agent's last question.
    kept = await relevant(
        values,
        context(
            "how many points do I have?",
            "thanks",
            "do you want to hear your loyalty points?",
            "yes",
            roles=("customer", "customer", "agent", "customer"),
        ),
        cache,
    )
    assert [v.name for v in kept] == ["loyalty points"]
    assert await relevant(values, context("how many points do I have?"), cache, limit=0) == []


async def test_a_variable_named_by_a_guideline_is_always_relevant(store: Store) -> None:
    values = await _loyalty_and_address(store)
    cache = EmbeddingCache(HashingEmbedder(), store)
    texts = [
        "The customer asks where their order is",
        "Confirm the customer's shipping address before anything else",
    ]
    kept = await relevant(values, context("where is my order?"), cache, texts=texts, limit=0)
    assert [v.name for v in kept] == ["shipping_address"]
    kept = await relevant(values, context(), cache, texts=["Greet them by {{loyalty_points}}"])
    assert [v.name for v in kept] == ["loyalty points"]


def test_mentions_are_whole_words_in_any_spelling() -> None:
    v = ContextVariable(name="loyalty_points")
    assert mentioned(v, ["tell them their Loyalty Points"])
    assert mentioned(v, ["{{loyalty-points}}"])
    assert not mentioned(v, ["loyalty_pointsx", "points of loyalty"])


# -- rendering ------------------------------------------------------------------------------------


def test_for_prompt_and_fields() -> None:
    def value(name: str, data: object, key: str = GLOBAL_KEY) -> VariableValue:
        return VariableValue(variable=ContextVariable(name=name), value=data, key=key)

    values = [
        value("Loyalty points", 1200),
        value("plan", {"name": "gold", "renews": "2025-06-01"}),
        value("nickname", "Ada"),
        value("missing", None, key=""),
        value("notes", "x" * 3000),
    ]
    lines = for_prompt(values).splitlines()
    assert lines[:3] == [
        "- Loyalty points: 1200",
        '- plan: {"name": "gold", "renews": "2025-06-01"}',
        "- nickname: Ada",
    ]
    assert len(lines) == 4 and len(lines[3]) == len("- notes: ") + 1000 and lines[3].endswith("…")
    assert fields(values[:3]) == {
        "Loyalty points": 1200,
        "loyalty_points": 1200,
        "plan": {"name": "gold", "renews": "2025-06-01"},
        "nickname": "Ada",
    }
    assert field_name(" Account balance (EUR) ") == "account_balance_eur"


async def test_guests_keep_what_a_tool_fetched_to_their_own_session(store: Store) -> None:
    registry = ToolRegistry()
    tool = Recorder(registry)
    variable = await store.create(ContextVariable(name="points", tool_id=tool.tool_id))
    guest = Customer(id="guest", name="Guest")
    await write_value(store, variable.id, "guest", 1)  # set for every guest
    first, second = context(customer=guest), context(customer=guest)
    assert first.session.id != second.session.id

    [value] = await resolve_values(store, first, registry=registry, now=NOW)
    assert (value.value, value.key) == (100, f"guest:{first.session.id}")
    tool.points = 5
    [value] = await resolve_values(store, second, registry=registry, now=NOW)
    assert (value.value, value.key) == (5, f"guest:{second.session.id}")
    assert len(tool.calls) == 2  # the second guest did not get the first one's value
    # What was set for every guest stays where it was, and counts where a guest has nothing.
    assert (await read_value(store, variable.id, "guest")).data == 1  # type: ignore[union-attr]
    [value] = await resolve_values(store, context(customer=guest), now=NOW)
    assert (value.value, value.key) == (1, "guest")
