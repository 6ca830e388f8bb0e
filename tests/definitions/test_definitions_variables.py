"""Context variables through the definitions layer (``definitions.variables``): one set of
rules (cron expression, tags, tool) for ``POST/PATCH /context-variables`` and
``Agent.create_variable``, and deletion with the values."""

from __future__ import annotations

import pytest

import tactful
from tactful.definitions import keys, variables
from tactful.domain import (
    Agent,
    ContextVariable,
    ContextVariableValue,
    Tag,
    ToolSpec,
    agent_tag,
)
from tactful.engine.variables import write_value
from tactful.errors import ConflictError, NotFoundError, ValidationError
from tactful.store.base import Store


@tactful.tool
async def points(context: tactful.ToolContext) -> int:
    """The customer's loyalty points."""
    return 12


@pytest.fixture
def store(server: tactful.Server) -> Store:
    return server.runtime.store


async def _stored(store: Store) -> None:
    await store.create(Agent(id="shop", name="Shop"))
    await store.create(Tag(id="vip", name="vip"))
    await store.create(ToolSpec(id="crm:balance", service_name="crm", name="balance"))


async def test_create_checks_rules_tags_and_tool(store: Store) -> None:
    await _stored(store)
    made = await variables.create_variable(
        store,
        ContextVariable(
            id="v",
            name="balance",
            tool_id="crm:balance",
            freshness_rules="  */5 * * * *  ",
            tags=[agent_tag("shop"), "vip", "vip"],
        ),
    )
    assert (made.freshness_rules, made.tags) == ("*/5 * * * *", [agent_tag("shop"), "vip"])
    assert await store.get(ContextVariable, "v") == made
    with pytest.raises(ConflictError):
        await variables.create_variable(store, ContextVariable(id="v", name="other"))

    for wrong, error, match in [
        ({"freshness_rules": "every day"}, ValidationError, "invalid freshness rule"),
        ({"tags": ["nope"]}, NotFoundError, "Tag 'nope'"),
        ({"tags": [agent_tag("gone")]}, NotFoundError, "Agent 'gone'"),
        ({"tool_id": "crm:nope"}, NotFoundError, "Tool 'crm:nope'"),
    ]:
        with pytest.raises(error, match=match):
            await variables.create_variable(store, ContextVariable(name="x", **wrong))
    assert [v.id for v in await store.list(ContextVariable)] == ["v"]


async def test_define_upserts_by_key_and_takes_the_tool_on_trust(store: Store) -> None:
    await _stored(store)
    key = keys.variable_key("shop", "Plan")
    first = await variables.define_variable(
        store, ContextVariable(name="Plan", tags=[agent_tag("shop")]), key=key
    )
    again = await variables.define_variable(
        store,
        ContextVariable(name="plan", description="v2", tool_id="bank:plan", tags=["vip"]),
        key=keys.variable_key("shop", "plan"),
    )
    assert (again.id, again.description, again.tool_id) == (first.id, "v2", "bank:plan")
    with pytest.raises(NotFoundError, match="Tag 'nope'"):
        await variables.define_variable(store, ContextVariable(name="x", tags=["nope"]), key="k")
    with pytest.raises(ValidationError, match="Bad minute"):
        await variables.define_variable(
            store, ContextVariable(name="x", freshness_rules="99 * * * *"), key="k"
        )
    assert len(await store.list(ContextVariable)) == 1


async def test_the_sdk_checks_a_variables_tags_as_rest_does(server: tactful.Server) -> None:
    agent = await server.create_agent("Shop")
    # Before the layer, Agent.create_variable stored any tag; POST /context-variables: 404.
    with pytest.raises(NotFoundError, match="Tag 'vip'"):
        await agent.create_variable("plan", tags=["vip"])
    vip = await server.create_tag("vip")
    plan = await agent.create_variable("plan", tags=[vip.id, agent.tag])
    assert plan.tags == [agent.tag, vip.id]


async def test_a_refused_sdk_variable_stores_nothing_not_even_its_tool(
    server: tactful.Server,
) -> None:
    agent = await server.create_agent("Shop")
    with pytest.raises(ValidationError, match="invalid freshness rule"):
        await agent.create_variable("points", tool=points, freshness_rules="hourly-ish")
    store = server.runtime.store
    assert await store.list(ContextVariable) == []
    assert await store.list(ToolSpec) == []


async def test_update_checks_what_it_brings_in(store: Store) -> None:
    await _stored(store)
    made = await variables.create_variable(
        store, ContextVariable(id="v", name="balance", tool_id="crm:balance", tags=["vip"])
    )
    # References gone since (the agent of a tag, the tool's spec) do not block other changes.
    await store.update(made.model_copy(update={"tags": ["vip", agent_tag("gone")]}))
    await store.delete(ToolSpec, "crm:balance")
    renamed = await variables.update_variable(
        store, "v", {"name": "funds", "freshness_rules": "@hourly"}, remove_tags=["vip"]
    )
    assert (renamed.name, renamed.tool_id, renamed.tags) == (
        "funds",
        "crm:balance",
        [agent_tag("gone")],
    )
    assert (renamed.id, renamed.creation_utc) == (made.id, made.creation_utc)

    for changes, add, match in [
        ({"tool_id": "crm:nope"}, [], "Tool 'crm:nope'"),
        ({}, ["nope"], "Tag 'nope'"),
        ({"freshness_rules": "99 * * * *"}, [], "Bad minute"),
    ]:
        with pytest.raises((NotFoundError, ValidationError), match=match):
            await variables.update_variable(store, "v", {"name": "x", **changes}, add_tags=add)
    assert await store.get(ContextVariable, "v") == renamed

    cleared = await variables.update_variable(
        store, "v", {"tool_id": None, "freshness_rules": None}, add_tags=["vip"]
    )
    assert (cleared.tool_id, cleared.freshness_rules) == (None, None)
    assert cleared.tags == [agent_tag("gone"), "vip"]
    with pytest.raises(NotFoundError, match="ContextVariable 'nope'"):
        await variables.update_variable(store, "nope", {"name": "x"})


async def test_delete_takes_the_values(store: Store) -> None:
    await _stored(store)
    for vid, tags in [("a", ["vip"]), ("b", []), ("c", ["vip"])]:
        await variables.create_variable(store, ContextVariable(id=vid, name=vid, tags=tags))
        await write_value(store, vid, "DEFAULT", 1)

    await variables.delete_variable(store, "b")
    assert await store.list(ContextVariableValue, variable_id="b") == []
    with pytest.raises(NotFoundError, match="ContextVariable 'b'"):
        await variables.delete_variable(store, "b")

    assert await variables.delete_variables(store, tag_id="vip") == ["a", "c"]
    assert await store.list(ContextVariable) == []
    assert await store.list(ContextVariableValue) == []
