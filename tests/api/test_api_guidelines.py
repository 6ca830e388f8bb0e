"""``/guidelines``."""

from __future__ import annotations

import httpx

from tactful.domain import (
    Endpoint,
    EndpointKind,
    Guideline,
    Relationship,
    RelationshipKind,
    ToolSpec,
)
from tactful.runtime import Runtime


async def test_crud(client: httpx.AsyncClient, runtime: Runtime) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    tag = (await client.post("/tags", json={"name": "billing"})).json()
    created = await client.post(
        "/guidelines",
        json={
            "condition": "the customer asks for a refund",
            "action": "explain the refund policy",
            "description": "refunds",
            "criticality": "high",
            "enabled": True,
            "tags": [f"agent:{agent['id']}", tag["id"]],
            "metadata": {"owner": "billing"},
            "composition_mode": "strict_canned",
            "priority": 2,
            "labels": ["refunds"],
            "track": True,
        },
    )
    assert created.status_code == 201, created.text
    g = created.json()
    assert g["condition"] == "the customer asks for a refund"
    assert g["action"] == "explain the refund policy"
    assert g["criticality"] == "high"
    assert g["tags"] == [f"agent:{agent['id']}", tag["id"]]
    assert g["metadata"] == {"owner": "billing"}
    assert g["composition_mode"] == "strict_canned"
    assert g["priority"] == 2
    assert g["labels"] == ["refunds"]
    assert (await runtime.store.get(Guideline, g["id"])).priority == 2

    read = (await client.get(f"/guidelines/{g['id']}")).json()
    assert read == {"guideline": g, "relationships": [], "tool_associations": []}

    assert [x["id"] for x in (await client.get("/guidelines")).json()] == [g["id"]]
    assert (await client.get("/guidelines", params={"tag_id": tag["id"]})).json() == [g]
    assert (await client.get("/guidelines", params={"tag_id": "other"})).json() == []

    updated = await client.patch(
        f"/guidelines/{g['id']}",
        json={
            "action": "apologise and explain the refund policy",
            "enabled": False,
            "metadata": {"set": {"reviewed": True}, "unset": ["owner"]},
            "labels": {"upsert": ["policy"], "remove": ["refunds"]},
            "tags": {"remove": [tag["id"]]},
        },
    )
    assert updated.status_code == 200, updated.text
    after = updated.json()["guideline"]
    assert after["action"] == "apologise and explain the refund policy"
    assert after["enabled"] is False
    assert after["metadata"] == {"reviewed": True}
    assert after["labels"] == ["policy"]
    assert after["tags"] == [f"agent:{agent['id']}"]

    assert (await client.delete(f"/guidelines/{g['id']}")).status_code == 204
    assert (await client.get(f"/guidelines/{g['id']}")).status_code == 404


async def test_observation_without_action(client: httpx.AsyncClient) -> None:
    g = (await client.post("/guidelines", json={"condition": "the customer is angry"})).json()
    assert g["action"] is None


async def test_unknown_references_are_404_and_write_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    cases = [
        ({"condition": "c", "tags": ["agent:ghost"]}, "Agent 'ghost' was not found"),
        ({"condition": "c", "tags": ["ghost"]}, "Tag 'ghost' was not found"),
        ({"condition": "c", "canned_responses": ["ghost"]}, "CannedResponse 'ghost' was not found"),
    ]
    for body, detail in cases:
        response = await client.post("/guidelines", json=body)
        assert response.status_code == 404
        assert response.json() == {"detail": detail}
    assert await runtime.store.list(Guideline) == []


async def test_empty_condition_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/guidelines", json={"condition": ""})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "condition"]


