"""The client's flag calls against the real FastAPI app (in-process transport)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

import tactful
from tactful.api import create_app
from tactful.client import ClientError, TactfulClient
from tactful.domain import Flag
from tactful.llm.scripted import HashingEmbedder


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TactfulClient]:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as server:
        agent = await server.create_agent("Shopbot", id="shopbot")
        await agent.create_guideline(
            "the customer asks about returning an item",
            "explain the return policy",
            examples=["How do I return an item?"],
            canned_responses=[await agent.create_canned_response("Within 30 days.")],
        )
        transport = httpx.ASGITransport(create_app(server.runtime))
        async with TactfulClient("http://localhost", transport=transport) as c:
            yield c


async def test_flag_a_reply_list_and_delete(client: TactfulClient) -> None:
    session = await client.create_session("shopbot")
    turn = await client.send(session.id, "How do I return an item?", timeout=10)
    [reply] = turn.replies

    made = await client.create_flag(session.id, reply.id, "say how to print the label")
    assert isinstance(made, Flag)
    assert (made.event_id, made.trace_id, made.agent_id) == (reply.id, turn.trace_id, "shopbot")
    assert made.note == "say how to print the label"
    second = await client.create_flag(session.id, reply.id)
    assert await client.list_flags() == [second, made]
    assert await client.list_flags(agent_id="shopbot", session_id=session.id) == [second, made]
    assert await client.list_flags(session_id="other") == []

    await client.delete_flag(made.id)
    assert await client.list_flags() == [second]
    with pytest.raises(ClientError) as gone:
        await client.delete_flag(made.id)
    assert gone.value.status_code == 404
    assert gone.value.detail == f"Flag {made.id!r} was not found"


async def test_flagging_a_customer_message_is_refused_with_the_servers_reason(
    client: TactfulClient,
) -> None:
    session = await client.create_session("shopbot")
    posted = await client.post_message(session.id, "hello")
    with pytest.raises(ClientError) as refused:
        await client.create_flag(session.id, posted.id)
    assert refused.value.status_code == 422
    assert refused.value.detail is not None
    assert "only the agent's messages" in refused.value.detail
