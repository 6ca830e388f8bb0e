"""``/journeys``: Parlant's CRUD, graph editing with validation, and the Mermaid drawing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from parlant.client import AsyncParlantClient
from parlant.client.types import Journey as ParlantJourney

from tactful.domain import Guideline, Journey, ToolSpec
from tactful.runtime import Runtime


async def _create(client: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
    response = await client.post(
        "/journeys",
        json={
            "title": "Return an item",
            "description": "Returns",
            "conditions": ["the customer wants to return an item"],
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_crud(client: httpx.AsyncClient, runtime: Runtime) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    tag = f"agent:{agent['id']}"
    journey = await _create(client, tags=[tag], labels=["vip"], priority=2)
    [condition] = journey["conditions"]
    observation = await runtime.store.get(Guideline, condition)
    assert observation.condition == "the customer wants to return an item"
    assert observation.action is None and observation.tags == [tag]
    assert journey["tags"] == [tag] and journey["labels"] == ["vip"] and journey["priority"] == 2
    assert (await client.get(f"/journeys/{journey['id']}")).json() == journey
    assert (await client.get("/journeys", params={"tag_id": tag})).json() == [journey]
    assert (await client.get("/journeys", params={"tag_id": "x"})).json() == []

    other = (await client.post("/guidelines", json={"condition": "it is late"})).json()
    updated = await client.patch(
        f"/journeys/{journey['id']}",
        json={
            "title": "Returns",
            "conditions": {"add": [other["id"]], "remove": [condition]},
            "labels": {"remove": ["vip"]},
        },
    )
    assert updated.status_code == 200
    assert updated.json()["title"] == "Returns"
    assert updated.json()["conditions"] == [other["id"]]
    assert updated.json()["labels"] == []
    missing = await client.patch(
        f"/journeys/{journey['id']}", json={"conditions": {"add": ["nope"]}}
    )
    assert missing.status_code == 404

    assert (await client.delete(f"/journeys/{journey['id']}")).status_code == 204
    for path in ("", "/graph", "/mermaid"):
        assert (await client.get(f"/journeys/{journey['id']}{path}")).status_code == 404
    assert (await client.delete(f"/journeys/{journey['id']}")).status_code == 404


GRAPH: dict[str, Any] = {
    "initial_state_id": "start",
    "states": [
        {"id": "start"},
        {"id": "ask", "action": "Ask for the order ID"},
        {"id": "find", "kind": "tool", "tools": ["shop:find_order"]},
        {"id": "end", "kind": "end"},
    ],
    "transitions": [
        {"id": "t1", "source": "start", "target": "ask"},
        {"id": "t2", "source": "ask", "target": "find", "condition": "they gave an order ID"},
        {"id": "t3", "source": "find", "target": "end"},
    ],
}


async def test_graph_put_read_and_mermaid(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await runtime.store.create(
        ToolSpec(id="shop:find_order", service_name="shop", name="find_order")
    )
    journey = await _create(client)
    initial = (await client.get(f"/journeys/{journey['id']}/graph")).json()
    assert len(initial["states"]) == 1 and initial["transitions"] == []
    assert initial["initial_state_id"] == initial["states"][0]["id"]

    put = await client.put(f"/journeys/{journey['id']}/graph", json=GRAPH)
    assert put.status_code == 200, put.text
    graph = (await client.get(f"/journeys/{journey['id']}/graph")).json()
    assert graph == put.json()
    assert [s["id"] for s in graph["states"]] == ["start", "ask", "find", "end"]
    assert graph["transitions"][1]["condition"] == "they gave an order ID"

    drawn = await client.get(f"/journeys/{journey['id']}/mermaid")
    assert drawn.headers["content-type"].startswith("text/plain")
    assert drawn.text.splitlines() == [
        "stateDiagram-v2",
        "    [*] --> s0",
        "    s1 : Ask for the order ID",
        "    s2 : tool shop#58;find_order",
        "    s0 --> s1",
        "    s1 --> s2 : they gave an order ID",
        "    s2 --> s3",
        "    s3 --> [*]",
    ]


async def test_an_invalid_graph_is_refused_and_nothing_written(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    journey = await _create(client)
    before = await runtime.store.get(Journey, journey["id"])
    bad = {
        "initial_state_id": "start",
        "states": [
            *GRAPH["states"],
            {"id": "lost", "action": "Hello"},
        ],
        "transitions": [
            *GRAPH["transitions"],
            {"id": "t4", "source": "end", "target": "ghost"},
        ],
    }
    response = await client.put(f"/journeys/{journey['id']}/graph", json=bad)
    assert response.status_code == 422
    assert response.json()["problems"] == [
        "transition 't4' is dangling: its target 'ghost' is not a state",
        "transition 't4' leaves the end state 'end'",
        "state 'lost' ('Hello') is unreachable from the initial state",
        "tool state 'find' names unknown tool 'shop:find_order'",
    ]
    assert await runtime.store.get(Journey, journey["id"]) == before
    unknown = await client.put("/journeys/nope/graph", json=GRAPH)
    assert unknown.status_code == 404


@pytest_asyncio.fixture
async def parlant(server_url: str) -> AsyncIterator[AsyncParlantClient]:
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as http:
        yield AsyncParlantClient(base_url=server_url, httpx_client=http)


async def test_the_official_client(parlant: AsyncParlantClient) -> None:
    created = await parlant.journeys.create(
        title="Card help",
        description="Lock or replace a card",
        conditions=["the customer needs help with their card"],
        labels=["vip"],
    )
    assert isinstance(created, ParlantJourney)
    assert len(created.conditions) == 1 and created.labels == ["vip"]
    read = await parlant.journeys.retrieve(created.id)
    assert read.title == "Card help" and read.conditions == created.conditions
    assert [j.id for j in await parlant.journeys.list()] == [created.id]
    updated = await parlant.journeys.update(created.id, title="Cards")
    assert updated.title == "Cards"
    assert (await parlant.journeys.mermaid(created.id)).startswith("stateDiagram-v2")
    await parlant.journeys.delete(created.id)
    assert await parlant.journeys.list() == []


async def test_deleting_a_condition_guideline_removes_it_from_journeys(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    journey = await _create(client)
    [condition] = journey["conditions"]
    assert (await client.delete(f"/guidelines/{condition}")).status_code == 204
    read = (await client.get(f"/journeys/{journey['id']}")).json()
    assert read["conditions"] == []
