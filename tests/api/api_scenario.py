"""A small scenario the offline tier can answer: an agent, a canned response, a guideline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tactful.domain import CannedResponse, Guideline
from tactful.runtime import Runtime


@dataclass
class Answering:
    """An agent whose offline tier has something to say about refunds."""

    agent_id: str
    guideline_id: str
    canned_response_id: str
    reply: str


REFUND_REPLY = "Refunds take five business days, from {{agent_name}}."


async def answering_agent(client: httpx.AsyncClient, runtime: Runtime) -> Answering:
    """Create (through the API) an agent, a canned response and a guideline preferring it."""
    agent = await client.post(
        "/agents", json={"name": "Support", "composition_mode": "strict_canned"}
    )
    assert agent.status_code == 201, agent.text
    agent_id = agent.json()["id"]
    canned = await client.post(
        "/canned_responses", json={"value": REFUND_REPLY, "tags": [f"agent:{agent_id}"]}
    )
    assert canned.status_code == 201, canned.text
    guideline = await client.post(
        "/guidelines",
        json={
            "condition": "the customer asks about a refund for their order",
            "action": "explain how long refunds take",
            "tags": [f"agent:{agent_id}"],
            "canned_responses": [canned.json()["id"]],
            "examples": ["how long does my refund take", "where is my refund"],
        },
    )
    assert guideline.status_code == 201, guideline.text
    stored = await runtime.store.get(Guideline, guideline.json()["id"])
    assert stored.canned_responses == [canned.json()["id"]]
    assert await runtime.store.get(CannedResponse, canned.json()["id"])
    return Answering(
        agent_id=agent_id,
        guideline_id=stored.id,
        canned_response_id=canned.json()["id"],
        reply=REFUND_REPLY,
    )


async def new_session(client: httpx.AsyncClient, agent_id: str, **extra: Any) -> str:
    response = await client.post("/sessions", json={"agent_id": agent_id, **extra})
    assert response.status_code == 201, response.text
    session_id: str = response.json()["id"]
    return session_id


def refusal(response: httpx.Response) -> str:
    """A 422's messages, from FastAPI's shape ``{"detail": [{"loc", "msg", "type"}]}``."""
    assert response.status_code == 422, response.text
    return "; ".join(item["msg"] for item in response.json()["detail"])
