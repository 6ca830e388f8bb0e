"""``/capabilities``: what an agent can do, in Parlant's shape."""

from __future__ import annotations

import httpx

from tactful.domain import Capability
from tactful.runtime import Runtime


async def test_crud_and_tag_filter(client: httpx.AsyncClient, runtime: Runtime) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    agent_tag = f"agent:{agent['id']}"
    created = await client.post(
        "/capabilities",
        json={
            "title": "Replace a broken phone",
            "description": "Send a replacement phone while the broken one is repaired",
            "signals": ["my phone broke", " my phone broke ", "I dropped my phone"],
            "tags": [agent_tag, agent_tag],
        },
    )
    assert created.status_code == 201, created.text
    capability = created.json()
    # Signals are stripped and kept once; tags kept once.
    assert capability["signals"] == ["my phone broke", "I dropped my phone"]
    assert capability["tags"] == [agent_tag]
    assert (await runtime.store.get(Capability, capability["id"])).title == "Replace a broken phone"
    assert (await client.get(f"/capabilities/{capability['id']}")).json() == capability
    untagged = (
        await client.post("/capabilities", json={"title": "Reset a password", "description": "x"})
    ).json()
    assert untagged["signals"] == [] and untagged["tags"] == []
    listed = (await client.get("/capabilities")).json()
    assert [c["id"] for c in listed] == [capability["id"], untagged["id"]]
    by_tag = (await client.get("/capabilities", params={"tag_id": agent_tag})).json()
    assert by_tag == [capability]
    assert (await client.get("/capabilities", params={"tag_id": "nothing"})).json() == []

    tag = (await client.post("/tags", json={"name": "phones"})).json()
    updated = await client.patch(
        f"/capabilities/{capability['id']}",
        json={
            "description": "A loan phone while yours is repaired",
            "signals": ["my screen cracked"],
            "tags": {"add": [tag["id"]], "remove": [agent_tag]},
        },
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["title"] == "Replace a broken phone"
    assert updated.json()["description"] == "A loan phone while yours is repaired"
    assert updated.json()["signals"] == ["my screen cracked"]
    assert updated.json()["tags"] == [tag["id"]]

    assert (await client.delete(f"/capabilities/{capability['id']}")).status_code == 204
    assert (await client.get(f"/capabilities/{capability['id']}")).status_code == 404
    assert (await client.delete(f"/capabilities/{capability['id']}")).status_code == 404
    assert await runtime.store.find(Capability, capability["id"]) is None


async def test_bad_input_is_refused_with_a_reason(client: httpx.AsyncClient) -> None:
    missing = await client.post("/capabilities", json={"title": "Refund"})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "description"]
    long_title = await client.post("/capabilities", json={"title": "t" * 101, "description": "d"})
    assert long_title.status_code == 422
    assert long_title.json()["detail"][0]["loc"] == ["body", "title"]
    empty_signal = await client.post(
        "/capabilities", json={"title": "Refund", "description": "d", "signals": [""]}
    )
    assert empty_signal.status_code == 422
    unknown_field = await client.post(
        "/capabilities", json={"title": "Refund", "description": "d", "groups": ["g"]}
    )
    assert unknown_field.status_code == 422
    unknown_tag = await client.post(
        "/capabilities", json={"title": "Refund", "description": "d", "tags": ["nope"]}
    )
    assert unknown_tag.status_code == 404
    assert "nope" in unknown_tag.text
    unknown_agent = await client.post(
        "/capabilities", json={"title": "Refund", "description": "d", "tags": ["agent:nope"]}
    )
    assert unknown_agent.status_code == 404
    # Nothing was stored by the refused requests.
    assert (await client.get("/capabilities")).json() == []
    made = (await client.post("/capabilities", json={"title": "Refund", "description": "d"})).json()
    taken = await client.post(
        "/capabilities", json={"title": "Other", "description": "d", "id": made["id"]}
    )
    assert taken.status_code == 409
    bad_patch = await client.patch(f"/capabilities/{made['id']}", json={"title": ""})
    assert bad_patch.status_code == 422
    bad_tag = await client.patch(f"/capabilities/{made['id']}", json={"tags": {"add": ["nope"]}})
    assert bad_tag.status_code == 404
    assert (await client.get(f"/capabilities/{made['id']}")).json()["title"] == "Refund"
    assert (await client.patch("/capabilities/nope", json={"title": "x"})).status_code == 404


async def test_deleting_a_tag_takes_it_off_capabilities(client: httpx.AsyncClient) -> None:
    tag = (await client.post("/tags", json={"name": "vip"})).json()
    made = (
        await client.post(
            "/capabilities", json={"title": "Refund", "description": "d", "tags": [tag["id"]]}
        )
    ).json()
    assert (await client.delete(f"/tags/{tag['id']}")).status_code == 204
    assert (await client.get(f"/capabilities/{made['id']}")).json()["tags"] == []
