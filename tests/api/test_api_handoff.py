"""Handoff, greetings and agent messages on demand over REST: the queue (``GET /sessions``
filtered by mode and operator), the handoff routes, what customers see of them, and Parlant's
official client asking for a greeting and for an agent message with guidelines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from api_scenario import new_session
from parlant.client import AsyncParlantClient
from parlant.client.core.api_error import ApiError
from parlant.client.types import AgentMessageGuideline, Participant
from production import start_production

from tactful.config import Settings
from tactful.domain import EventKind, MatchMethod, SessionMode, Trace
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import answer_listed
from tactful.llm.scripted import HashingEmbedder, ScriptedCall, ScriptedGenerator
from tactful.runtime import Runtime, start_runtime
from tactful.store.base import SessionFilter


def _compose(call: ScriptedCall) -> ReplyAnswer:
    prompt = call.prompt.user
    if "own initiative (greeting)" in prompt:
        return ReplyAnswer(message="Welcome to the shop!")
    if "own initiative (utterance)" in prompt:
        return ReplyAnswer(message="Your order has shipped.")
    return ReplyAnswer(message="Refunds take five days.")


@pytest_asyncio.fixture
async def runtime() -> AsyncIterator[Runtime]:
    """A transient runtime on the scripted model: a greeting, an utterance and a reply say
    what they are (the app, client and server fixtures use it)."""
    model = ScriptedGenerator(
        {
            "match": lambda c: answer_listed(
                c.prompt.user, lambda g: "opens" if "opens" in g.condition else None
            ),
            "compose": _compose,
        }
    )
    rt = await start_runtime(Settings(transient=True), embedder=HashingEmbedder(), generator=model)
    try:
        yield rt
    finally:
        await rt.close()


@pytest_asyncio.fixture
async def parlant(server_url: str) -> AsyncIterator[AsyncParlantClient]:
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as http:
        yield AsyncParlantClient(base_url=server_url, httpx_client=http)


def _ids(listed: httpx.Response) -> list[str]:
    assert listed.status_code == 200, listed.text
    body = listed.json()
    items = body["items"] if isinstance(body, dict) else body
    return [s["id"] for s in items]


async def _steps(runtime: Runtime, session_id: str) -> list[Any]:
    events = await runtime.store.list_events(session_id, kinds=[EventKind.CUSTOM])
    return [e.data for e in events]


async def test_the_queue_filters_by_mode_and_operator_before_paging(
    backend_client: httpx.AsyncClient, backend_runtime: Runtime
) -> None:
    # Reproduction: ``mode`` was accepted and ignored, every session came back.
    client = backend_client
    agent = (await client.post("/agents", json={"name": "A"})).json()
    auto, patched, waiting, taken = [await new_session(client, agent["id"]) for _ in range(4)]
    await client.patch(f"/sessions/{patched}", json={"mode": "manual"})
    await client.post(f"/sessions/{waiting}/handoff", json={"reason": "asks for a person"})
    await client.put(
        f"/sessions/{taken}/handoff/assignee", json={"id": "op-1", "display_name": "Ann"}
    )

    assert _ids(await client.get("/sessions", params={"mode": "auto"})) == [auto]
    manual = [patched, waiting, taken]
    assert _ids(await client.get("/sessions", params={"mode": "manual"})) == manual
    queue = {"mode": "manual", "assigned": "false"}
    assert _ids(await client.get("/sessions", params=queue)) == [patched, waiting]
    assert _ids(await client.get("/sessions", params={"assignee_id": "op-1"})) == [taken]
    assert _ids(await client.get("/sessions", params={"assigned": "true"})) == [taken]
    # Filtered before paging: the count and the pages are the queue's.
    page = (await client.get("/sessions", params={**queue, "limit": 1})).json()
    assert [s["id"] for s in page["items"]] == [patched]
    assert page["total_count"] == 2 and page["has_more"] is True
    after = {**queue, "limit": 1, "cursor": page["next_cursor"]}
    assert _ids(await client.get("/sessions", params=after)) == [waiting]
    # In the database, with JSON expressions over the session document.
    store = backend_runtime.store
    found = await store.find_sessions(SessionFilter(mode=SessionMode.MANUAL, assigned=False))
    assert [s.id for s in found] == [patched, waiting]
    assert await store.find_sessions(SessionFilter(agent_id="ghost")) == []
    bad = await client.get("/sessions", params={"mode": "sleeping"})
    assert bad.status_code == 422


async def test_a_person_takes_the_session_and_gives_it_back(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    agent = (await client.post("/agents", json={"name": "Shop"})).json()
    session_id = await new_session(client, agent["id"])
    url = f"/sessions/{session_id}"

    handed = await client.post(f"{url}/handoff", json={"reason": "wants to cancel a contract"})
    assert handed.status_code == 200, handed.text
    session = handed.json()
    assert session["mode"] == "manual"
    assert session["handoff"]["reason"] == "wants to cancel a contract"
    assert session["handoff"]["by"] == "development" and session["handoff"]["assignee"] is None
    # Handing off again changes nothing (no second event).
    await client.post(f"{url}/handoff", json={"reason": "again"})
    # The customer's message waits for the person: no turn.
    posted = await client.post(
        f"{url}/events", json={"kind": "message", "source": "customer", "message": "hello?"}
    )
    assert posted.status_code == 201
    await runtime.engine.wait_idle()

    taken = await client.put(
        f"{url}/handoff/assignee", json={"id": "op-7", "display_name": "Grace"}
    )
    assert taken.json()["handoff"]["assignee"] == {"id": "op-7", "display_name": "Grace"}
    # The operator writes as themselves (the session's operator by default) or as the agent.
    mine = await client.post(
        f"{url}/events",
        json={"kind": "message", "source": "human_agent", "message": "Hi, Grace here."},
    )
    assert mine.json()["data"]["participant"] == {"id": "op-7", "display_name": "Grace"}
    assert mine.json()["source"] == "human_agent"
    as_agent = await client.post(
        f"{url}/events",
        json={"kind": "message", "source": "human_agent_on_behalf_of_ai_agent", "message": "Done."},
    )
    assert as_agent.json()["data"]["participant"] == {"id": agent["id"], "display_name": "Shop"}
    # The agent may not be asked to speak while a person has the session.
    refused = await client.post(f"{url}/events", json={"kind": "message", "source": "ai_agent"})
    assert refused.status_code == 409 and "manual mode" in refused.json()["detail"]

    released = await client.delete(f"{url}/handoff/assignee")
    assert released.json()["handoff"]["assignee"] is None
    assert released.json()["mode"] == "manual"
    returned = await client.delete(f"{url}/handoff")
    assert returned.json()["mode"] == "auto" and returned.json()["handoff"] is None

    steps = await _steps(runtime, session_id)
    assert [s["handoff"] for s in steps] == ["requested", "taken", "released", "returned"]
    assert steps[0]["reason"] == "wants to cancel a contract"
    assert steps[1]["operator"] == {"id": "op-7", "display_name": "Grace"}
    assert steps[1]["waited_s"] >= 0 and steps[3]["manual_s"] >= 0
    # Back with the agent: the next message starts a turn.
    await client.post(
        f"{url}/events", json={"kind": "message", "source": "customer", "message": "thanks"}
    )
    await runtime.engine.wait_idle()
    replies = await runtime.store.list_events(session_id, kinds=[EventKind.MESSAGE])
    assert replies[-1].data["message"] == "Refunds take five days."


async def test_taking_a_session_from_the_agent_hands_it_off_first(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    agent = (await client.post("/agents", json={"name": "Shop"})).json()
    session_id = await new_session(client, agent["id"])
    taken = await client.put(f"/sessions/{session_id}/handoff/assignee", json={})
    assert taken.status_code == 200, taken.text
    handoff = taken.json()["handoff"]
    # Without a body the caller's credential names the operator.
    assert handoff["assignee"] == {"id": "development", "display_name": "development"}
    assert handoff["reason"] == "taken over by development"
    steps = await _steps(runtime, session_id)
    assert [s["handoff"] for s in steps] == ["requested", "taken"]
    # A human_agent message with no participant needs an operator on the session.
    await client.delete(f"/sessions/{session_id}/handoff/assignee")
    nameless = await client.post(
        f"/sessions/{session_id}/events",
        json={"kind": "message", "source": "human_agent", "message": "hi"},
    )
    assert nameless.status_code == 422 and "participant" in nameless.text
    missing = await client.post("/sessions/ghost/handoff", json={})
    assert missing.status_code == 404


async def test_customers_see_the_wait_not_its_internals() -> None:
    prod = await start_production()
    try:
        async with prod.client(prod.admin_key) as admin, prod.client(prod.operator_key) as op:
            agent = (await admin.post("/agents", json={"name": "Shop"})).json()
            created = await op.post(
                "/sessions", json={"agent_id": agent["id"], "customer_id": prod.customer_a}
            )
            session_id = created.json()["id"]
            await op.post(f"/sessions/{session_id}/handoff", json={"reason": "angry customer"})
            await op.put(
                f"/sessions/{session_id}/handoff/assignee",
                json={"id": "op-1", "display_name": "Grace"},
            )
            staff_view = (await op.get(f"/sessions/{session_id}")).json()
            assert staff_view["handoff"]["reason"] == "angry customer"
            assert staff_view["handoff"]["by"].startswith("key:")
        async with prod.client(prod.token(prod.customer_a)) as customer:
            mine = (await customer.get(f"/sessions/{session_id}")).json()
            assert mine["mode"] == "manual" and mine["handoff"] is None
            listed = await customer.get("/sessions", params={"mode": "manual"})
            assert [s["handoff"] for s in listed.json()] == [None]
            events = (
                await customer.get(f"/sessions/{session_id}/events", params={"wait_for_data": 0})
            ).json()
            assert [e["data"] for e in events] == [
                {"handoff": "requested"},
                {"handoff": "taken", "operator": {"display_name": "Grace"}},
            ]
            refused = await customer.get("/sessions", params={"assigned": "false"})
            assert refused.status_code == 403
            forbidden = await customer.post(f"/sessions/{session_id}/handoff", json={})
            assert forbidden.status_code == 403
    finally:
        await prod.runtime.close()


async def test_the_official_client_greets_hands_off_and_asks_the_agent_to_speak(
    parlant: AsyncParlantClient, runtime: Runtime
) -> None:
    agent = await parlant.agents.create(name="Shop", description="Sells headphones")
    await parlant.guidelines.create(
        condition="the conversation opens", action="greet the customer by the shop's name"
    )
    # Reproduction: allow_greeting was accepted and ignored (nothing was said).
    session = await parlant.sessions.create(agent_id=agent.id, allow_greeting=True)
    greetings = await parlant.sessions.list_events(
        session.id, source="ai_agent", kinds="message", wait_for_data=10
    )
    assert [e.data["message"] for e in greetings] == ["Welcome to the shop!"]  # type: ignore[index]

    # Parlant's agent message on demand: the answer is the message, written under the action.
    said = await parlant.sessions.create_event(
        session.id,
        kind="message",
        source="ai_agent",
        guidelines=[
            AgentMessageGuideline(
                action="tell the customer their order shipped", rationale="follow_up"
            )
        ],
    )
    assert said.kind == "message" and said.source == "ai_agent"
    assert said.data["message"] == "Your order has shipped."  # type: ignore[index]
    trace = await runtime.store.get(Trace, said.trace_id)
    assert trace.proactive is not None and trace.proactive.actions[0].rationale == "follow_up"
    assert [m.action for m in trace.matches if m.method is MatchMethod.REQUESTED] == [
        "tell the customer their order shipped"
    ]
    # Without guidelines: the turn's acknowledgement at once (as Parlant's first status).
    opened = await parlant.sessions.create_event(session.id, kind="message", source="ai_agent")
    assert opened.kind == "status" and opened.data["status"] == "acknowledged"  # type: ignore[index]
    await runtime.engine.wait_idle(session.id)
    with pytest.raises(ApiError) as refused:
        await parlant.sessions.create_event(
            session.id, kind="message", source="ai_agent", message="I write myself"
        )
    assert refused.value.status_code == 422

    # Parlant's mode switch is a handoff step on the timeline.
    manual = await parlant.sessions.update(session.id, mode="manual")
    assert manual.mode == "manual"
    human = await parlant.sessions.create_event(
        session.id,
        kind="message",
        source="human_agent",
        message="Hello, this is Grace.",
        participant=Participant(id="op-1", display_name="Grace"),
    )
    assert human.source == "human_agent"
    with pytest.raises(ApiError) as busy:
        await parlant.sessions.create_event(session.id, kind="message", source="ai_agent")
    assert busy.value.status_code == 409
    auto = await parlant.sessions.update(session.id, mode="auto")
    assert auto.mode == "auto"
    steps = await _steps(runtime, session.id)
    assert [s["handoff"] for s in steps] == ["requested", "returned"]
    assert steps[0]["reason"] == "set to manual mode (PATCH /sessions)"
