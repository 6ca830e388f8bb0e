"""``PATCH /sessions/{id}/events/{event_id}``: frontends annotate events (metadata set/unset)."""

from __future__ import annotations

from typing import Any

import httpx
from api_scenario import new_session, refusal
from production import Production

from tactful.domain import EventKind, EventSource, Session
from tactful.domain.events import EVENT_METADATA_MAX_BYTES
from tactful.runtime import Runtime


async def _agent(client: httpx.AsyncClient) -> str:
    created = await client.post("/agents", json={"name": "Support"})
    assert created.status_code == 201, created.text
    agent_id: str = created.json()["id"]
    return agent_id


async def _custom(client: httpx.AsyncClient, session_id: str, **extra: Any) -> dict[str, Any]:
    posted = await client.post(
        f"/sessions/{session_id}/events",
        json={"kind": "custom", "source": "customer_ui", "data": {"shown": "card"}, **extra},
    )
    assert posted.status_code == 201, posted.text
    event: dict[str, Any] = posted.json()
    return event


async def test_metadata_is_set_and_unset(client: httpx.AsyncClient) -> None:
    session_id = await new_session(client, await _agent(client))
    event = await _custom(client, session_id, metadata={"old": 1, "keep": "yes"})
    path = f"/sessions/{session_id}/events/{event['id']}"

    patched = await client.patch(
        path, json={"metadata": {"set": {"rating": "up", "note": {"a": [1, 2]}}, "unset": ["old"]}}
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["metadata"] == {"keep": "yes", "rating": "up", "note": {"a": [1, 2]}}
    assert (body["id"], body["offset"], body["data"]) == (event["id"], 0, {"shown": "card"})

    # Read back alone and in the listing (which this process answers from its recent events).
    assert (await client.get(path)).json()["metadata"] == body["metadata"]
    listed = await client.get(f"/sessions/{session_id}/events", params={"wait_for_data": 5})
    assert [e["metadata"] for e in listed.json()] == [body["metadata"]]

    # An empty update changes nothing; unsetting a missing key is no error.
    assert (await client.patch(path, json={})).json()["metadata"] == body["metadata"]
    again = await client.patch(path, json={"metadata": {"unset": ["missing", "note"]}})
    assert again.json()["metadata"] == {"keep": "yes", "rating": "up"}


async def test_bad_updates_are_refused_and_change_nothing(client: httpx.AsyncClient) -> None:
    session_id = await new_session(client, await _agent(client))
    event = await _custom(client, session_id, metadata={"keep": 1})
    path = f"/sessions/{session_id}/events/{event['id']}"

    typo = await client.patch(path, json={"metadata": {"sett": {"a": 1}}})
    assert typo.status_code == 422, typo.text
    other_field = await client.patch(path, json={"data": {"x": 1}})
    assert other_field.status_code == 422, other_field.text
    empty_key = await client.patch(path, json={"metadata": {"set": {"": 1}}})
    assert empty_key.status_code == 422, empty_key.text
    both = await client.patch(path, json={"metadata": {"set": {"a": 1}, "unset": ["a"]}})
    assert both.status_code == 422, both.text
    assert "both set and unset: a" in refusal(both)

    huge = await client.patch(
        path, json={"metadata": {"set": {"blob": "x" * (EVENT_METADATA_MAX_BYTES + 1)}}}
    )
    assert huge.status_code == 413, huge.text
    assert str(EVENT_METADATA_MAX_BYTES) in huge.json()["detail"]
    assert (await client.get(path)).json()["metadata"] == {"keep": 1}

    missing = await client.patch(f"/sessions/{session_id}/events/nope", json={})
    assert missing.status_code == 404, missing.text
    elsewhere = await new_session(client, (await client.get("/agents")).json()[0]["id"])
    wrong_session = await client.patch(f"/sessions/{elsewhere}/events/{event['id']}", json={})
    assert wrong_session.status_code == 404, wrong_session.text


async def test_an_update_wakes_live_readers_and_keeps_waiters_right(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    session_id = await new_session(client, await _agent(client))
    event = await _custom(client, session_id)
    heard: list[int] = []
    runtime.bus.watch(lambda sid, offset: heard.append(offset) if sid == session_id else None)
    patched = await client.patch(
        f"/sessions/{session_id}/events/{event['id']}", json={"metadata": {"set": {"seen": True}}}
    )
    assert patched.status_code == 200, patched.text
    assert heard == [event["offset"]]
    # The process's recent events hold the annotated state (a stream reads them).
    kept = runtime.engine.timeline.recent.event(session_id, event["id"])
    assert kept is not None and kept.metadata == {"seen": True}


async def test_customers_annotate_what_they_see_in_their_own_sessions(
    production: Production,
) -> None:
    store = production.runtime.store
    async with production.client(production.admin_key) as admin:
        agent_id = await _agent(admin)
    session = await store.create(Session(agent_id=agent_id, customer_id=production.customer_a))
    message = await store.append_event(
        session.id, kind=EventKind.MESSAGE, source=EventSource.AI_AGENT, data={"message": "Hi"}
    )
    tool = await store.append_event(
        session.id, kind=EventKind.TOOL, source=EventSource.AI_AGENT, data={"tool_calls": []}
    )
    preamble = await store.append_event(
        session.id,
        kind=EventKind.MESSAGE,
        source=EventSource.AI_AGENT,
        data={"message": "One moment"},
        metadata={"preamble": True},
    )
    path = f"/sessions/{session.id}/events"
    rating = {"metadata": {"set": {"rating": "up"}}}

    async with production.client(production.token(production.customer_a)) as ann:
        own = await ann.patch(f"{path}/{message.id}", json=rating)
        assert own.status_code == 200, own.text
        assert own.json()["metadata"] == {"rating": "up"}
        # Tool events are not theirs to see, so not theirs to annotate.
        hidden = await ann.patch(f"{path}/{tool.id}", json=rating)
        assert hidden.status_code == 404, hidden.text
        # Keys the engine reads are staff's.
        for body in (
            {"metadata": {"set": {"preamble": False}}},
            {"metadata": {"unset": ["preamble"]}},
        ):
            reserved = await ann.patch(f"{path}/{preamble.id}", json=body)
            assert reserved.status_code == 403, reserved.text
            assert "preamble" in reserved.json()["detail"]
    async with production.client(production.token(production.customer_b)) as bob:
        foreign = await bob.patch(f"{path}/{message.id}", json=rating)
        assert foreign.status_code in (403, 404), foreign.text
    async with production.client() as anonymous:
        nobody = await anonymous.patch(f"{path}/{message.id}", json=rating)
        assert nobody.status_code == 404, nobody.text
    async with production.client(production.operator_key) as desk:
        staff = await desk.patch(f"{path}/{preamble.id}", json={"metadata": {"set": {"x": 1}}})
        assert staff.status_code == 200, staff.text
        tool_note = await desk.patch(f"{path}/{tool.id}", json={"metadata": {"set": {"x": 1}}})
        assert tool_note.status_code == 200, tool_note.text
    assert (await store.get_event(session.id, message.id)).metadata == {"rating": "up"}
    assert (await store.get_event(session.id, preamble.id)).metadata == {
        "preamble": True,
        "x": 1,
    }