async def test_relationships_and_tool_associations(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    first = (await client.post("/guidelines", json={"condition": "a", "action": "x"})).json()
    second = (await client.post("/guidelines", json={"condition": "b", "action": "y"})).json()
    relationship = await runtime.store.create(
        Relationship(
            kind=RelationshipKind.PRIORITY,
            source=Endpoint(kind=EndpointKind.GUIDELINE, id=first["id"]),
            target=Endpoint(kind=EndpointKind.GUIDELINE, id=second["id"]),
        )
    )
    await runtime.store.create(
        ToolSpec(
            service_name="orders",
            name="lookup",
            description="Find an order",
            parameters={
                "type": "object",
                "properties": {"order_id": {"type": "string", "description": "The order"}},
            },
            required=["order_id"],
        )
    )
    missing_tool = await client.patch(
        f"/guidelines/{first['id']}",
        json={"tool_associations": {"add": [{"service_name": "orders", "tool_name": "nope"}]}},
    )
    assert missing_tool.status_code == 404
    assert missing_tool.json() == {"detail": "Tool 'orders:nope' was not found"}

    patched = await client.patch(
        f"/guidelines/{first['id']}",
        json={"tool_associations": {"add": [{"service_name": "orders", "tool_name": "lookup"}]}},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["tool_associations"] == [
        {
            "id": f"{first['id']}:orders:lookup",
            "guideline_id": first["id"],
            "tool_id": {"service_name": "orders", "tool_name": "lookup"},
        }
    ]
    [rel] = body["relationships"]
    assert rel["id"] == relationship.id
    assert rel["kind"] == "priority"
    assert rel["source_guideline"]["id"] == first["id"]
    assert rel["target_guideline"]["id"] == second["id"]

    # Deleting an end of a relationship deletes the relationship.
    assert (await client.delete(f"/guidelines/{second['id']}")).status_code == 204
    assert await runtime.store.list(Relationship) == []
    assert (await client.get(f"/guidelines/{first['id']}")).json()["relationships"] == []


async def test_canned_responses_extension(client: httpx.AsyncClient, runtime: Runtime) -> None:
    canned = (await client.post("/canned_responses", json={"value": "Hello!"})).json()
    g = (
        await client.post(
            "/guidelines",
            json={"condition": "greeting", "action": "greet", "canned_responses": [canned["id"]]},
        )
    ).json()
    assert g["canned_responses"] == [canned["id"]]
    removed = await client.patch(
        f"/guidelines/{g['id']}", json={"canned_responses": {"remove": [canned["id"]]}}
    )
    assert removed.json()["guideline"]["canned_responses"] == []
    await client.patch(f"/guidelines/{g['id']}", json={"canned_responses": {"add": [canned["id"]]}})
    # Deleting the canned response removes it from the guideline.
    assert (await client.delete(f"/canned_responses/{canned['id']}")).status_code == 204
    assert (await runtime.store.get(Guideline, g["id"])).canned_responses == []


async def test_always_marker_and_always_check_override(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    created = await client.post(
        "/guidelines",
        json={"condition": "in every reply", "action": "be warm", "always": True},
    )
    assert created.status_code == 201, created.text
    assert (created.json()["always"], created.json()["always_check"]) == (True, None)
    gid = created.json()["id"]
    patched = await client.patch(f"/guidelines/{gid}", json={"always_check": False})
    assert patched.json()["guideline"]["always_check"] is False
    stored = await runtime.store.get(Guideline, gid)
    assert stored.always and stored.always_check is False
    bad = await client.post("/guidelines", json={"condition": "x", "always": "sometimes"})
    assert bad.status_code == 422


async def test_a_rule_about_the_reply_itself(client: httpx.AsyncClient, runtime: Runtime) -> None:
    created = await client.post(
        "/guidelines",
        json={
            "condition": "a delivery date is mentioned",
            "action": "say it is an estimate",
            "about_reply": True,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["about_reply"] is True
    gid = created.json()["id"]
    patched = await client.patch(f"/guidelines/{gid}", json={"about_reply": False})
    assert patched.json()["guideline"]["about_reply"] is False
    assert (await runtime.store.get(Guideline, gid)).about_reply is False


async def test_definitions_may_be_scoped_to_a_journey_as_the_sdk_scopes_them(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # The SDK's ``journey.create_guideline`` and definition files tag with ``journey:<id>``;
    # REST refused such tags (404) until one rule checked tags for all of them.
    journey = (await client.post("/journeys", json={"title": "Return an item"})).json()
    tag = f"journey:{journey['id']}"
    for path, body in [
        ("/guidelines", {"condition": "the box is open", "action": "ask for a photo"}),
        ("/canned_responses", {"value": "Please send a photo of the box."}),
        ("/terms", {"name": "RMA", "description": "A return number"}),
    ]:
        created = await client.post(path, json={**body, "tags": [tag]})
        assert created.status_code == 201, created.text
        assert created.json()["tags"] == [tag]
        unknown = await client.post(path, json={**body, "tags": ["journey:nope"]})
        assert unknown.status_code == 404
        assert unknown.json() == {"detail": "Journey 'nope' was not found"}

    rule = (await client.post("/guidelines", json={"condition": "c", "action": "a"})).json()
    patched = await client.patch(f"/guidelines/{rule['id']}", json={"tags": {"add": [tag]}})
    assert patched.status_code == 200, patched.text
    assert (await runtime.store.get(Guideline, rule["id"])).tags == [tag]
