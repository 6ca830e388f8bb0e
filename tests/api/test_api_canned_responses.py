"""``/canned_responses``."""

from __future__ import annotations

import httpx
from api_scenario import refusal

from tactful.domain import CannedResponse
from tactful.runtime import Runtime


async def test_crud(client: httpx.AsyncClient, runtime: Runtime) -> None:
    tag = (await client.post("/tags", json={"name": "billing"})).json()
    created = await client.post(
        "/canned_responses",
        json={
            "value": "Your order {{order_id}} ships tomorrow.",
            "fields": [{"name": "order_id", "description": "The order", "examples": ["A1"]}],
            "signals": ["when does it ship"],
            "tags": [tag["id"]],
            "metadata": {"source": "ops"},
            "field_dependencies": ["order_id"],
        },
    )
    assert created.status_code == 201, created.text
    c = created.json()
    assert c["value"] == "Your order {{order_id}} ships tomorrow."
    assert c["fields"] == [{"name": "order_id", "description": "The order", "examples": ["A1"]}]
    assert c["signals"] == ["when does it ship"]
    assert c["field_dependencies"] == ["order_id"]
    assert (await runtime.store.get(CannedResponse, c["id"])).metadata == {"source": "ops"}
    assert (await client.get(f"/canned_responses/{c['id']}")).json() == c

    assert (await client.get("/canned_responses", params={"tags": [tag["id"]]})).json() == [c]
    assert (await client.get("/canned_responses", params={"tags": ["x"]})).json() == []
    assert len((await client.get("/canned_responses")).json()) == 1

    updated = await client.patch(
        f"/canned_responses/{c['id']}",
        json={
            "value": "Order {{order_id}} ships today.",
            "metadata": {"set": {"reviewed": "yes"}, "unset": ["source"]},
            "tags": {"remove": [tag["id"]]},
        },
    )
    assert updated.status_code == 200
    assert updated.json()["value"] == "Order {{order_id}} ships today."
    assert updated.json()["metadata"] == {"reviewed": "yes"}
    assert updated.json()["tags"] == []
    assert (await client.delete(f"/canned_responses/{c['id']}")).status_code == 204
    assert (await client.get(f"/canned_responses/{c['id']}")).status_code == 404


async def test_invalid_template_is_422_and_writes_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.post("/canned_responses", json={"value": "Hi {{ name "})
    assert response.status_code == 422
    detail = refusal(response)
    assert detail.startswith("invalid canned response template: line 1: ")
    assert await runtime.store.list(CannedResponse) == []

    good = (await client.post("/canned_responses", json={"value": "Hi"})).json()
    patched = await client.patch(f"/canned_responses/{good['id']}", json={"value": "{% if %}"})
    assert patched.status_code == 422
    assert (await runtime.store.get(CannedResponse, good["id"])).value == "Hi"
