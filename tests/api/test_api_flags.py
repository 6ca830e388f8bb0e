"""``/flags``: staff mark an agent reply with a note; flags are listed, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from api_scenario import answering_agent, new_session, refusal

from tactful.domain import Flag
from tactful.runtime import Runtime

FLAG_FIELDS = {"id", "session_id", "event_id", "trace_id", "agent_id", "note", "creation_utc"}


@dataclass
class Exchange:
    """A session with one customer message and the agent's reply."""

    agent_id: str
    session_id: str
    customer: dict[str, Any]
    reply: dict[str, Any]


async def exchange(
    client: httpx.AsyncClient, runtime: Runtime, agent_id: str | None = None
) -> Exchange:
    if agent_id is None:
        agent_id = (await answering_agent(client, runtime)).agent_id
    session_id = await new_session(client, agent_id)
    posted = await client.post(
        f"/sessions/{session_id}/events",
        json={"kind": "message", "source": "customer", "message": "how long does a refund take"},
    )
    assert posted.status_code == 201, posted.text
    await runtime.engine.wait_idle(session_id)
    messages = (
        await client.get(f"/sessions/{session_id}/events", params={"kinds": "message"})
    ).json()
    customer, reply = messages
    assert reply["source"] == "ai_agent" and reply["trace_id"], reply
    return Exchange(agent_id, session_id, customer, reply)


