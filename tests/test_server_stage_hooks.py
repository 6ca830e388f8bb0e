"""The SDK's stage hooks on an offline server: a BFF hands refunds to a person."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

import tactful
from tactful.domain import SessionMode, Trace
from tactful.llm.scripted import HashingEmbedder


@pytest_asyncio.fixture
async def server() -> AsyncIterator[tactful.Server]:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        yield s


async def test_a_bff_hook_hands_off_what_it_handles_and_lets_the_rest_through(
    server: tactful.Server,
) -> None:
    agent = await server.create_agent("Voltmart")
    await agent.create_guideline("the customer greets", "greet them back")
    await agent.create_canned_response("Hello! How can I help?")
    seen: list[str] = []

    @agent.on_error
    def never(view: tactful.TurnView) -> None:
        seen.append("error")

    async def bff(view: tactful.TurnView) -> tactful.Bail | None:
        seen.append(view.latest_message)
        if "refund" in view.latest_message:
            return tactful.Bail(reason="refunds are handled by billing", hand_off=True)
        return None

    assert agent.before("retrieve", bff) is bff
    customer = await server.create_customer("Ann")
    session = await server.create_session(agent, customer)
    reply = await server.send(session, "hello there")
    assert reply.data["message"]
    with pytest.raises(tactful.ValidationError, match="did not reply"):
        await server.send(session, "I want a refund")
    assert seen == ["hello there", "I want a refund"]
    stored = await server.runtime.store.get(tactful.Session, session.id)
    assert stored.mode is SessionMode.MANUAL
    assert stored.handoff is not None and stored.handoff.reason == "refunds are handled by billing"
    traces = await server.runtime.store.list(Trace)
    bailed = [t.bailed for t in traces if t.bailed is not None]
    assert [(b.hook, b.stage, b.when) for b in bailed] == [(bff.__qualname__, "retrieve", "before")]
