"""``/context-variables``: variables, their values per key, tags, errors, and Parlant's client."""

from __future__ import annotations

import httpx
from parlant.client import AsyncParlantClient
from parlant.client.types import (
    ContextVariable,
    ContextVariableReadResult,
    ContextVariableValue,
    ToolId,
)

import tactful
from tactful.domain import ContextVariable as ContextVariableModel
from tactful.domain import ContextVariableValue as ValueModel
from tactful.runtime import Runtime
from tactful.tools import register_python


@tactful.tool
async def balance(context: tactful.ToolContext) -> int:
    """The customer's balance."""
    return 5


async def _register(runtime: Runtime) -> str:
    registered = register_python(runtime.engine.tools, balance)
    await runtime.store.upsert(registered.spec)
    return registered.tool_id


async def test_crud(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await _register(runtime)
    agent = (await client.post("/agents", json={"name": "A"})).json()
    tag = (await client.post("/tags", json={"name": "vip"})).json()
    created = await client.post(
        "/context-variables",
        json={
            "name": "balance",
            "description": "Account balance",
            "tool_id": {"service_name": "local", "tool_name": "balance"},
            "freshness_rules": "*/5 * * * *",
            "tags": [f"agent:{agent['id']}", f"agent:{agent['id']}"],
        },
    )
    assert created.status_code == 201
    variable = created.json()
    assert variable == {
        "id": variable["id"],
        "name": "balance",
        "description": "Account balance",
        "tool_id": {"service_name": "local", "tool_name": "balance"},
        "freshness_rules": "*/5 * * * *",
        "tags": [f"agent:{agent['id']}"],
    }
    vid = variable["id"]
    stored = await runtime.store.get(ContextVariableModel, vid)
    assert stored.tool_id == "local:balance"
    assert (await client.get("/context-variables")).json() == [variable]
    listed = await client.get("/context-variables", params={"tag_id": f"agent:{agent['id']}"})
    assert listed.json() == [variable]
    assert (await client.get("/context-variables", params={"tag_id": "x"})).json() == []
    read = (await client.get(f"/context-variables/{vid}")).json()
    assert read == {"context_variable": variable, "key_value_pairs": {}}

    updated = await client.patch(
        f"/context-variables/{vid}",
        json={"description": "Balance in EUR", "tags": {"add": [tag["id"]]}},
    )
    assert updated.status_code == 200
    assert updated.json()["description"] == "Balance in EUR"
    assert updated.json()["tags"] == [f"agent:{agent['id']}", tag["id"]]
    assert updated.json()["freshness_rules"] == "*/5 * * * *"
    cleared = await client.patch(
        f"/context-variables/{vid}",
        json={"tool_id": None, "freshness_rules": None, "tags": {"remove": [tag["id"]]}},
    )
    assert cleared.json()["tool_id"] is None and cleared.json()["freshness_rules"] is None
    assert cleared.json()["tags"] == [f"agent:{agent['id']}"]

    assert (await client.delete(f"/context-variables/{vid}")).status_code == 204
    assert (await client.get(f"/context-variables/{vid}")).status_code == 404
    assert await runtime.store.list(ValueModel) == []


async def test_values_per_key(client: httpx.AsyncClient, runtime: Runtime) -> None:
    variable = (await client.post("/context-variables", json={"name": "plan"})).json()
    customer = (await client.post("/customers", json={"name": "Ada"})).json()
    tag = (await client.post("/tags", json={"name": "vip"})).json()
    base = f"/context-variables/{variable['id']}"

    for key, data in [
        (customer["id"], {"plan": "platinum"}),
        (f"tag:{tag['id']}", "gold"),
        ("DEFAULT", "free"),
        ("guest", "trial"),
    ]:
        put = await client.put(f"{base}/{key}", json={"data": data})
        assert put.status_code == 200, put.text
        assert put.json()["data"] == data
        got = await client.get(f"{base}/{key}")
        assert got.json() == put.json()

    first = (await client.get(f"{base}/{customer['id']}")).json()
    replaced = (await client.put(f"{base}/{customer['id']}", json={"data": 1})).json()
    assert replaced["id"] == first["id"] and replaced["data"] == 1
    assert replaced["last_modified"] >= first["last_modified"]

    pairs = (await client.get(base, params={"include_values": True})).json()["key_value_pairs"]
    assert set(pairs) == {customer["id"], f"tag:{tag['id']}", "DEFAULT", "guest"}
    bare = (await client.get(base, params={"include_values": False})).json()
    assert bare["key_value_pairs"] is None

    assert (await client.delete(f"{base}/DEFAULT")).status_code == 204
    assert (await client.get(f"{base}/DEFAULT")).status_code == 404
    assert (await client.delete(f"{base}/DEFAULT")).status_code == 404
    assert len(await runtime.store.list(ValueModel, variable_id=variable["id"])) == 3


async def test_unknown_ids_are_404(client: httpx.AsyncClient) -> None:
    variable = (await client.post("/context-variables", json={"name": "plan"})).json()
    base = f"/context-variables/{variable['id']}"
    for method, url, body in [
        ("GET", "/context-variables/nope", None),
        ("PATCH", "/context-variables/nope", {"name": "x"}),
        ("DELETE", "/context-variables/nope", None),
        ("GET", "/context-variables/nope/DEFAULT", None),
        ("PUT", "/context-variables/nope/DEFAULT", {"data": 1}),
        ("DELETE", "/context-variables/nope/DEFAULT", None),
        ("GET", f"{base}/someone", None),
        ("PUT", f"{base}/no-such-customer", {"data": 1}),
        ("PUT", f"{base}/tag:no-such-tag", {"data": 1}),
        ("POST", "/context-variables", {"name": "x", "tags": ["no-such-tag"]}),
        (
            "POST",
            "/context-variables",
            {"name": "x", "tool_id": {"service_name": "local", "tool_name": "nope"}},
        ),
    ]:
        response = await client.request(method, url, json=body)
        assert response.status_code == 404, (method, url, response.text)
        assert isinstance(response.json()["detail"], str)
    assert [v["name"] for v in (await client.get("/context-variables")).json()] == ["plan"]


async def test_a_bad_cron_expression_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/context-variables", json={"name": "plan", "freshness_rules": "every day"}
    )
    assert response.status_code == 422
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body", "freshness_rules"]
    assert "invalid freshness rule 'every day'" in detail["msg"]
    variable = (await client.post("/context-variables", json={"name": "plan"})).json()
    response = await client.patch(
        f"/context-variables/{variable['id']}", json={"freshness_rules": "99 * * * *"}
    )
    assert response.status_code == 422
    assert "Bad minute" in response.json()["detail"][0]["msg"]


