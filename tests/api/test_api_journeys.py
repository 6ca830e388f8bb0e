"""``/journeys``: Parlant's CRUD, graph editing with validation, and the Mermaid drawing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from parlant.client import AsyncParlantClient
from parlant.client.types import Journey as ParlantJourney

from tactful.domain import (
    CannedResponse,
    Endpoint,
    Guideline,
    Journey,
    Relationship,
    RelationshipKind,
    ToolSpec,
)
from tactful.runtime import Runtime


def problems(response: httpx.Response) -> list[str]:
    """A refused graph's problems: FastAPI's 422 shape, one item each."""
    assert response.status_code == 422
    return [item["msg"] for item in response.json()["detail"]]


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


async def test_a_condition_reuses_the_observation_with_exactly_the_journey_tags(
    server_url: str, runtime: Runtime
) -> None:
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as client:
        agent = f"agent:{(await client.post('/agents', json={'name': 'A'})).json()['id']}"
        vip = (await client.post("/tags", json={"name": "vip"})).json()["id"]
        first = await _create(client, tags=[agent, vip])
        again = await _create(client, title="Exchange an item", tags=[vip, agent])
        wider = await _create(client, title="Return, for anyone", tags=[agent])
    assert again["conditions"] == first["conditions"] != wider["conditions"]
    stored = {g.id: g.tags for g in await runtime.store.list(Guideline)}
    assert stored == {first["conditions"][0]: [agent, vip], wider["conditions"][0]: [agent]}


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
    assert problems(response) == [
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


ADDRESS: dict[str, Any] = {
    "initial_state_id": "a0",
    "states": [
        {"id": "a0"},
        {"id": "a1", "action": "Ask for the new address"},
        {"id": "a2", "kind": "end"},
    ],
    "transitions": [
        {"source": "a0", "target": "a1"},
        {"source": "a1", "target": "a2"},
    ],
}


async def _address(client: httpx.AsyncClient) -> dict[str, Any]:
    journey = await _create(
        client, title="Change delivery address", conditions=["the customer moved"]
    )
    put = await client.put(f"/journeys/{journey['id']}/graph", json=ADDRESS)
    assert put.status_code == 200, put.text
    return journey


def _graph_into(address_id: str, **state: Any) -> dict[str, Any]:
    """A journey that runs the address journey as a sub-journey, then may move into it."""
    return {
        "initial_state_id": "start",
        "states": [
            {"id": "start"},
            {"id": "sub", "kind": "journey", "sub_journey_id": address_id},
            {"id": "ask", "action": "Ask for the order ID", **state},
            {"id": "end", "kind": "end"},
        ],
        "transitions": [
            {"source": "start", "target": "sub"},
            {"source": "sub", "target": "ask"},
            {"source": "ask", "target": "end", "condition": "they gave it"},
            {
                "id": "x",
                "source": "ask",
                "target": "a1",
                "target_journey_id": address_id,
                "condition": "they want to change the address",
            },
        ],
    }


async def test_graph_with_sub_journeys_canned_responses_and_cross_journey_transitions(
    client: httpx.AsyncClient,
) -> None:
    address = await _address(client)
    journey = await _create(client)
    canned = (await client.post("/canned_responses", json={"value": "Your order ID?"})).json()
    graph = _graph_into(address["id"], canned_responses=[canned["id"]])
    put = await client.put(f"/journeys/{journey['id']}/graph", json=graph)
    assert put.status_code == 200, put.text
    assert put.json()["states"][2]["canned_responses"] == [canned["id"]]
    assert put.json()["transitions"][3]["target_journey_id"] == address["id"]

    drawn = (await client.get(f"/journeys/{journey['id']}/mermaid")).text.splitlines()
    assert "    s1 : journey Change delivery address" in drawn
    assert (
        "    x0 : continue in #quot;Change delivery address#quot; at Ask for the new address"
        in drawn
    )
    assert "    s2 --> x0 : they want to change the address" in drawn


async def test_graph_naming_unknown_journeys_states_or_canned_responses_is_refused(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    address = await _address(client)
    journey = await _create(client)
    bad = _graph_into("gone", canned_responses=["nope"])
    bad["transitions"].append(
        {"id": "y", "source": "ask", "target": "ghost", "target_journey_id": address["id"]}
    )
    response = await client.put(f"/journeys/{journey['id']}/graph", json=bad)
    assert response.status_code == 422
    assert problems(response) == [
        "transition 'x' leads to unknown journey 'gone'",
        f"transition 'y' is dangling: its target 'ghost' is not a state of journey "
        f"{address['id']!r}",
        "state 'sub' names unknown sub-journey 'gone'",
        "state 'ask' names unknown canned response 'nope'",
    ]
    own = _graph_into(journey["id"])
    response = await client.put(f"/journeys/{journey['id']}/graph", json=own)
    assert response.status_code == 422
    assert problems(response) == [
        "transition 'x' names its own journey as target_journey_id; leave target_journey_id "
        "out for a transition within the journey",
        "journey state 'sub' runs its own journey as a sub-journey",
    ]
    assert (await runtime.store.get(Journey, journey["id"])).transitions == []


async def test_a_journey_used_by_another_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    address = await _address(client)
    journey = await _create(client)
    put = await client.put(f"/journeys/{journey['id']}/graph", json=_graph_into(address["id"]))
    assert put.status_code == 200, put.text
    refused = await client.delete(f"/journeys/{address['id']}")
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        f"journey {address['id']!r} is still used by {journey['id']!r} ('Return an item'), as a "
        "sub-journey or a transition into it: change their graphs first"
    )
    # Only the cross-journey transition left: still refused.
    graph = _graph_into(address["id"])
    graph["states"][1] = {"id": "sub", "action": "Ask why"}
    put = await client.put(f"/journeys/{journey['id']}/graph", json=graph)
    assert put.status_code == 200, put.text
    assert (await client.delete(f"/journeys/{address['id']}")).status_code == 409
    # The journey that uses it can go, and then the other one too.
    assert (await client.delete(f"/journeys/{journey['id']}")).status_code == 204
    assert (await client.delete(f"/journeys/{address['id']}")).status_code == 204


async def test_deleting_a_journey_cleans_up_after_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    journey = await _create(
        client,
        conditions=["the customer wants to return an item", "the item broke", "it is late"],
        tags=[f"agent:{agent['id']}"],
    )
    tag = f"journey:{journey['id']}"
    only_here, shared, related = journey["conditions"]
    # Another journey starts on one condition; a relationship names another.
    other = await _create(client, title="Repair", conditions=[])
    patch = await client.patch(f"/journeys/{other['id']}", json={"conditions": {"add": [shared]}})
    assert patch.status_code == 200, patch.text
    rule = (await client.post("/guidelines", json={"condition": "x", "action": "y"})).json()
    kept = await client.post(
        "/relationships",
        json={"source_guideline": rule["id"], "target_guideline": related, "kind": "dependency"},
    )
    assert kept.status_code == 201, kept.text
    # A condition with an action is a guideline in its own right.
    ruling = (await client.post("/guidelines", json={"condition": "z", "action": "w"})).json()
    patch = await client.patch(
        f"/journeys/{journey['id']}", json={"conditions": {"add": [ruling["id"]]}}
    )
    assert patch.status_code == 200, patch.text
    # Journey-scoped definitions (the SDK's), and a relationship with the journey as an end.
    store = runtime.store
    scoped = await store.create(Guideline(condition="the box is open", action="ask", tags=[tag]))
    canned = await store.create(CannedResponse(value="Hi", tags=[f"agent:{agent['id']}", tag]))
    await store.create(
        Relationship(
            kind=RelationshipKind.PRIORITY,
            source=Endpoint.tag(tag),
            target=Endpoint.guideline(rule["id"]),
        )
    )

    assert (await client.delete(f"/journeys/{journey['id']}")).status_code == 204
    assert await runtime.store.find(Guideline, only_here) is None
    assert await runtime.store.find(Guideline, shared) is not None
    assert await runtime.store.find(Guideline, related) is not None
    assert await runtime.store.find(Guideline, ruling["id"]) is not None
    assert (await store.get(Guideline, scoped.id)).tags == []
    assert (await store.get(CannedResponse, canned.id)).tags == [f"agent:{agent['id']}"]
    assert [r.id for r in await store.list(Relationship)] == [kept.json()["id"]]


async def test_deleting_a_canned_response_removes_it_from_journey_states(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    journey = await _create(client)
    canned = (await client.post("/canned_responses", json={"value": "Your order ID?"})).json()
    graph = {
        "initial_state_id": "start",
        "states": [
            {"id": "start"},
            {"id": "ask", "action": "Ask", "canned_responses": [canned["id"]]},
        ],
        "transitions": [{"source": "start", "target": "ask"}],
    }
    assert (await client.put(f"/journeys/{journey['id']}/graph", json=graph)).status_code == 200
    assert (await client.delete(f"/canned_responses/{canned['id']}")).status_code == 204
    stored = await runtime.store.get(Journey, journey["id"])
    assert stored.states[1].canned_responses == []
