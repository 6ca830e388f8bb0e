"""``/relationships``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from api_scenario import refusal
from parlant.client import AsyncParlantClient
from parlant.client.core.api_error import ApiError
from parlant.client.types import Relationship as ParlantRelationship

from tactful.domain import Endpoint, Relationship, ToolSpec
from tactful.runtime import Runtime


async def _guideline(client: httpx.AsyncClient, condition: str, **extra: Any) -> dict[str, Any]:
    response = await client.post(
        "/guidelines", json={"condition": condition, "action": "act", **extra}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _relate(client: httpx.AsyncClient, kind: str, source: str, target: str) -> httpx.Response:
    return await client.post(
        "/relationships",
        json={"kind": kind, "source_guideline": source, "target_guideline": target},
    )


async def test_crud_between_guidelines(client: httpx.AsyncClient, runtime: Runtime) -> None:
    first = await _guideline(client, "the customer is angry")
    second = await _guideline(client, "the customer wants a refund")
    created = await _relate(client, "priority", first["id"], second["id"])
    assert created.status_code == 201, created.text
    r = created.json()
    assert r == {
        "id": r["id"],
        "kind": "priority",
        "source_guideline": first,
        "source_tag": None,
        "source_tool": None,
        "target_guideline": second,
        "target_tag": None,
        "target_tool": None,
    }
    [stored] = await runtime.store.list(Relationship)
    assert stored.source == Endpoint.guideline(first["id"])

    assert (await client.get(f"/relationships/{r['id']}")).json() == r
    assert (await client.get("/relationships")).json() == [r]
    assert (await client.get("/relationships", params={"guideline_id": second["id"]})).json() == [r]
    assert (await client.get("/relationships", params={"kind": "entailment"})).json() == []
    # The guideline's own view shows it too.
    assert (await client.get(f"/guidelines/{first['id']}")).json()["relationships"] == [r]

    assert (await client.delete(f"/relationships/{r['id']}")).status_code == 204
    missing = await client.get(f"/relationships/{r['id']}")
    assert missing.status_code == 404
    assert missing.json() == {"detail": f"Relationship {r['id']!r} was not found"}
    assert (await client.delete(f"/relationships/{r['id']}")).status_code == 404


async def test_creation_is_idempotent(client: httpx.AsyncClient, runtime: Runtime) -> None:
    a = await _guideline(client, "a")
    b = await _guideline(client, "b")
    once = (await _relate(client, "entailment", a["id"], b["id"])).json()
    again = await _relate(client, "entailment", a["id"], b["id"])
    assert again.status_code == 201
    assert again.json()["id"] == once["id"]
    assert len(await runtime.store.list(Relationship)) == 1


async def test_our_extension_kinds(client: httpx.AsyncClient) -> None:
    a = await _guideline(client, "a")
    b = await _guideline(client, "b")
    for kind in ("dependency_any", "exclusion"):
        response = await _relate(client, kind, a["id"], b["id"])
        assert response.status_code == 201, response.text
        assert response.json()["kind"] == kind
    kinds = [r["kind"] for r in (await client.get("/relationships")).json()]
    assert kinds == ["dependency_any", "exclusion"]


async def test_tag_ends_including_an_agents_tag(client: httpx.AsyncClient) -> None:
    agent = (await client.post("/agents", json={"name": "Support"})).json()
    tag = (await client.post("/tags", json={"name": "billing"})).json()
    g = await _guideline(client, "a")
    response = await client.post(
        "/relationships",
        json={"kind": "priority", "source_tag": tag["id"], "target_guideline": g["id"]},
    )
    assert response.status_code == 201, response.text
    assert response.json()["source_tag"] == tag
    assert response.json()["target_guideline"]["id"] == g["id"]

    agent_tag = f"agent:{agent['id']}"
    response = await client.post(
        "/relationships",
        json={"kind": "entailment", "source_guideline": g["id"], "target_tag": agent_tag},
    )
    assert response.status_code == 201, response.text
    assert response.json()["target_tag"] == {
        "id": agent_tag,
        "name": "Support",
        "creation_utc": agent["creation_utc"],
    }
    listed = (await client.get("/relationships", params={"tag_id": tag["id"]})).json()
    assert [r["kind"] for r in listed] == ["priority"]

    # Deleting the tag drops the relationships that name it.
    assert (await client.delete(f"/tags/{tag['id']}")).status_code == 204
    assert [r["kind"] for r in (await client.get("/relationships")).json()] == ["entailment"]


async def test_tool_ends(client: httpx.AsyncClient, runtime: Runtime) -> None:
    for name in ("lookup", "refund"):
        await runtime.store.create(
            ToolSpec(service_name="orders", name=name, description=f"{name} an order")
        )
    g = await _guideline(client, "a")
    lookup = {"service_name": "orders", "tool_name": "lookup"}
    refund = {"service_name": "orders", "tool_name": "refund"}
    response = await client.post(
        "/relationships", json={"kind": "overlap", "source_tool": lookup, "target_tool": refund}
    )
    assert response.status_code == 201, response.text
    assert response.json()["source_tool"]["name"] == "lookup"
    assert response.json()["target_tool"]["name"] == "refund"
    listed = (await client.get("/relationships", params={"tool_id": "orders:refund"})).json()
    assert [r["kind"] for r in listed] == ["overlap"]

    # Kinds the engine resolves relate guidelines and tags only.
    response = await client.post(
        "/relationships",
        json={"kind": "priority", "source_tool": lookup, "target_guideline": g["id"]},
    )
    assert response.status_code == 422
    assert "relates guidelines or tags" in refusal(response)

    missing = await client.post(
        "/relationships",
        json={
            "kind": "reevaluation",
            "source_tool": {"service_name": "orders", "tool_name": "nope"},
            "target_guideline": g["id"],
        },
    )
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Tool 'orders:nope' was not found"}


@pytest.mark.parametrize(
    ("ends", "message"),
    [
        ({}, "exactly one source"),
        ({"source_guideline": "x"}, "exactly one target"),
        ({"source_guideline": "x", "source_tag": "t", "target_guideline": "y"}, "got 2"),
        ({"source_guideline": "x", "target_guideline": "y", "target_tag": "t"}, "one target"),
    ],
)
async def test_exactly_one_source_and_one_target(
    client: httpx.AsyncClient, ends: dict[str, str], message: str
) -> None:
    response = await client.post("/relationships", json={"kind": "priority", **ends})
    assert response.status_code == 422
    assert message in refusal(response)


async def test_invalid_bodies(client: httpx.AsyncClient) -> None:
    a = await _guideline(client, "a")
    unknown_kind = await _relate(client, "friendship", a["id"], a["id"])
    assert unknown_kind.status_code == 422
    assert unknown_kind.json()["detail"][0]["loc"] == ["body", "kind"]
    typo = await client.post(
        "/relationships",
        json={"kind": "priority", "source_guideline": a["id"], "target_guidline": a["id"]},
    )
    assert typo.status_code == 422
    same = await _relate(client, "exclusion", a["id"], a["id"])
    assert same.status_code == 422
    assert "two different ends" in refusal(same)


async def test_unknown_ends_are_404_and_write_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    a = await _guideline(client, "a")
    for ends, detail in [
        ({"source_guideline": a["id"], "target_guideline": "nope"}, "Guideline 'nope'"),
        ({"source_tag": "nope", "target_guideline": a["id"]}, "Tag 'nope'"),
        ({"source_guideline": a["id"], "target_tag": "agent:nope"}, "Agent 'nope'"),
    ]:
        response = await client.post("/relationships", json={"kind": "priority", **ends})
        assert response.status_code == 404, response.text
        assert response.json()["detail"].startswith(detail)
    assert await runtime.store.list(Relationship) == []


async def test_cycles_are_refused_naming_the_cycle(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    a = await _guideline(client, "a", id="a")
    b = await _guideline(client, "b", id="b")
    c = await _guideline(client, "c", id="c")
    assert (await _relate(client, "dependency", a["id"], b["id"])).status_code == 201
    assert (await _relate(client, "dependency_any", b["id"], c["id"])).status_code == 201
    response = await _relate(client, "dependency", c["id"], a["id"])
    assert response.status_code == 422
    assert refusal(response).endswith("cycle: c -> a -> b -> c")
    self_loop = await _relate(client, "entailment", a["id"], a["id"])
    assert self_loop.status_code == 422
    assert refusal(self_loop).endswith("cycle: a -> a")
    # Kinds without direction may go both ways.
    assert (await _relate(client, "exclusion", b["id"], a["id"])).status_code == 201
    assert len(await runtime.store.list(Relationship)) == 3


async def test_listing_follows_relationships_indirectly(client: httpx.AsyncClient) -> None:
    a = await _guideline(client, "a")
    b = await _guideline(client, "b")
    c = await _guideline(client, "c")
    ab = (await _relate(client, "priority", a["id"], b["id"])).json()["id"]
    bc = (await _relate(client, "priority", b["id"], c["id"])).json()["id"]
    ac = (await _relate(client, "entailment", a["id"], c["id"])).json()["id"]

    async def ids(**params: Any) -> list[str]:
        response = await client.get("/relationships", params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()]

    assert await ids(guideline_id=a["id"]) == [ab, bc, ac]
    assert await ids(guideline_id=a["id"], indirect=False) == [ab, ac]
    assert await ids(guideline_id=c["id"], kind="priority") == [ab, bc]
    assert await ids(guideline_id=c["id"], kind="priority", indirect=False) == [bc]


async def test_listing_filters(client: httpx.AsyncClient) -> None:
    a = await _guideline(client, "a")
    both = await client.get("/relationships", params={"guideline_id": a["id"], "tag_id": "t"})
    assert both.status_code == 422
    assert "at most one" in refusal(both)
    assert (await client.get("/relationships", params={"guideline_id": "nope"})).status_code == 404
    assert (await client.get("/relationships", params={"tool_id": "x:y"})).status_code == 404
    assert (await client.get("/relationships", params={"kind": "nope"})).status_code == 422


# -- Parlant's official client ---------------------------------------------------------------


@pytest_asyncio.fixture
async def parlant(server_url: str) -> AsyncIterator[AsyncParlantClient]:
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as http:
        yield AsyncParlantClient(base_url=server_url, httpx_client=http)


async def test_the_official_client_manages_relationships(parlant: AsyncParlantClient) -> None:
    angry = await parlant.guidelines.create(
        condition="the customer is angry", action="apologise first"
    )
    refund = await parlant.guidelines.create(
        condition="the customer wants a refund", action="explain refunds"
    )
    created = await parlant.relationships.create(
        kind="priority", source_guideline=angry.id, target_guideline=refund.id
    )
    assert isinstance(created, ParlantRelationship)
    assert created.kind == "priority"
    assert created.source_guideline is not None and created.source_guideline.id == angry.id
    assert created.target_guideline is not None and created.target_guideline.id == refund.id
    assert created.source_tag is None and created.target_tool is None

    listed = await parlant.relationships.list(guideline_id=angry.id)
    assert [r.id for r in listed] == [created.id]
    assert [r.id for r in await parlant.relationships.list(kind="priority")] == [created.id]
    assert await parlant.relationships.list(kind="entailment") == []
    read = await parlant.relationships.retrieve(created.id)
    assert read == created

    with pytest.raises(ApiError) as cycle:
        await parlant.relationships.create(
            kind="priority", source_guideline=refund.id, target_guideline=angry.id
        )
    assert cycle.value.status_code == 422
    assert "cycle" in str(cycle.value.body)

    await parlant.relationships.delete(created.id)
    assert await parlant.relationships.list() == []
    with pytest.raises(ApiError) as gone:
        await parlant.relationships.retrieve(created.id)
    assert gone.value.status_code == 404


async def test_a_journey_tag_end_stands_for_the_journey(client: httpx.AsyncClient) -> None:
    journey = await client.post("/journeys", json={"title": "Return an item"})
    assert journey.status_code == 201, journey.text
    tag = f"journey:{journey.json()['id']}"
    urgent = await _guideline(client, "the customer reports a safety problem")
    created = await client.post(
        "/relationships",
        json={"kind": "priority", "source_guideline": urgent["id"], "target_tag": tag},
    )
    assert created.status_code == 201, created.text
    assert created.json()["target_tag"]["id"] == tag
    assert created.json()["target_tag"]["name"] == "Return an item"
    unknown = await client.post(
        "/relationships",
        json={"kind": "priority", "source_guideline": urgent["id"], "target_tag": "journey:nope"},
    )
    assert unknown.status_code == 404
