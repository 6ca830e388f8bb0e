"""The client against the real FastAPI app (in-process transport): the contract holds end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

import tactful
from tactful.api import create_app
from tactful.client import ClientError, TactfulClient
from tactful.llm.scripted import HashingEmbedder


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TactfulClient]:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as server:
        agent = await server.create_agent("Shopbot", id="shopbot")
        reply = await agent.create_canned_response(
            "You can return any item within 30 days.", id="returns-reply"
        )
        await agent.create_guideline(
            "the customer asks about returning an item",
            "explain the return policy",
            id="returns",
            examples=["How do I return an item?"],
            canned_responses=[reply],
        )
        transport = httpx.ASGITransport(create_app(server.runtime))
        async with TactfulClient("http://localhost", transport=transport) as c:
            yield c


async def test_a_whole_exchange_with_its_trace(client: TactfulClient) -> None:
    assert (await client.health()).tier == "offline"
    [agent] = await client.list_agents()
    assert (agent.id, agent.name) == ("shopbot", "Shopbot")
    session = await client.create_session(agent.id, title="test")
    assert session.agent_id == "shopbot"

    turn = await client.send(session.id, "How do I return an item?", timeout=10)

    assert turn.text == "You can return any item within 30 days."
    assert turn.replies[0].guideline_ids == ["returns"]
    trace = await client.get_trace(turn.trace_id, wait=2)
    assert [m.guideline_id for m in trace.matched] == ["returns"]
    assert trace.matched[0].score is not None and trace.matched[0].rationale
    assert trace.composition.canned_response_id == "returns-reply"

    events = await client.wait_events(session.id, 0, ["message"], wait_for_data=0)
    assert [e.source for e in events] == ["customer", "ai_agent"]


async def test_api_errors_carry_the_servers_detail(client: TactfulClient) -> None:
    with pytest.raises(ClientError) as raised:
        await client.create_session("no-such-agent")
    assert raised.value.status_code == 404
    assert raised.value.detail is not None and "no-such-agent" in raised.value.detail
    session = await client.create_session("shopbot")
    with pytest.raises(ClientError) as empty:
        await client.post_message(session.id, "   ")
    assert empty.value.status_code == 422


async def test_a_moderated_message_is_refused(client: TactfulClient) -> None:
    session = await client.create_session("shopbot")

    turn = await client.send(session.id, "you are such an idiot", timeout=10, moderation="auto")

    assert turn.customer_event.data["flagged"] is True
    assert turn.customer_event.data["tags"] == ["harassment"]
    assert turn.text.startswith("I'm sorry, I can't help with that message.")
    trace = await client.get_trace(turn.trace_id, wait=2)
    assert trace.composition.method == "refusal"
    with pytest.raises(ClientError) as unknown:
        await client.post_message(session.id, "hi", moderation="strict")
    assert unknown.value.status_code == 422
