"""``GET /sessions/{id}/events`` answers one page at a time (``limit``, 100 by default, at most
1,000) and says with ``Tactful-Has-More`` that another follows; clients that follow
``min_offset`` = last offset + 1 (Parlant's, ours) read a long timeline whole, and SSE sends a
long backlog page by page."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from api_scenario import new_session, refusal
from parlant.client import AsyncParlantClient
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tactful.client import TactfulClient
from tactful.domain import EventKind, EventSource, new_id, utcnow
from tactful.runtime import Runtime
from tactful.store.schema import ENTITY_TABLES, events

# The size of the timeline in the issue (1.5 MB as one response before pages).
LONG = 3_800


async def timeline(client: httpx.AsyncClient, runtime: Runtime, count: int) -> str:
    """A session holding ``count`` custom events, offsets 0 to count - 1."""
    agent = (await client.post("/agents", json={"name": "A"})).json()
    session_id = await new_session(client, agent["id"])
    rows = [
        {
            "id": new_id(),
            "session_id": session_id,
            "offset": i,
            "kind": EventKind.CUSTOM.value,
            "source": EventSource.SYSTEM.value,
            "trace_id": "",
            "creation_utc": utcnow(),
            "data": {"i": i},
            "metadata": {},
            "deleted": False,
        }
        for i in range(count)
    ]
    sessions = ENTITY_TABLES["sessions"]
    # One bulk insert: appending one by one would take seconds.
    async with runtime.store.transaction() as conn:
        assert isinstance(conn, AsyncConnection)
        await conn.execute(insert(events), rows)
        await conn.execute(
            update(sessions).where(sessions.c.id == session_id).values(next_offset=count)
        )
    return session_id


@pytest_asyncio.fixture
async def long_session(server_url: str, runtime: Runtime) -> AsyncIterator[str]:
    async with httpx.AsyncClient(base_url=server_url) as client:
        yield await timeline(client, runtime, LONG)


async def test_a_listing_is_one_page_and_says_whether_more_follow(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    session_id = await timeline(client, runtime, 250)
    url = f"/sessions/{session_id}/events"
    pages = []
    offset = 0
    while True:
        response = await client.get(url, params={"min_offset": offset, "wait_for_data": 0})
        assert response.status_code == 200
        page = response.json()
        pages.append((len(page), response.headers["Tactful-Has-More"]))
        if response.headers["Tactful-Has-More"] == "false":
            break
        offset = page[-1]["offset"] + 1
    assert pages == [(100, "true"), (100, "true"), (50, "false")]

    everything = await client.get(url, params={"wait_for_data": 0, "limit": 1000})
    assert [e["offset"] for e in everything.json()] == list(range(250))
    assert everything.headers["Tactful-Has-More"] == "false"
    # A long poll answers a page too.
    polled = await client.get(url, params={"min_offset": 10, "limit": 5, "wait_for_data": 5})
    assert [e["offset"] for e in polled.json()] == [10, 11, 12, 13, 14]
    assert polled.headers["Tactful-Has-More"] == "true"
    filtered = await client.get(url, params={"kinds": "message", "wait_for_data": 0})
    assert filtered.json() == [] and filtered.headers["Tactful-Has-More"] == "false"


async def test_page_sizes_are_bounded(client: httpx.AsyncClient, runtime: Runtime) -> None:
    session_id = await timeline(client, runtime, 1)
    url = f"/sessions/{session_id}/events"
    for limit in (0, 1001, 2**31):
        response = await client.get(url, params={"limit": limit, "wait_for_data": 0})
        assert "limit" in str(response.json()), refusal(response)


async def test_the_header_is_exposed_to_browsers(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        "/sessions",
        headers={"Origin": "http://shop.localhost", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 200
    response = await client.get("/healthz", headers={"Origin": "http://shop.localhost"})
    assert "tactful-has-more" in response.headers["access-control-expose-headers"].lower()


async def test_sse_sends_a_long_backlog_page_by_page(server_url: str, long_session: str) -> None:
    received = []
    async with (
        httpx.AsyncClient(base_url=server_url, timeout=30) as client,
        client.stream(
            "GET",
            f"/sessions/{long_session}/events",
            params={"sse": "true", "wait_for_data": 0.5},
        ) as stream,
    ):
        assert stream.status_code == 200
        async for line in stream.aiter_lines():
            if line.startswith("data: "):
                received.append(json.loads(line[len("data: ") :])["offset"])
    assert received == list(range(LONG))


async def test_parlants_client_reads_a_long_timeline_by_following_offsets(
    server_url: str, long_session: str
) -> None:
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as http:
        parlant = AsyncParlantClient(base_url=server_url, httpx_client=http)
        offsets: list[int] = []
        calls = 0
        while True:
            start = offsets[-1] + 1 if offsets else 0
            page = await parlant.sessions.list_events(
                long_session, min_offset=start, wait_for_data=0
            )
            calls += 1
            if not page:
                break
            offsets += [e.offset for e in page]
    assert offsets == list(range(LONG))
    assert calls == LONG // 100 + 1  # 38 pages of 100, then an empty answer


async def test_our_client_reads_a_long_timeline_whole(server_url: str, long_session: str) -> None:
    async with TactfulClient(server_url) as client:
        events = await client.read_events(long_session)
        assert [e.offset for e in events] == list(range(LONG))
        later = await client.read_events(long_session, min_offset=LONG - 3)
        assert [e.offset for e in later] == [LONG - 3, LONG - 2, LONG - 1]
        assert await client.read_events(long_session, kinds=["message"]) == []
