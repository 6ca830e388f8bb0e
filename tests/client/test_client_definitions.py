"""The client's definitions calls (export, plan, apply, revisions, rollback) against the real
FastAPI app (in-process transport)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

import tactful
from tactful.api import create_app
from tactful.client import ChangeActionInfo, ClientError, TactfulClient
from tactful.llm.scripted import HashingEmbedder


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TactfulClient]:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as server:
        shop = await server.create_agent("Shop", id="shop")
        await shop.create_guideline("the customer wants a refund", "explain refunds", id="refund")
        await shop.create_guideline("the customer is angry", "apologise first", id="angry")
        transport = httpx.ASGITransport(create_app(server.runtime))
        async with TactfulClient("http://localhost", transport=transport) as c:
            yield c


async def test_export_plan_apply_history_and_rollback(client: TactfulClient) -> None:
    document = await client.export_agent("shop")
    assert document["agent"] == {"id": "shop", "name": "Shop"}
    assert {g["id"] for g in document["guidelines"]} == {"refund", "angry"}
    assert (await client.plan_definitions(document)).empty

    document["guidelines"] = [g for g in document["guidelines"] if g["id"] != "angry"]
    plan = await client.plan_definitions(document)
    assert [(c.action, c.kind, c.id) for c in plan.changes] == [
        (ChangeActionInfo.DELETE, "guideline", "angry")
    ]
    assert plan.summary() == "0 to create, 0 to update, 1 to delete"

    applied = await client.apply_definitions(document, summary="no more anger")
    assert applied.plan == plan and applied.revision is not None
    [latest, *older] = await client.list_revisions(agent_id="shop")
    assert (latest.id, latest.summary, latest.agents) == (
        applied.revision,
        "no more anger",
        ["shop"],
    )
    assert [(c.action, c.kind, c.id) for c in latest.changes] == [
        ("deleted", "guidelines", "angry")
    ]
    assert await client.list_revisions(agent_id="nobody") == []
    assert len(await client.list_revisions(limit=1)) == 1

    before = older[0].id
    assert "angry" in {
        g["id"] for g in (await client.export_agent("shop", revision=before))["guidelines"]
    }
    back = await client.rollback(before, "shop")
    assert [(c.action, c.id) for c in back.plan.changes] == [(ChangeActionInfo.CREATE, "angry")]
    assert back.revision is not None and back.revision > applied.revision
    assert (await client.get_guideline("angry")).guideline.action == "apologise first"


async def test_a_refused_document_lists_every_problem(client: TactfulClient) -> None:
    document = {
        "agent": {"id": "shop", "name": "Shop"},
        "guidelines": [{"action": "no condition"}, {"condition": 3}],
    }
    with pytest.raises(ClientError) as raised:
        await client.plan_definitions(document)
    assert raised.value.status_code == 422
    assert raised.value.problems == (
        "guidelines[0].condition: Field required",
        "guidelines[1].condition: Input should be a valid string",
    )
    assert raised.value.detail == "; ".join(raised.value.problems)


async def test_an_unknown_agent_or_revision_is_a_404(client: TactfulClient) -> None:
    with pytest.raises(ClientError, match="Agent 'nope' was not found") as raised:
        await client.export_agent("nope")
    assert (raised.value.status_code, raised.value.problems) == (404, ())
    with pytest.raises(ClientError, match="Revision '999' was not found"):
        await client.rollback(999, "shop")
