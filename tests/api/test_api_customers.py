"""``/customers``."""

from __future__ import annotations

import httpx
from api_scenario import refusal

from tactful.domain import Customer, Session
from tactful.runtime import Runtime


async def test_crud(client: httpx.AsyncClient, runtime: Runtime) -> None:
    tag = (await client.post("/tags", json={"name": "gold"})).json()
    created = await client.post(
        "/customers", json={"name": "Ada", "metadata": {"tier": "gold"}, "tags": [tag["id"]]}
    )
    assert created.status_code == 201
    ada = created.json()
    assert ada["metadata"] == {"tier": "gold"}
    assert ada["tags"] == [tag["id"]]
    assert (await runtime.store.get(Customer, ada["id"])).name == "Ada"
    assert (await client.get(f"/customers/{ada['id']}")).json() == ada

    updated = await client.patch(
        f"/customers/{ada['id']}",
        json={
            "name": "Ada L.",
            "metadata": {"set": {"city": "London"}, "unset": ["tier"]},
            "tags": {"remove": [tag["id"]]},
        },
    )
    assert updated.status_code == 200
    assert updated.json()["name"] == "Ada L."
    assert updated.json()["metadata"] == {"city": "London"}
    assert updated.json()["tags"] == []

    assert (await client.delete(f"/customers/{ada['id']}")).status_code == 204
    assert (await client.get(f"/customers/{ada['id']}")).status_code == 404


async def test_list_is_plain_without_limit_and_paginated_with_it(client: httpx.AsyncClient) -> None:
    ids = [(await client.post("/customers", json={"name": f"C{i}"})).json()["id"] for i in range(5)]
    plain = (await client.get("/customers")).json()
    assert [c["id"] for c in plain] == ids
    newest_first = (await client.get("/customers", params={"sort": "desc"})).json()
    assert [c["id"] for c in newest_first] == ids[::-1]

    page1 = (await client.get("/customers", params={"limit": 2})).json()
    assert [c["id"] for c in page1["items"]] == ids[:2]
    assert page1["total_count"] == 5
    assert page1["has_more"] is True
    page2 = (
        await client.get("/customers", params={"limit": 2, "cursor": page1["next_cursor"]})
    ).json()
    assert [c["id"] for c in page2["items"]] == ids[2:4]
    page3 = (
        await client.get("/customers", params={"limit": 2, "cursor": page2["next_cursor"]})
    ).json()
    assert [c["id"] for c in page3["items"]] == ids[4:]
    assert page3["has_more"] is False
    assert page3["next_cursor"] is None

    bad = await client.get("/customers", params={"limit": 2, "cursor": "!!!"})
    assert bad.status_code == 422
    assert "cursor" in refusal(bad)


async def test_metadata_values_are_strings(client: httpx.AsyncClient) -> None:
    response = await client.post("/customers", json={"name": "A", "metadata": {"age": 3}})
    assert response.status_code == 422


async def test_deleting_a_customer_deletes_their_sessions(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    bob = (await client.post("/customers", json={"name": "Bob"})).json()
    session = (
        await client.post("/sessions", json={"agent_id": agent["id"], "customer_id": bob["id"]})
    ).json()
    assert (await client.delete(f"/customers/{bob['id']}")).status_code == 204
    assert await runtime.store.find(Session, session["id"]) is None
