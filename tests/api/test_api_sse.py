"""Server-Sent Events through a real uvicorn server: events are pushed as they are appended."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from api_scenario import answering_agent, new_session

from tactful.bus.memory import MemoryBus
from tactful.domain import EventKind, EventSource
from tactful.runtime import Runtime


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    async for line in lines:
        if line.startswith("data: "):
            yield json.loads(line[len("data: ") :])


async def wait_for_listeners(bus: MemoryBus, count: int) -> None:
    # The stream is open once the server's generator listens on the bus.
    for _ in range(500):
        if bus.listener_count == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} bus listeners, found {bus.listener_count}")


async def test_sse_pushes_a_turn_as_it_happens(server_url: str, runtime: Runtime) -> None:
    bus = runtime.bus
    assert isinstance(bus, MemoryBus)
    async with httpx.AsyncClient(base_url=server_url, timeout=10) as client:
        scenario = await answering_agent(client, runtime)
        session_id = await new_session(client, scenario.agent_id)
        url = f"/sessions/{session_id}/events"
        received: list[dict[str, Any]] = []
        async with client.stream("GET", url, params={"sse": "true", "wait_for_data": 10}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            await wait_for_listeners(bus, 1)
            posted = await client.post(
                url,
                json={"kind": "message", "source": "customer", "message": "where is my refund"},
            )
            assert posted.status_code == 201
            async for event in sse_events(stream.aiter_lines()):
                received.append(event)
                if event["kind"] == "status" and event["data"]["status"] == "ready":
                    break
        assert received[0] == posted.json()
        assert [e["offset"] for e in received] == [0, 1, 2, 3, 4, 5]
        assert received[4]["data"]["message"].startswith("Refunds take five business days")
        # The client went away: the server's generator stopped listening.
        await wait_for_listeners(bus, 0)


async def test_sse_filters_and_closes_after_idle_time(server_url: str, runtime: Runtime) -> None:
    async with httpx.AsyncClient(base_url=server_url, timeout=10) as client:
        agent = (await client.post("/agents", json={"name": "A"})).json()
        session_id = await new_session(client, agent["id"])
        url = f"/sessions/{session_id}/events"
        for i in range(3):
            kind = "custom" if i != 1 else "status"
            body: dict[str, Any] = {"kind": kind, "source": "system"}
            body.update({"data": {"i": i}} if kind == "custom" else {"status": "typing"})
            assert (await client.post(url, json=body)).status_code == 201
        params: dict[str, str | float] = {"sse": "true", "kinds": "custom", "wait_for_data": 0.2}
        async with client.stream("GET", url, params=params) as stream:
            events = [e async for e in sse_events(stream.aiter_lines())]
        # Existing matching events are sent, then the stream ends after 0.2 s without news.
        assert [e["data"] for e in events] == [{"i": 0}, {"i": 2}]


async def test_single_event_as_sse(server_url: str) -> None:
    async with httpx.AsyncClient(base_url=server_url, timeout=10) as client:
        agent = (await client.post("/agents", json={"name": "A"})).json()
        session_id = await new_session(client, agent["id"])
        url = f"/sessions/{session_id}/events"
        created = await client.post(url, json={"kind": "custom", "source": "system", "data": 1})
        event_id = created.json()["id"]
        async with client.stream("GET", f"{url}/{event_id}", params={"sse": "true"}) as stream:
            events = [e async for e in sse_events(stream.aiter_lines())]
        assert events == [created.json()]


async def test_sse_reads_the_store_once_more_before_closing(
    server_url: str, runtime: Runtime
) -> None:
    # An event whose wake-up never came (another process's, lost on the way) is still sent.
    async with httpx.AsyncClient(base_url=server_url, timeout=10) as client:
        agent = (await client.post("/agents", json={"name": "A"})).json()
        session_id = await new_session(client, agent["id"])
        url = f"/sessions/{session_id}/events"
        await client.post(url, json={"kind": "custom", "source": "system", "data": 0})
        params: dict[str, str | float] = {"sse": "true", "wait_for_data": 1}
        received = []
        async with client.stream("GET", url, params=params) as stream:
            async for event in sse_events(stream.aiter_lines()):
                received.append(event["data"])
                if event["data"] == 0:
                    await asyncio.sleep(0.2)  # the stream now waits on the bus
                    await runtime.store.append_event(
                        session_id, kind=EventKind.CUSTOM, source=EventSource.SYSTEM, data=1
                    )
        assert received == [0, 1]
