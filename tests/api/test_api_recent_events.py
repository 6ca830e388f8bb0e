"""Long polls woken by this process's own writes are answered from the events it just wrote,
without reading the store; whatever they cannot vouch for (another process's writes,
deletions) is read from the store."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from api_scenario import new_session
from production import Production
from test_api_sse import sse_events, wait_for_listeners

from fresh_databases import postgres_database
from tactful.api import create_app
from tactful.config import Settings
from tactful.domain import Event, EventKind, EventSource
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import Runtime, start_runtime


def count_reads(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The min_offset of each ``store.list_events`` call from now on."""
    reads: list[int] = []
    read = runtime.store.list_events

    async def counting(session_id: str, **kwargs: Any) -> list[Event]:
        reads.append(kwargs.get("min_offset", 0))
        return await read(session_id, **kwargs)

    monkeypatch.setattr(runtime.store, "list_events", counting)
    return reads


async def post_custom(client: httpx.AsyncClient, session_id: str, data: Any) -> dict[str, Any]:
    posted = await client.post(
        f"/sessions/{session_id}/events", json={"kind": "custom", "source": "system", "data": data}
    )
    assert posted.status_code == 201, posted.text
    return dict(posted.json())


def poll(
    client: httpx.AsyncClient, session_id: str, min_offset: int, wait: float = 30
) -> Awaitable[httpx.Response]:
    return asyncio.ensure_future(
        client.get(
            f"/sessions/{session_id}/events",
            params={"min_offset": min_offset, "wait_for_data": wait},
        )
    )


