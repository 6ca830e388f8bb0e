"""The client's reads for an admin (agents, guidelines, journeys, sessions) against the real
FastAPI app (in-process transport)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

import tactful
from tactful.api import create_app
from tactful.client import ClientError, GuidelineInfo, TactfulClient
from tactful.llm.scripted import HashingEmbedder


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TactfulClient]:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as server:
        shop = await server.create_agent("Shopbot", id="shopbot", description="Sells things")
        other = await server.create_agent("Other", id="other")
        returns = await shop.create_guideline(
            "the customer asks about returning an item", "explain the return policy", id="returns"
        )
        damaged = await shop.create_guideline(
            "the item arrived damaged", "offer a replacement", id="damaged"
        )
        await shop.prioritize(damaged, over=returns)
        await other.create_guideline("the customer says hello", "greet them", id="hello")
        journey = await shop.create_journey("Return an item", id="return", conditions=["wants"])
        await journey.initial_state.transition_to(chat_state="Ask for the order number")
        transport = httpx.ASGITransport(create_app(server.runtime))
        async with TactfulClient("http://localhost", transport=transport) as c:
            yield c


async def test_agents_list_and_one_by_id(client: TactfulClient) -> None:
    assert [a.id for a in await client.list_agents()] == ["shopbot", "other"]
    agent = await client.get_agent("shopbot")
    assert (agent.name, agent.description) == ("Shopbot", "Sells things")
    # Fields the client does not type are kept, for --json.
    assert agent.model_dump()["max_engine_iterations"] >= 1


async def test_guidelines_by_agent_with_relationships(client: TactfulClient) -> None:
    mine = await client.list_guidelines(tag_id="agent:shopbot")
    # The journey's condition is an observation of the agent too.
    assert [g.id for g in mine][:2] == ["returns", "damaged"]
    assert [g.condition for g in mine][2:] == ["wants"]
    assert all(isinstance(g, GuidelineInfo) for g in mine)
    assert {g.id for g in await client.list_guidelines()} >= {"returns", "damaged", "hello"}

    detail = await client.get_guideline("returns")
    assert detail.guideline.action == "explain the return policy"
    [rel] = detail.relationships
    assert rel.kind == "priority"
    assert rel.source_guideline is not None and rel.source_guideline.id == "damaged"
    assert rel.target_guideline is not None and rel.target_guideline.id == "returns"
    assert detail.tool_associations == []


async def test_journeys_and_their_graph(client: TactfulClient) -> None:
    assert [j.title for j in await client.list_journeys(tag_id="agent:shopbot")] == [
        "Return an item"
    ]
    assert await client.list_journeys(tag_id="agent:other") == []
    assert (await client.get_journey("return")).title == "Return an item"
    graph = await client.get_journey_graph("return")
    assert graph.initial_state_id == graph.states[0].id
    assert [s.action for s in graph.states][1] == "Ask for the order number"
    [t] = graph.transitions
    assert (t.source, t.target) == (graph.states[0].id, graph.states[1].id)


async def test_sessions_filtered_and_one_by_id(client: TactfulClient) -> None:
    first = await client.create_session("shopbot", title="one")
    await client.create_session("other")
    assert [s.id for s in await client.list_sessions(agent_id="shopbot")] == [first.id]
    assert len(await client.list_sessions()) == 2
    assert await client.list_sessions(customer_id="nobody") == []
    read = await client.get_session(first.id)
    assert (read.agent_id, read.title) == ("shopbot", "one")


@pytest.mark.parametrize(
    ("read", "detail"),
    [
        (lambda c: c.get_agent("nope"), "Agent 'nope' was not found"),
        (lambda c: c.get_guideline("nope"), "Guideline 'nope' was not found"),
        (lambda c: c.get_journey_graph("nope"), "Journey 'nope' was not found"),
        (lambda c: c.get_session("nope"), "Session 'nope' was not found"),
    ],
)
async def test_unknown_ids_are_404_with_the_servers_words(
    client: TactfulClient, read: object, detail: str
) -> None:
    with pytest.raises(ClientError) as missing:
        await read(client)  # type: ignore[operator]
    assert missing.value.status_code == 404
    assert missing.value.detail == detail
