"""``/sessions``."""

from __future__ import annotations

import httpx
from production import Production

from tactful.domain import GUEST_CUSTOMER_ID, Customer, Session, SessionMode
from tactful.runtime import Runtime


async def test_create_defaults_to_the_guest_customer(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    response = await client.post(
        "/sessions",
        params={"allow_greeting": "true"},
        json={"agent_id": agent["id"], "title": "Hi", "metadata": {"p": 1}, "labels": ["x", "x"]},
    )
    assert response.status_code == 201, response.text
    session = response.json()
    assert session["customer_id"] == GUEST_CUSTOMER_ID
    assert session["title"] == "Hi"
    assert session["mode"] == "auto"
    assert session["metadata"] == {"p": 1}
    assert session["labels"] == ["x"]
    assert session["consumption_offsets"] == {"client": 0}
    guest = await runtime.store.get(Customer, GUEST_CUSTOMER_ID)
    assert guest.name == "Guest"
    # A second guest session reuses the guest customer.
    again = await client.post("/sessions", json={"agent_id": agent["id"]})
    assert again.json()["customer_id"] == GUEST_CUSTOMER_ID
    assert len(await runtime.store.list(Customer)) == 1


async def test_unknown_agent_or_customer_is_404_and_writes_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    no_agent = await client.post("/sessions", json={"agent_id": "ghost"})
    assert no_agent.status_code == 404
    assert no_agent.json() == {"detail": "Agent 'ghost' was not found"}
    agent = (await client.post("/agents", json={"name": "A"})).json()
    no_customer = await client.post(
        "/sessions", json={"agent_id": agent["id"], "customer_id": "ghost"}
    )
    assert no_customer.status_code == 404
    assert no_customer.json() == {"detail": "Customer 'ghost' was not found"}
    assert await runtime.store.list(Session) == []


async def test_read_update_delete(client: httpx.AsyncClient, runtime: Runtime) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    other = (await client.post("/agents", json={"name": "B"})).json()
    session = (
        await client.post(
            "/sessions", json={"agent_id": agent["id"], "metadata": {"a": 1}, "labels": ["old"]}
        )
    ).json()
    # Staff (everyone in development) also get the session's model usage: none yet.
    read = (await client.get(f"/sessions/{session['id']}")).json()
    assert read.pop("usage")["model_calls"] == 0
    assert read == session
    updated = await client.patch(
        f"/sessions/{session['id']}",
        json={
            "title": "New",
            "mode": "manual",
            "consumption_offsets": {"client": 4},
            "agent_id": other["id"],
            "metadata": {"set": {"b": 2}, "unset": ["a"]},
            "labels": {"upsert": ["vip"], "remove": ["old"]},
        },
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert body["title"] == "New"
    assert body["mode"] == "manual"
    assert body["consumption_offsets"] == {"client": 4}
    assert body["agent_id"] == other["id"]
    assert body["metadata"] == {"b": 2}
    assert body["labels"] == ["vip"]
    assert (await runtime.store.get(Session, session["id"])).mode is SessionMode.MANUAL

    bad = await client.patch(f"/sessions/{session['id']}", json={"agent_id": "ghost"})
    assert bad.status_code == 404
    assert (await runtime.store.get(Session, session["id"])).agent_id == other["id"]
    negative = await client.patch(
        f"/sessions/{session['id']}", json={"consumption_offsets": {"client": -1}}
    )
    assert negative.status_code == 422

    assert (await client.delete(f"/sessions/{session['id']}")).status_code == 204
    assert (await client.get(f"/sessions/{session['id']}")).status_code == 404
    assert (await client.delete(f"/sessions/{session['id']}")).status_code == 404


async def test_list_filters_and_pages(client: httpx.AsyncClient) -> None:
    a = (await client.post("/agents", json={"name": "A"})).json()["id"]
    b = (await client.post("/agents", json={"name": "B"})).json()["id"]
    bob = (await client.post("/customers", json={"name": "Bob"})).json()["id"]
    s1 = (await client.post("/sessions", json={"agent_id": a, "labels": ["vip"]})).json()["id"]
    s2 = (await client.post("/sessions", json={"agent_id": a, "customer_id": bob})).json()["id"]
    s3 = (await client.post("/sessions", json={"agent_id": b, "customer_id": bob})).json()["id"]

    def ids(body: list[dict[str, str]]) -> list[str]:
        return [s["id"] for s in body]

    assert ids((await client.get("/sessions")).json()) == [s1, s2, s3]
    assert ids((await client.get("/sessions", params={"agent_id": a})).json()) == [s1, s2]
    assert ids((await client.get("/sessions", params={"customer_id": bob})).json()) == [s2, s3]
    both = {"agent_id": a, "customer_id": bob}
    assert ids((await client.get("/sessions", params=both)).json()) == [s2]
    assert ids((await client.get("/sessions", params={"labels": ["vip"]})).json()) == [s1]
    page = (await client.get("/sessions", params={"limit": 2, "sort": "desc"})).json()
    assert ids(page["items"]) == [s3, s2]
    assert page["total_count"] == 3
    assert page["has_more"] is True

    assert (await client.delete("/sessions", params={"agent_id": a})).status_code == 204
    assert ids((await client.get("/sessions")).json()) == [s3]


async def test_a_sessions_journeys(client: httpx.AsyncClient, runtime: Runtime) -> None:
    agent = (await client.post("/agents", json={"name": "Shop"})).json()
    journey = await client.post(
        "/journeys",
        json={
            "title": "Return an item",
            "conditions": ["the customer wants to return an item"],
            "tags": [f"agent:{agent['id']}"],
        },
    )
    assert journey.status_code == 201, journey.text
    jid = journey.json()["id"]
    graph = {
        "initial_state_id": "start",
        "states": [
            {"id": "start"},
            {"id": "ask", "action": "Ask for the order number"},
            {"id": "end", "kind": "end"},
        ],
        "transitions": [
            {"source": "start", "target": "ask"},
            {"source": "ask", "target": "end"},
        ],
    }
    assert (await client.put(f"/journeys/{jid}/graph", json=graph)).status_code == 200
    session = (await client.post("/sessions", json={"agent_id": agent["id"]})).json()
    assert (await client.get(f"/sessions/{session['id']}/journeys")).json() == []

    posted = await client.post(
        f"/sessions/{session['id']}/events",
        json={"kind": "message", "source": "customer", "message": "I want to return an item"},
    )
    assert posted.status_code == 201, posted.text
    await runtime.engine.wait_idle(session["id"])
    [run] = (await client.get(f"/sessions/{session['id']}/journeys")).json()
    assert run == {
        "journey_id": jid,
        "title": "Return an item",
        "status": "active",
        "current_state_id": "ask",
        "current_state": "1 (Ask for the order number)",
        "path": ["start", "ask"],
        "ended_reason": None,
        "parent_journey_id": None,
        "updated_offset": run["updated_offset"],
    }
    assert (await client.get("/sessions/nope/journeys")).status_code == 404
    # A deleted journey is left out.
    assert (await client.delete(f"/journeys/{jid}")).status_code == 204
    assert (await client.get(f"/sessions/{session['id']}/journeys")).json() == []


async def test_only_staff_see_a_sessions_model_usage(production: Production) -> None:
    async with production.client(production.admin_key) as admin:
        agent = (await admin.post("/agents", json={"name": "A"})).json()
        body = {"agent_id": agent["id"], "customer_id": production.customer_a}
        session = (await admin.post("/sessions", json=body)).json()
    path = f"/sessions/{session['id']}"
    for credential in (production.admin_key, production.operator_key):
        async with production.client(credential) as staff:
            read = (await staff.get(path)).json()
        assert read.pop("usage") == {
            "model_calls": 0,
            "prompt_tokens": 0,
            "cached_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.0,
            "cost_complete": True,
        }
        assert read == session
    # The customer gets Parlant's session as it was, without the key.
    async with production.client(production.token(production.customer_a)) as customer:
        response = await customer.get(path)
    assert response.status_code == 200
    assert response.json() == session
