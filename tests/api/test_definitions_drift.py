"""The same definitions made through the SDK and through the REST API store the same thing.

Each test defines something once with ``tactful.Server`` (its own transient store) and once
through a real uvicorn server over the ``runtime`` fixture, then compares what the two stores
hold, ids and creation times aside (tag ids, which neither path lets the caller choose, are
compared by name), or the errors both paths give.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from api_scenario import refusal

import tactful
from tactful.domain import Capability, Guideline, Journey, Relationship, Tag, ToolSpec
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import Runtime
from tactful.store.base import Store

AGENT = "support"
TOOL = ToolSpec(id="orders:lookup", service_name="orders", name="lookup", description="Look up")


@pytest_asyncio.fixture
async def sdk() -> AsyncIterator[tactful.Server]:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        yield s


@pytest_asyncio.fixture
async def rest(server_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as client:
        yield client


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _tag_names(store: Store) -> dict[str, str]:
    return {t.id: t.name for t in await store.list(Tag)}


async def _observations(store: Store) -> list[tuple[str, str | None, list[str]]]:
    """Every guideline as (condition, action, tags), tag ids named."""
    names = await _tag_names(store)
    return sorted(
        (g.condition, g.action, sorted(names.get(t, t) for t in g.tags))
        for g in await store.list(Guideline)
    )


async def _journeys(store: Store) -> list[dict[str, Any]]:
    """Every journey without ids and times: conditions as their texts, tag ids named."""
    names = await _tag_names(store)
    conditions = {g.id: g.condition for g in await store.list(Guideline)}
    return [
        {
            "title": j.title,
            "description": j.description,
            "conditions": [conditions[c] for c in j.conditions],
            "tags": sorted(names.get(t, t) for t in j.tags),
            "priority": j.priority,
            "composition_mode": j.composition_mode,
            "states": [s.kind for s in j.states],
            "transitions": len(j.transitions),
        }
        for j in await store.list(Journey)
    ]


async def _relationships(store: Store) -> list[tuple[str, str, str, str, str]]:
    return sorted(
        (r.kind.value, r.source.kind.value, r.source.id, r.target.kind.value, r.target.id)
        for r in await store.list(Relationship)
    )


async def test_a_tool_end_is_checked_and_stored_alike(
    sdk: tactful.Server, rest: httpx.AsyncClient, runtime: Runtime
) -> None:
    # The tool is registered otherwise (as an MCP service's would be): its spec is stored.
    await sdk.runtime.store.create(TOOL)
    await runtime.store.create(TOOL)
    agent = await sdk.create_agent("Support", id=AGENT)
    status = await agent.create_guideline("the order status is known", "tell it", id="status")
    await _post(rest, "/agents", {"name": "Support", "id": AGENT})
    await _post(
        rest,
        "/guidelines",
        {
            "condition": "the order status is known",
            "action": "tell it",
            "id": "status",
            "tags": [f"agent:{AGENT}"],
        },
    )

    with pytest.raises(tactful.NotFoundError) as sdk_refusal:
        await agent.reevaluate_after("orders:nope", status)
    rest_refusal = await rest.post(
        "/relationships",
        json={
            "kind": "reevaluation",
            "source_tool": {"service_name": "orders", "tool_name": "nope"},
            "target_guideline": "status",
        },
    )
    assert rest_refusal.status_code == 404
    assert rest_refusal.json() == {"detail": str(sdk_refusal.value)}
    assert await _relationships(sdk.runtime.store) == []
    assert await _relationships(runtime.store) == []

    await agent.reevaluate_after("orders:lookup", status)
    await _post(
        rest,
        "/relationships",
        {
            "kind": "reevaluation",
            "source_tool": {"service_name": "orders", "tool_name": "lookup"},
            "target_guideline": "status",
        },
    )
    stored = await _relationships(sdk.runtime.store)
    assert stored == [("reevaluation", "tool", "orders:lookup", "guideline", "status")]
    assert await _relationships(runtime.store) == stored
    assert await _observations(runtime.store) == await _observations(sdk.runtime.store)


async def test_journey_conditions_carry_the_journey_tags_alike(
    sdk: tactful.Server, rest: httpx.AsyncClient, runtime: Runtime
) -> None:
    conditions = ["the customer wants to return an item", "the customer mentions a refund"]
    agent = await sdk.create_agent("Support", id=AGENT)
    vip = await sdk.create_tag("vip")
    await agent.create_journey("Return an item", conditions=conditions, tags=[vip.id])
    # A second journey starting on the same condition, with the same tags, shares its
    # observation.
    await agent.create_journey("Exchange an item", conditions=conditions[:1], tags=[vip.id])

    await _post(rest, "/agents", {"name": "Support", "id": AGENT})
    vip_id = (await _post(rest, "/tags", {"name": "vip"}))["id"]
    tags = [f"agent:{AGENT}", vip_id]
    await _post(
        rest, "/journeys", {"title": "Return an item", "conditions": conditions, "tags": tags}
    )
    await _post(
        rest, "/journeys", {"title": "Exchange an item", "conditions": conditions[:1], "tags": tags}
    )

    observations = await _observations(sdk.runtime.store)
    assert observations == sorted(
        (condition, None, sorted([f"agent:{AGENT}", "vip"])) for condition in conditions
    )
    assert await _observations(runtime.store) == observations
    assert await _journeys(runtime.store) == await _journeys(sdk.runtime.store)


async def test_an_invalid_template_is_refused_alike(
    sdk: tactful.Server, rest: httpx.AsyncClient, runtime: Runtime
) -> None:
    template = "Your order {{ order_id ships tomorrow"
    agent = await sdk.create_agent("Support", id=AGENT)
    with pytest.raises(tactful.ValidationError) as by_agent:
        await agent.create_canned_response(template)
    with pytest.raises(tactful.ValidationError) as by_server:
        await sdk.create_canned_response(template)
    response = await rest.post("/canned_responses", json={"value": template})
    assert str(by_agent.value).startswith("invalid canned response template: line 1: ")
    assert str(by_server.value) == str(by_agent.value)
    assert refusal(response) == str(by_agent.value)


def _unnamed_states(problems: list[str]) -> list[str]:
    """Problems with state ids left out (the SDK makes its own)."""
    return [re.sub(r"state '[^']*'", "state ?", p) for p in problems]


async def test_an_invalid_graph_has_the_same_problems(
    sdk: tactful.Server, rest: httpx.AsyncClient, runtime: Runtime
) -> None:
    agent = await sdk.create_agent("Support", id=AGENT)
    journey = await agent.create_journey("Return an item")
    with pytest.raises(tactful.ValidationError) as sdk_refusal:
        await journey.initial_state.transition_to(tool_state="orders:nope")
    sdk_problems = str(sdk_refusal.value).removeprefix("invalid journey: ").split("; ")

    await _post(rest, "/agents", {"name": "Support", "id": AGENT})
    created = await _post(
        rest, "/journeys", {"title": "Return an item", "tags": [f"agent:{AGENT}"]}
    )
    response = await rest.put(
        f"/journeys/{created['id']}/graph",
        json={
            "initial_state_id": "start",
            "states": [{"id": "start"}, {"id": "lookup", "kind": "tool", "tools": ["orders:nope"]}],
            "transitions": [{"source": "start", "target": "lookup"}],
        },
    )
    assert response.status_code == 422
    rest_problems = [item["msg"] for item in response.json()["detail"]]
    assert _unnamed_states(sdk_problems) == ["tool state ? names unknown tool 'orders:nope'"]
    assert _unnamed_states(rest_problems) == _unnamed_states(sdk_problems)
    assert await _journeys(runtime.store) == await _journeys(sdk.runtime.store)


async def test_journey_condition_texts_are_stripped_and_deduped_alike(
    sdk: tactful.Server, rest: httpx.AsyncClient, runtime: Runtime
) -> None:
    conditions = [
        "  the customer wants to return an item ",
        "",
        "the customer wants to return an item",
    ]
    agent = await sdk.create_agent("Support", id=AGENT)
    await agent.create_journey("Return an item", conditions=conditions)

    await _post(rest, "/agents", {"name": "Support", "id": AGENT})
    await _post(
        rest,
        "/journeys",
        {"title": "Return an item", "conditions": conditions, "tags": [f"agent:{AGENT}"]},
    )

    observations = await _observations(sdk.runtime.store)
    assert observations == [("the customer wants to return an item", None, [f"agent:{AGENT}"])]
    assert await _observations(runtime.store) == observations
    assert await _journeys(runtime.store) == await _journeys(sdk.runtime.store)


async def test_a_journey_with_an_unknown_tag_is_refused_alike(
    sdk: tactful.Server, rest: httpx.AsyncClient, runtime: Runtime
) -> None:
    agent = await sdk.create_agent("Support", id=AGENT)
    with pytest.raises(tactful.NotFoundError) as sdk_refusal:
        await agent.create_journey("Return an item", conditions=["wants a return"], tags=["nope"])

    await _post(rest, "/agents", {"name": "Support", "id": AGENT})
    response = await rest.post(
        "/journeys",
        json={
            "title": "Return an item",
            "conditions": ["wants a return"],
            "tags": [f"agent:{AGENT}", "nope"],
        },
    )
    assert response.status_code == 404
    assert response.json() == {"detail": str(sdk_refusal.value)}
    for store in (sdk.runtime.store, runtime.store):
        assert await store.list(Journey) == []
        assert await store.list(Guideline) == []


async def test_a_capability_is_stored_alike_and_refused_alike(
    sdk: tactful.Server, rest: httpx.AsyncClient, runtime: Runtime
) -> None:
    agent = await sdk.create_agent("Support", id=AGENT)
    signals = [" my phone broke", "my phone broke", "I need a loan phone"]
    made = await agent.create_capability("Lend a phone", "A loan phone", signals=signals)
    with pytest.raises(tactful.NotFoundError) as sdk_refusal:
        await agent.create_capability("Reset a password", "Send a link", tags=["nope"])

    await _post(rest, "/agents", {"name": "Support", "id": AGENT})
    posted = await _post(
        rest,
        "/capabilities",
        {
            "title": "Lend a phone",
            "description": "A loan phone",
            "signals": signals,
            "tags": [f"agent:{AGENT}"],
        },
    )
    response = await rest.post(
        "/capabilities",
        json={"title": "Reset a password", "description": "Send a link", "tags": ["nope"]},
    )
    assert response.status_code == 404
    assert response.json() == {"detail": str(sdk_refusal.value)}
    [stored] = await runtime.store.list(Capability)
    assert stored.id == posted["id"]
    ignored = {"id", "creation_utc"}
    assert stored.model_dump(exclude=ignored) == made.model_dump(exclude=ignored)
    assert stored.signals == ["my phone broke", "I need a loan phone"]