async def flag(client: httpx.AsyncClient, ex: Exchange, note: str = "") -> dict[str, Any]:
    response = await client.post(
        "/flags", json={"session_id": ex.session_id, "event_id": ex.reply["id"], "note": note}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_flag_a_reply_list_it_and_delete_it(
    backend_client: httpx.AsyncClient, backend_runtime: Runtime
) -> None:
    client = backend_client
    ex = await exchange(client, backend_runtime)
    made = await flag(client, ex, "should name the refund window in days")
    assert set(made) == FLAG_FIELDS
    assert made["session_id"] == ex.session_id
    assert made["event_id"] == ex.reply["id"]
    assert made["trace_id"] == ex.reply["trace_id"]
    assert made["agent_id"] == ex.agent_id
    assert made["note"] == "should name the refund window in days"
    stored = await backend_runtime.store.get(Flag, made["id"])
    assert stored.model_dump(mode="json") == made
    # The trace it names is the one the inspector shows for that reply.
    assert (await client.get(f"/traces/{made['trace_id']}")).json()["session_id"] == ex.session_id

    assert (await client.get("/flags")).json() == [made]
    assert (await client.get("/flags", params={"session_id": ex.session_id})).json() == [made]
    assert (await client.get("/flags", params={"agent_id": ex.agent_id})).json() == [made]
    assert (await client.get("/flags", params={"session_id": "other"})).json() == []
    assert (await client.get("/flags", params={"agent_id": "other"})).json() == []

    assert (await client.delete(f"/flags/{made['id']}")).status_code == 204
    assert (await client.get("/flags")).json() == []
    gone = await client.delete(f"/flags/{made['id']}")
    assert gone.status_code == 404
    assert gone.json() == {"detail": f"Flag {made['id']!r} was not found"}
    # The reply itself stays.
    assert (await client.get(f"/sessions/{ex.session_id}/events/{ex.reply['id']}")).is_success


async def test_only_an_agent_message_of_that_session_can_be_flagged(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ex = await exchange(client, runtime)
    other = await exchange(client, runtime, ex.agent_id)

    def body(session_id: str, event_id: str) -> dict[str, str]:
        return {"session_id": session_id, "event_id": event_id, "note": ""}

    customer = await client.post("/flags", json=body(ex.session_id, ex.customer["id"]))
    assert "only the agent's messages" in refusal(customer)
    assert "message event from customer" in refusal(customer)
    assert customer.json()["detail"][0]["loc"] == ["body", "event_id"]

    statuses = (
        await client.get(f"/sessions/{ex.session_id}/events", params={"kinds": "status"})
    ).json()
    status = await client.post("/flags", json=body(ex.session_id, statuses[-1]["id"]))
    assert "status event from ai_agent" in refusal(status)

    no_session = await client.post("/flags", json=body("ghost", ex.reply["id"]))
    assert no_session.status_code == 404
    assert no_session.json() == {"detail": "Session 'ghost' was not found"}
    no_event = await client.post("/flags", json=body(ex.session_id, "ghost"))
    assert no_event.json() == {"detail": "Event 'ghost' was not found"}
    # A reply of another session is not in this one.
    elsewhere = await client.post("/flags", json=body(ex.session_id, other.reply["id"]))
    assert elsewhere.status_code == 404
    # Deleted events are no longer on the timeline.
    cut = await client.delete(
        f"/sessions/{ex.session_id}/events", params={"min_offset": ex.reply["offset"]}
    )
    assert cut.status_code == 204
    deleted = await client.post("/flags", json=body(ex.session_id, ex.reply["id"]))
    assert deleted.status_code == 404

    assert await runtime.store.list(Flag) == []


async def test_the_note_may_be_empty_or_left_out_and_is_bounded(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ex = await exchange(client, runtime)
    where = {"session_id": ex.session_id, "event_id": ex.reply["id"]}
    left_out = await client.post("/flags", json=where)
    assert left_out.status_code == 201 and left_out.json()["note"] == ""
    longest = await client.post("/flags", json={**where, "note": "n" * 2000})
    assert longest.status_code == 201 and len(longest.json()["note"]) == 2000
    too_long = await client.post("/flags", json={**where, "note": "n" * 2001})
    assert "at most 2000 characters" in refusal(too_long)
    # Fields the server fills in are not taken from the body.
    forged = await client.post("/flags", json={**where, "agent_id": "someone"})
    assert "Extra inputs are not permitted" in refusal(forged)
    assert len(await runtime.store.list(Flag)) == 2


async def test_newest_first_and_paginated_like_other_listings(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ex = await exchange(client, runtime)
    made = [await flag(client, ex, f"note {i}") for i in range(3)]
    newest_first = list(reversed(made))
    assert (await client.get("/flags")).json() == newest_first
    assert (await client.get("/flags", params={"sort": "asc"})).json() == made

    page1 = (await client.get("/flags", params={"limit": 2})).json()
    assert page1["items"] == newest_first[:2]
    assert page1["total_count"] == 3 and page1["has_more"] is True
    page2 = (await client.get("/flags", params={"limit": 2, "cursor": page1["next_cursor"]})).json()
    assert page2 == {
        "items": newest_first[2:],
        "total_count": 3,
        "has_more": False,
        "next_cursor": None,
    }
    bad = await client.get("/flags", params={"limit": 2, "cursor": "!!!"})
    assert "cursor" in refusal(bad)


async def test_flags_go_with_their_session_and_their_agent(
    backend_client: httpx.AsyncClient, backend_runtime: Runtime
) -> None:
    client = backend_client
    ex = await exchange(client, backend_runtime)
    kept = await exchange(client, backend_runtime, ex.agent_id)
    doomed, survivor = await flag(client, ex, "a"), await flag(client, kept, "b")

    assert (await client.delete(f"/sessions/{ex.session_id}")).status_code == 204
    assert (await client.get("/flags")).json() == [survivor]
    assert await backend_runtime.store.find(Flag, doomed["id"]) is None

    # Deleting the agent deletes its sessions, and their flags with them.
    assert (await client.delete(f"/agents/{ex.agent_id}")).status_code == 204
    assert (await client.get("/flags")).json() == []


async def test_flags_are_not_definitions(client: httpx.AsyncClient, runtime: Runtime) -> None:
    ex = await exchange(client, runtime)
    revision = await runtime.store.definitions_revision()
    made = await flag(client, ex, "wrong tone")
    assert (await client.delete(f"/flags/{made['id']}")).status_code == 204
    # No audit entry, and the agents' snapshots need no reload.
    assert await runtime.store.list_audit(kind="flags") == []
    assert await runtime.store.definitions_revision() == revision


async def test_the_spec_types_every_field_of_a_flag(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schema = spec["components"]["schemas"]["Flag"]
    assert set(schema["required"]) == set(schema["properties"]) == FLAG_FIELDS
    assert all(p.get("type") == "string" for p in schema["properties"].values())
    created = spec["paths"]["/flags"]["post"]["responses"]["201"]["content"]
    assert created["application/json"]["schema"] == {"$ref": "#/components/schemas/Flag"}
