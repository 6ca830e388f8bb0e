"""Streamed replies through a real uvicorn server: SSE clients see the message grow, and a
client can wait for a streamed message to complete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from test_api_sse import sse_events, wait_for_listeners

from tactful.bus.memory import MemoryBus
from tactful.config import Settings
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import answer_listed
from tactful.llm.scripted import HashingEmbedder, ScriptedGenerator
from tactful.runtime import Runtime, start_runtime

TEXT = "Refunds take five business days to reach your card."


@pytest_asyncio.fixture
async def runtime() -> AsyncIterator[Runtime]:
    # Pieces 50 ms apart, so that a client sees the message at several lengths.
    model = ScriptedGenerator(
        {
            "match": lambda c: answer_listed(c.prompt.user, lambda g: None),
            "compose": lambda c: ReplyAnswer(message=TEXT),
        },
        chunk_delay_s=0.05,
    )
    rt = await start_runtime(Settings(transient=True), embedder=HashingEmbedder(), generator=model)
    try:
        yield rt
    finally:
        await rt.close()


async def _streaming_session(client: httpx.AsyncClient) -> str:
    agent = (
        await client.post("/agents", json={"name": "Shop", "message_output_mode": "stream"})
    ).json()
    session = (await client.post("/sessions", json={"agent_id": agent["id"]})).json()
    return str(session["id"])


def _customer(text: str) -> dict[str, Any]:
    return {"kind": "message", "source": "customer", "message": text}


async def test_sse_clients_see_a_streamed_message_grow(server_url: str, runtime: Runtime) -> None:
    bus = runtime.bus
    assert isinstance(bus, MemoryBus)
    async with httpx.AsyncClient(base_url=server_url, timeout=10) as client:
        session_id = await _streaming_session(client)
        url = f"/sessions/{session_id}/events"
        states: list[list[str | None]] = []
        params = {"sse": "true", "kinds": "message", "source": "ai_agent", "wait_for_data": 10}
        async with client.stream("GET", url, params=params) as stream:
            await wait_for_listeners(bus, 1)
            assert (await client.post(url, json=_customer("refund?"))).status_code == 201
            async for event in sse_events(stream.aiter_lines()):
                states.append(event["data"]["chunks"])
                if event["data"]["chunks"][-1] is None:
                    break
    # The same event, sent again as it grew: partial first, complete last.
    assert len(states) >= 3
    assert states[0][-1] is not None and len(states[0]) < len(states[-1]) - 1
    assert "".join(c for c in states[-1] if c is not None) == TEXT
    lengths = [len(s) for s in states]
    assert lengths == sorted(lengths)


async def test_a_client_can_wait_for_a_streamed_message_to_complete(server_url: str) -> None:
    async with httpx.AsyncClient(base_url=server_url, timeout=10) as client:
        session_id = await _streaming_session(client)
        url = f"/sessions/{session_id}/events"
        assert (await client.post(url, json=_customer("refund?"))).status_code == 201
        # The message event exists as soon as its first piece does.
        first = await client.get(
            url, params={"min_offset": 1, "kinds": "message", "wait_for_data": 10}
        )
        [event] = first.json()
        done = await client.get(
            f"{url}/{event['id']}", params={"wait_for_completion": "true", "wait_for_data": 10}
        )
        assert done.json()["data"]["message"] == TEXT
        assert done.json()["data"]["chunks"][-1] is None
        # As SSE, a complete event is sent once and the stream closes.
        async with client.stream("GET", f"{url}/{event['id']}", params={"sse": "true"}) as one:
            sent = [e async for e in sse_events(one.aiter_lines())]
        assert [e["data"]["message"] for e in sent] == [TEXT]