async def test_delete_many_by_tag(client: httpx.AsyncClient) -> None:
    tag = (await client.post("/tags", json={"name": "vip"})).json()
    await client.post("/context-variables", json={"name": "a", "tags": [tag["id"]]})
    await client.post("/context-variables", json={"name": "b"})
    assert (
        await client.delete("/context-variables", params={"tag_id": tag["id"]})
    ).status_code == 204
    assert [v["name"] for v in (await client.get("/context-variables")).json()] == ["b"]
    assert (await client.delete("/context-variables")).status_code == 204
    assert (await client.get("/context-variables")).json() == []


async def test_parlants_client(server_url: str, runtime: Runtime) -> None:
    await _register(runtime)
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as http:
        parlant = AsyncParlantClient(base_url=server_url, httpx_client=http)
        customer = await parlant.customers.create(name="Ada")
        variable = await parlant.context_variables.create(
            name="balance",
            description="Account balance",
            tool_id=ToolId(service_name="local", tool_name="balance"),
            freshness_rules="30 2 * * *",
        )
        assert isinstance(variable, ContextVariable)
        assert variable.tool_id == ToolId(service_name="local", tool_name="balance")
        value = await parlant.context_variables.set_value(
            variable.id, customer.id, data={"balance": 5000.5, "currency": "USD"}
        )
        assert isinstance(value, ContextVariableValue)
        read = await parlant.context_variables.get_value(variable.id, customer.id)
        assert read.data == {"balance": 5000.5, "currency": "USD"} and read.id == value.id
        full = await parlant.context_variables.retrieve(variable.id, include_values=True)
        assert isinstance(full, ContextVariableReadResult)
        assert full.key_value_pairs is not None
        assert full.key_value_pairs[customer.id] == read
        assert [v.id for v in await parlant.context_variables.list()] == [variable.id]
        await parlant.context_variables.delete_value(variable.id, customer.id)
        await parlant.context_variables.delete(variable.id)
        assert await parlant.context_variables.list() == []


async def test_deleting_a_customer_or_a_tag_deletes_their_values(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    from tactful.domain import ContextVariableValue

    variable = (await client.post("/context-variables", json={"name": "tier"})).json()
    customer = (await client.post("/customers", json={"name": "Ann"})).json()
    tag = (await client.post("/tags", json={"name": "vip"})).json()
    for key in (customer["id"], f"tag:{tag['id']}", "DEFAULT"):
        put = await client.put(f"/context-variables/{variable['id']}/{key}", json={"data": key})
        assert put.status_code in (200, 201), put.text
    assert (await client.delete(f"/customers/{customer['id']}")).status_code == 204
    assert (await client.delete(f"/tags/{tag['id']}")).status_code == 204
    keys = [v.key for v in await runtime.store.list(ContextVariableValue)]
    assert keys == ["DEFAULT"]