async def test_a_long_poll_woken_by_an_append_does_not_read_the_store(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    session_id = await new_session(client, agent["id"])
    await post_custom(client, session_id, 0)
    reads = count_reads(runtime, monkeypatch)
    answer = poll(client, session_id, 1)
    await wait_for_listeners(runtime.bus, 1)  # type: ignore[arg-type]
    posted = await post_custom(client, session_id, 1)
    response = await answer
    assert response.status_code == 200, response.text
    assert response.json() == [posted]
    assert response.headers["Tactful-Has-More"] == "false"
    assert reads == []
    # An answer at once, too, when the events are there already.
    again = await client.get(
        f"/sessions/{session_id}/events", params={"min_offset": 0, "wait_for_data": 30}
    )
    assert [e["data"] for e in again.json()] == [0, 1]
    assert reads == []


async def test_a_customer_is_answered_from_memory_as_from_the_store(
    production: Production, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = production.runtime
    async with production.client(production.admin_key) as admin:
        agent = (await admin.post("/agents", json={"name": "A"})).json()
        created = await admin.post(
            "/sessions", json={"agent_id": agent["id"], "customer_id": production.customer_a}
        )
        session_id = created.json()["id"]
    timeline = runtime.engine.timeline
    # What a failed turn writes: a tool event and an error status with its internals.
    await timeline.append(session_id, EventKind.TOOL, EventSource.AI_AGENT, {"tool_calls": []})
    error = {"status": "error", "data": {"exception": "KeyError: 'secret'"}}
    await timeline.append(session_id, EventKind.STATUS, EventSource.AI_AGENT, error)
    async with production.client(production.token(production.customer_a)) as ann:
        from_store = await ann.get(f"/sessions/{session_id}/events", params={"wait_for_data": 0})
        reads = count_reads(runtime, monkeypatch)
        from_memory = await ann.get(f"/sessions/{session_id}/events", params={"wait_for_data": 9})
    assert reads == []
    assert from_memory.status_code == 200, from_memory.text
    assert from_memory.json() == from_store.json()
    assert [e["kind"] for e in from_memory.json()] == ["status"]
    assert "secret" not in from_memory.text


async def test_deleted_events_are_not_answered_from_memory(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    session_id = await new_session(client, agent["id"])
    for i in range(3):
        await post_custom(client, session_id, i)
    deleted = await client.delete(f"/sessions/{session_id}/events", params={"min_offset": 1})
    assert deleted.status_code == 204
    left = await client.get(
        f"/sessions/{session_id}/events", params={"min_offset": 0, "wait_for_data": 0.05}
    )
    assert [e["data"] for e in left.json()] == [0]
    after = await client.get(
        f"/sessions/{session_id}/events", params={"min_offset": 1, "wait_for_data": 0.05}
    )
    assert after.status_code == 504


async def test_a_stream_is_fed_from_memory_until_its_last_look(
    server_url: str, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeline = runtime.engine.timeline
    async with httpx.AsyncClient(base_url=server_url, timeout=10) as client:
        agent = (await client.post("/agents", json={"name": "A"})).json()
        session_id = await new_session(client, agent["id"])
        # A reply being streamed: appended with its first piece, then updated.
        first = {"message": "Hel", "chunks": ["Hel"]}
        reply = await timeline.append(session_id, EventKind.MESSAGE, EventSource.AI_AGENT, first)
        reads = count_reads(runtime, monkeypatch)
        got: list[str] = []
        get = runtime.store.get_event
        writing = contextvars.ContextVar("writing", default=False)

        async def getting(session_id: str, event_id: str) -> Event:
            if not writing.get():  # not the update's own read-back, in this test's task
                got.append(event_id)
            return await get(session_id, event_id)

        monkeypatch.setattr(runtime.store, "get_event", getting)
        received = []
        url = f"/sessions/{session_id}/events"
        params: dict[str, str | float] = {"sse": "true", "wait_for_data": 0.3}
        async with client.stream("GET", url, params=params) as stream:
            async for event in sse_events(stream.aiter_lines()):
                received.append(event["data"])
                if len(received) == 1:
                    whole = {"message": "Hello", "chunks": ["Hel", "lo", None]}
                    writing.set(True)
                    grown = await runtime.store.update_event_data(session_id, reply.id, whole)
                    writing.set(False)
                    timeline.recent.publish_update(grown)
        assert received == [first, {"message": "Hello", "chunks": ["Hel", "lo", None]}]
        assert got == []
        assert reads == [1]  # once quiet, the last look before closing


@asynccontextmanager
async def two_processes() -> AsyncIterator[tuple[Runtime, Runtime]]:
    """Two runtimes on one fresh PostgreSQL database, as two workers are."""
    async with postgres_database() as url:
        runtimes: list[Runtime] = []
        try:
            for _ in range(2):
                runtimes.append(
                    await start_runtime(
                        Settings(database_url=url), embedder=HashingEmbedder(), offline=True
                    )
                )
            yield runtimes[0], runtimes[1]
        finally:
            for rt in runtimes:
                await rt.close()


def app_client(runtime: Runtime) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(create_app(runtime)), base_url="http://localhost"
    )


@pytest.mark.postgres
async def test_another_process_writes_reach_a_poll_here_through_the_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with (
        two_processes() as (here, there),
        app_client(here) as ours,
        app_client(there) as theirs,
    ):
        agent = (await ours.post("/agents", json={"name": "A"})).json()
        session_id = await new_session(ours, agent["id"])
        mine = await post_custom(ours, session_id, "mine")
        # Another process completes the event this one appended (a reply it recovers).
        heard = here.bus.listen(session_id)
        whole = await there.store.update_event_data(session_id, mine["id"], "completed")
        there.engine.timeline.recent.publish_update(whole)
        assert await heard.wait(10)
        reads = count_reads(here, monkeypatch)
        updated = await ours.get(
            f"/sessions/{session_id}/events", params={"min_offset": 0, "wait_for_data": 30}
        )
        assert [e["data"] for e in updated.json()] == ["completed"]
        assert reads == [0]

        # Another process appends while a poll waits here: it is read from the store.
        answer = poll(ours, session_id, 1)
        await wait_for_listeners(here.bus, 1)  # type: ignore[arg-type]
        await post_custom(theirs, session_id, "theirs")
        assert [e["data"] for e in (await answer).json()] == ["theirs"]
        assert reads == [0, 1, 1]

        # This process's next append is the newest event: from it on, memory answers again.
        await post_custom(ours, session_id, "mine again")
        newest = await ours.get(
            f"/sessions/{session_id}/events", params={"min_offset": 2, "wait_for_data": 30}
        )
        assert [e["data"] for e in newest.json()] == ["mine again"]
        assert reads == [0, 1, 1]
        everything = await ours.get(
            f"/sessions/{session_id}/events", params={"min_offset": 1, "wait_for_data": 30}
        )
        assert [e["data"] for e in everything.json()] == ["theirs", "mine again"]
        assert reads == [0, 1, 1, 1]
