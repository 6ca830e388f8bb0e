"""``/agents``."""

from __future__ import annotations

import httpx

from tactful.domain import Agent, Session
from tactful.runtime import Runtime


async def test_create_read_list_update_delete(client: httpx.AsyncClient, runtime: Runtime) -> None:
    tag = (await client.post("/tags", json={"name": "vip"})).json()
    created = await client.post(
        "/agents",
        json={
            "name": "Haxon",
            "description": "Technical support",
            "max_engine_iterations": 2,
            "composition_mode": "canned_fluid",
            "tags": [tag["id"]],
        },
    )
    assert created.status_code == 201
    agent = created.json()
    assert agent["name"] == "Haxon"
    assert agent["description"] == "Technical support"
    assert agent["max_engine_iterations"] == 2
    assert agent["composition_mode"] == "canned_fluid"
    assert agent["message_output_mode"] == "block"
    assert agent["tags"] == [tag["id"]]
    stored = await runtime.store.get(Agent, agent["id"])
    assert stored.name == "Haxon"

    assert (await client.get(f"/agents/{agent['id']}")).json() == agent
    assert [a["id"] for a in (await client.get("/agents")).json()] == [agent["id"]]

    updated = await client.patch(
        f"/agents/{agent['id']}",
        json={
            "name": "Haxon 2",
            "composition_mode": "strict_canned",
            "tags": {"remove": [tag["id"]]},
        },
    )
    assert updated.status_code == 200
    assert updated.json()["name"] == "Haxon 2"
    assert updated.json()["composition_mode"] == "strict_canned"
    assert updated.json()["tags"] == []
    assert updated.json()["description"] == "Technical support"

    deleted = await client.delete(f"/agents/{agent['id']}")
    assert deleted.status_code == 204
    assert (await client.get(f"/agents/{agent['id']}")).status_code == 404


async def test_custom_id_and_conflict(client: httpx.AsyncClient) -> None:
    first = await client.post("/agents", json={"name": "A", "id": "support"})
    assert first.status_code == 201
    assert first.json()["id"] == "support"
    again = await client.post("/agents", json={"name": "B", "id": "support"})
    assert again.status_code == 409
    assert "support" in again.json()["detail"]


async def test_unknown_ids_are_404_with_a_message(client: httpx.AsyncClient) -> None:
    for method in ("GET", "DELETE"):
        response = await client.request(method, "/agents/nope")
        assert response.status_code == 404
        assert response.json() == {"detail": "Agent 'nope' was not found"}
    patched = await client.patch("/agents/nope", json={"name": "x"})
    assert patched.status_code == 404


async def test_unknown_tag_writes_nothing(client: httpx.AsyncClient, runtime: Runtime) -> None:
    response = await client.post("/agents", json={"name": "A", "tags": ["missing"]})
    assert response.status_code == 404
    assert response.json() == {"detail": "Tag 'missing' was not found"}
    assert await runtime.store.list(Agent) == []


async def test_invalid_values_are_422(client: httpx.AsyncClient) -> None:
    cases = [
        {"name": ""},
        {"name": "A", "max_engine_iterations": 0},
        {"name": "A", "composition_mode": "poetic"},
        {"name": "A", "unknown_field": 1},
        {},
    ]
    for body in cases:
        response = await client.post("/agents", json=body)
        assert response.status_code == 422, body
        assert isinstance(response.json()["detail"], list)
        assert response.json()["detail"][0]["loc"][0] == "body"


async def test_deleting_an_agent_deletes_its_sessions(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    other = (await client.post("/agents", json={"name": "B"})).json()
    mine = (await client.post("/sessions", json={"agent_id": agent["id"]})).json()
    theirs = (await client.post("/sessions", json={"agent_id": other["id"]})).json()
    await client.post(
        f"/sessions/{mine['id']}/events",
        json={"kind": "custom", "source": "system", "data": {"note": 1}},
    )
    assert (await client.delete(f"/agents/{agent['id']}")).status_code == 204
    assert await runtime.store.find(Session, mine["id"]) is None
    assert await runtime.store.list_events(mine["id"]) == []
    assert await runtime.store.find(Session, theirs["id"]) is not None
