"""``/evaluations``: Parlant's shape, checked with its official client, and tactful's findings."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from parlant.client import AsyncParlantClient
from parlant.client.types import GuidelineContent, GuidelinePayload, Payload

from tactful.domain import Guideline
from tactful.domain.evaluations import Evaluation, EvaluationStatus
from tactful.runtime import Runtime

REFUND = {"condition": "The customer asks for a refund", "action": "Offer a refund"}


@pytest_asyncio.fixture
async def parlant(server_url: str) -> AsyncIterator[AsyncParlantClient]:
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as http:
        yield AsyncParlantClient(base_url=server_url, httpx_client=http)


def payload(condition: str, action: str | None = None) -> Payload:
    return Payload(
        kind="guideline",
        guideline=GuidelinePayload(
            content=GuidelineContent(condition=condition, action=action),
            tool_ids=[],
            operation="add",
            action_proposition=True,
        ),
    )


async def test_the_official_client_creates_and_reads_an_evaluation(
    parlant: AsyncParlantClient, runtime: Runtime
) -> None:
    stored = await runtime.store.create(Guideline(**REFUND))
    created = await parlant.evaluations.create(
        payloads=[
            payload(REFUND["condition"].upper(), REFUND["action"]),
            payload("The customer asks about opening hours", "Give the store's hours"),
        ]
    )
    assert created.status in ("pending", "running", "completed")
    done = await parlant.evaluations.retrieve(created.id, wait_for_completion=30)
    assert done.status == "completed" and done.progress == 100.0
    first, second = done.invoices
    assert first.approved and second.approved  # reported, never blocking
    assert first.payload.guideline is not None
    assert first.payload.guideline.content.condition == REFUND["condition"].upper()
    # tactful's findings ride along (the client keeps fields it does not know).
    [finding] = first.model_extra["findings"]  # type: ignore[index]
    assert finding["kind"] == "duplicate"
    assert finding["first"]["guideline_id"] == stored.id
    assert finding["second"]["payload"] == 0
    assert second.model_extra["findings"] == []  # type: ignore[index]


async def test_an_agents_guidelines_are_checked_among_themselves(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    agent = (await client.post("/agents", json={"name": "Support"})).json()
    for _ in range(2):
        made = await client.post("/guidelines", json={**REFUND, "tags": [f"agent:{agent['id']}"]})
        assert made.status_code == 201, made.text
    created = await client.post("/evaluations", json={"agent_id": agent["id"]})
    assert created.status_code == 201, created.text
    read = await client.get(f"/evaluations/{created.json()['id']}")
    assert read.status_code == 200
    body = read.json()
    assert body["status"] == "completed" and body["invoices"] == []
    assert [f["kind"] for f in body["findings"]] == ["duplicate"]


async def test_nothing_to_evaluate_is_a_422(client: httpx.AsyncClient) -> None:
    refused = await client.post("/evaluations", json={"payloads": []})
    assert refused.status_code == 422
    assert "give payloads, or an agent_id" in refused.text
    half = await client.post(
        "/evaluations", json={"payloads": [{"kind": "guideline", "rule": {"content": REFUND}}]}
    )
    assert half.status_code == 422
    assert "needs its 'guideline' field" in half.text
    # Flags are strict, as everywhere in the API (schemathesis found 0 taken for false).
    lax = await client.post(
        "/evaluations",
        json={
            "payloads": [
                {"guideline": {"content": REFUND, "journey_node_proposition": 0}},
            ]
        },
    )
    assert lax.status_code == 422


async def test_an_unknown_agent_or_evaluation_is_a_404(client: httpx.AsyncClient) -> None:
    assert (await client.post("/evaluations", json={"agent_id": "nobody"})).status_code == 404
    assert (await client.get("/evaluations/nothing")).status_code == 404


async def test_waiting_longer_than_it_runs_is_a_504(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # Still running, as another process would leave it while it works.
    running = await runtime.store.create(Evaluation(status=EvaluationStatus.RUNNING))
    waited = await client.get(f"/evaluations/{running.id}", params={"wait_for_completion": 0.2})
    assert waited.status_code == 504
    now = await client.get(f"/evaluations/{running.id}", params={"wait_for_completion": 0})
    assert now.status_code == 200 and now.json()["status"] == "running"
