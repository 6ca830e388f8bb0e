"""``/tags``."""

from __future__ import annotations

import httpx

from tactful.domain import Agent, Guideline
from tactful.runtime import Runtime


async def test_crud_and_name_filter(client: httpx.AsyncClient) -> None:
    vip = await client.post("/tags", json={"name": "vip"})
    assert vip.status_code == 201
    tag = vip.json()
    await client.post("/tags", json={"name": "other"})
    assert (await client.get(f"/tags/{tag['id']}")).json() == tag
    assert [t["name"] for t in (await client.get("/tags")).json()] == ["vip", "other"]
    assert [t["id"] for t in (await client.get("/tags", params={"name": "vip"})).json()] == [
        tag["id"]
    ]
    renamed = await client.patch(f"/tags/{tag['id']}", json={"name": "VIP"})
    assert renamed.json() == {**tag, "name": "VIP"}
    assert (await client.delete(f"/tags/{tag['id']}")).status_code == 204
    assert (await client.get(f"/tags/{tag['id']}")).status_code == 404
    assert (await client.delete(f"/tags/{tag['id']}")).status_code == 404


async def test_deleting_a_tag_removes_it_from_what_carries_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    tag = (await client.post("/tags", json={"name": "vip"})).json()
    agent = (await client.post("/agents", json={"name": "A", "tags": [tag["id"]]})).json()
    guideline = (
        await client.post("/guidelines", json={"condition": "c", "tags": [tag["id"]]})
    ).json()
    assert (await client.delete(f"/tags/{tag['id']}")).status_code == 204
    assert (await runtime.store.get(Agent, agent["id"])).tags == []
    assert (await runtime.store.get(Guideline, guideline["id"])).tags == []


async def test_empty_name_is_422(client: httpx.AsyncClient) -> None:
    assert (await client.post("/tags", json={"name": ""})).status_code == 422
