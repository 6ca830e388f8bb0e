"""``/terms``."""

from __future__ import annotations

import httpx

from tactful.domain import Term
from tactful.runtime import Runtime


async def test_crud(client: httpx.AsyncClient, runtime: Runtime) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    created = await client.post(
        "/terms",
        json={
            "name": "Gas",
            "description": "A fee paid to run a transaction",
            "synonyms": ["fee", "fee"],
            "tags": [f"agent:{agent['id']}"],
        },
    )
    assert created.status_code == 201
    term = created.json()
    assert term["synonyms"] == ["fee"]
    assert term["tags"] == [f"agent:{agent['id']}"]
    assert (await runtime.store.get(Term, term["id"])).name == "Gas"
    assert (await client.get(f"/terms/{term['id']}")).json() == term
    assert (await client.get("/terms", params={"tag_id": f"agent:{agent['id']}"})).json() == [term]
    assert (await client.get("/terms", params={"tag_id": "x"})).json() == []

    updated = await client.patch(
        f"/terms/{term['id']}",
        json={"description": "The fee of a transaction", "synonyms": ["cost"]},
    )
    assert updated.json()["description"] == "The fee of a transaction"
    assert updated.json()["synonyms"] == ["cost"]
    assert (await client.delete(f"/terms/{term['id']}")).status_code == 204
    assert (await client.get(f"/terms/{term['id']}")).status_code == 404


async def test_description_is_required(client: httpx.AsyncClient) -> None:
    response = await client.post("/terms", json={"name": "Gas"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "description"]
