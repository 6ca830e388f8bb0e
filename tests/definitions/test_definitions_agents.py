"""Agents through the definitions layer (``definitions.agents``): create, define, update and
delete, with the tag rule shared by ``POST /agents`` and ``Server.create_agent``."""

from __future__ import annotations

import pytest

import tactful
from tactful.definitions import agents, keys
from tactful.domain import Agent, Customer, Guideline, Session, Tag, agent_tag
from tactful.errors import ConflictError, NotFoundError
from tactful.store.base import Store


@pytest.fixture
def store(server: tactful.Server) -> Store:
    return server.runtime.store


async def test_create_stores_a_new_agent_and_refuses_a_taken_id(store: Store) -> None:
    await store.create(Tag(id="retail", name="retail"))
    made = await agents.create_agent(
        store, Agent(id="shop", name="Shop", tags=["retail", "retail"])
    )
    assert made.tags == ["retail"]
    assert await store.get(Agent, "shop") == made
    with pytest.raises(ConflictError):
        await agents.create_agent(store, Agent(id="shop", name="Other"))
    assert (await store.get(Agent, "shop")).name == "Shop"


async def test_an_agents_tags_must_be_stored_tags(store: Store) -> None:
    await store.create(Agent(id="other", name="Other"))
    with pytest.raises(NotFoundError, match="Tag 'nope'"):
        await agents.create_agent(store, Agent(name="Shop", tags=["nope"]))
    # ``agent:<id>`` scopes other definitions to an agent; an agent does not carry one.
    with pytest.raises(NotFoundError, match="Tag 'agent:other'"):
        await agents.create_agent(store, Agent(name="Shop", tags=[agent_tag("other")]))
    with pytest.raises(NotFoundError, match="Tag 'nope'"):
        await agents.define_agent(store, Agent(name="Shop", tags=["nope"]), key="agent:Shop")
    assert [a.id for a in await store.list(Agent)] == ["other"]


async def test_define_replaces_the_agent_of_the_same_key_or_id(store: Store) -> None:
    first = await agents.define_agent(
        store, Agent(name="Shop", description="v1"), key=keys.agent_key("Shop")
    )
    again = await agents.define_agent(
        store, Agent(name="Shop", description="v2"), key=keys.agent_key("Shop")
    )
    assert (again.id, again.creation_utc, again.description) == (
        first.id,
        first.creation_utc,
        "v2",
    )
    by_id = await agents.define_agent(store, Agent(id="fixed", name="A"), key=None)
    renamed = await agents.define_agent(store, Agent(id="fixed", name="B"), key=None)
    assert (by_id.id, renamed.id, renamed.name) == ("fixed", "fixed", "B")
    assert len(await store.list(Agent)) == 2


async def test_the_sdk_checks_an_agents_tags_as_rest_does(server: tactful.Server) -> None:
    # Before the layer, Server.create_agent stored any tag; POST /agents answered 404.
    with pytest.raises(NotFoundError, match="Tag 'vip'"):
        await server.create_agent("Shop", tags=["vip"])
    assert await server.runtime.store.list(Agent) == []
    vip = await server.create_tag("vip")
    agent = await server.create_agent("Shop", tags=[vip.id])
    assert agent.model.tags == [vip.id]


async def test_update_changes_what_is_given_and_edits_tags(store: Store) -> None:
    for t in ("a", "b"):
        await store.create(Tag(id=t, name=t))
    agent = await agents.create_agent(store, Agent(id="shop", name="Shop", tags=["a"]))
    updated = await agents.update_agent(
        store, "shop", {"description": "sells things"}, add_tags=["b"], remove_tags=["a"]
    )
    assert (updated.name, updated.description, updated.tags) == ("Shop", "sells things", ["b"])
    assert (updated.id, updated.creation_utc) == (agent.id, agent.creation_utc)
    assert await store.get(Agent, "shop") == updated


async def test_update_checks_the_tags_it_adds_and_writes_nothing_when_one_is_unknown(
    store: Store,
) -> None:
    await agents.create_agent(store, Agent(id="shop", name="Shop"))
    with pytest.raises(NotFoundError, match="Tag 'nope'"):
        await agents.update_agent(store, "shop", {"name": "Renamed"}, add_tags=["nope"])
    assert (await store.get(Agent, "shop")).name == "Shop"
    with pytest.raises(NotFoundError, match="Agent 'gone'"):
        await agents.update_agent(store, "gone", {"name": "x"})


async def test_delete_takes_the_sessions_and_leaves_the_definitions(store: Store) -> None:
    await agents.create_agent(store, Agent(id="shop", name="Shop"))
    await agents.create_agent(store, Agent(id="bank", name="Bank"))
    ada = await store.create(Customer(name="Ada"))
    mine = await store.create(Session(agent_id="shop", customer_id=ada.id))
    theirs = await store.create(Session(agent_id="bank", customer_id=ada.id))
    rule = await store.create(Guideline(condition="c", action="a", tags=[agent_tag("shop")]))

    await agents.delete_agent(store, "shop")
    assert await store.find(Agent, "shop") is None
    assert await store.find(Session, mine.id) is None
    assert await store.find(Session, theirs.id) is not None
    assert await store.find(Guideline, rule.id) is not None
    with pytest.raises(NotFoundError, match="Agent 'shop'"):
        await agents.delete_agent(store, "shop")
