"""``/sessions/{id}/events``: posting, long-poll reads and filters."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from api_scenario import answering_agent, new_session, refusal

from tactful.bus.memory import MemoryBus
from tactful.runtime import Runtime

REFUND_QUESTION = "I want to ask about a refund for my order"


async def read_turn(client: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    """Every event up to the agent's ``ready`` status, read with long-polls (no sleeps)."""
    seen: list[dict[str, Any]] = []
    while not any(e["kind"] == "status" and e["data"]["status"] == "ready" for e in seen):
        offset = seen[-1]["offset"] + 1 if seen else 0
        response = await client.get(
            f"/sessions/{session_id}/events", params={"min_offset": offset, "wait_for_data": 10}
        )
        assert response.status_code == 200, response.text
        seen += response.json()
    return seen


async def test_a_customer_message_runs_a_turn(client: httpx.AsyncClient, runtime: Runtime) -> None:
    scenario = await answering_agent(client, runtime)
    session_id = await new_session(client, scenario.agent_id)
    posted = await client.post(
        f"/sessions/{session_id}/events",
        json={"kind": "message", "source": "customer", "message": REFUND_QUESTION},
    )
    assert posted.status_code == 201, posted.text
    message = posted.json()
    assert message["offset"] == 0
    assert message["kind"] == "message"
    assert message["source"] == "customer"
    assert message["data"]["message"] == REFUND_QUESTION
    assert message["data"]["participant"] == {"id": "guest", "display_name": "Guest"}
    assert message["deleted"] is False

    events = await read_turn(client, session_id)
    shape = [(e["offset"], e["source"], e["kind"], (e["data"] or {}).get("status")) for e in events]
    assert shape == [
        (0, "customer", "message", None),
        (1, "ai_agent", "status", "acknowledged"),
        (2, "ai_agent", "status", "processing"),
        (3, "ai_agent", "status", "typing"),
        (4, "ai_agent", "message", None),
        (5, "ai_agent", "status", "ready"),
    ]
    reply = events[4]
    assert reply["data"]["message"] == "Refunds take five business days, from Support."
    assert reply["data"]["canned_responses"] == [scenario.canned_response_id]
    assert reply["trace_id"] != ""
    assert reply["correlation_id"] == reply["trace_id"]
    assert {e["trace_id"] for e in events} == {reply["trace_id"]}


async def test_long_poll_times_out_with_504(client: httpx.AsyncClient, runtime: Runtime) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    session_id = await new_session(client, agent["id"])
    response = await client.get(
        f"/sessions/{session_id}/events", params={"min_offset": 0, "wait_for_data": 0.05}
    )
    assert response.status_code == 504
    assert response.json() == {"detail": "no matching event from offset 0 within 0.05 s; ask again"}
    assert isinstance(runtime.bus, MemoryBus)
    assert runtime.bus.listener_count == 0


async def test_wait_for_data_zero_answers_at_once(client: httpx.AsyncClient) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    session_id = await new_session(client, agent["id"])
    response = await client.get(f"/sessions/{session_id}/events", params={"wait_for_data": 0})
    assert response.status_code == 200
    assert response.json() == []


async def test_long_poll_wakes_when_an_event_is_appended(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    session_id = await new_session(client, agent["id"])
    bus = runtime.bus
    assert isinstance(bus, MemoryBus)
    waiting = asyncio.create_task(
        client.get(f"/sessions/{session_id}/events", params={"min_offset": 0, "wait_for_data": 30})
    )
    # Append only once the request is really waiting on the bus.
    for _ in range(10_000):
        if bus.listener_count:
            break
        await asyncio.sleep(0)
    assert bus.listener_count == 1
    assert not waiting.done()
    appended = await client.post(
        f"/sessions/{session_id}/events",
        json={"kind": "custom", "source": "system", "data": {"hello": "world"}},
    )
    response = await asyncio.wait_for(waiting, 5)
    assert response.status_code == 200
    assert response.json() == [appended.json()]


async def test_filters(client: httpx.AsyncClient, runtime: Runtime) -> None:
    scenario = await answering_agent(client, runtime)
    session_id = await new_session(client, scenario.agent_id)
    await client.post(
        f"/sessions/{session_id}/events",
        json={"kind": "message", "source": "customer", "message": REFUND_QUESTION},
    )
    await runtime.engine.wait_idle()
    url = f"/sessions/{session_id}/events"

    async def offsets(**params: Any) -> list[int]:
        response = await client.get(url, params={"wait_for_data": 0, **params})
        assert response.status_code == 200, response.text
        return [e["offset"] for e in response.json()]

    trace_id = (await client.get(url, params={"wait_for_data": 0})).json()[1]["trace_id"]
    assert await offsets() == [0, 1, 2, 3, 4, 5]
    assert await offsets(min_offset=3) == [3, 4, 5]
    assert await offsets(kinds="message") == [0, 4]
    assert await offsets(kinds="message,status") == [0, 1, 2, 3, 4, 5]
    assert await offsets(kinds="status", min_offset=4) == [5]
    assert await offsets(source="customer") == [0]
    assert await offsets(source="ai_agent", kinds="message") == [4]
    assert await offsets(trace_id=trace_id) == [0, 1, 2, 3, 4, 5]
    assert await offsets(correlation_id=trace_id) == [0, 1, 2, 3, 4, 5]
    assert await offsets(trace_id="other") == []

    bad_kind = await client.get(url, params={"kinds": "message,poem", "wait_for_data": 0})
    assert bad_kind.status_code == 422
    assert "poem" in refusal(bad_kind)
    bad_source = await client.get(url, params={"source": "robot", "wait_for_data": 0})
    assert bad_source.status_code == 422
    both = await client.get(url, params={"trace_id": "a", "correlation_id": "b"})
    assert both.status_code == 422
    assert (await client.get(url, params={"min_offset": -1})).status_code == 422


async def test_staff_messages_and_custom_events_start_no_turn(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    agent = (await client.post("/agents", json={"name": "Ava"})).json()
    session_id = await new_session(client, agent["id"])
    url = f"/sessions/{session_id}/events"
    human = await client.post(
        url,
        json={
            "kind": "message",
            "source": "human_agent",
            "message": "Hi, Sam here",
            "participant": {"id": "sam", "display_name": "Sam"},
        },
    )
    assert human.status_code == 201
    assert human.json()["data"] == {
        "message": "Hi, Sam here",
        "participant": {"id": "sam", "display_name": "Sam"},
    }
    on_behalf = await client.post(
        url,
        json={"kind": "message", "source": "human_agent_on_behalf_of_ai_agent", "message": "Hi"},
    )
    assert on_behalf.json()["data"]["participant"] == {"id": agent["id"], "display_name": "Ava"}
    custom = await client.post(
        url, json={"kind": "custom", "source": "system", "data": [1, 2], "metadata": {"k": "v"}}
    )
    assert custom.json()["data"] == [1, 2]
    assert custom.json()["metadata"] == {"k": "v"}
    status = await client.post(
        url, json={"kind": "status", "source": "ai_agent", "status": "typing", "data": {"x": 1}}
    )
    assert status.status_code == 201
    assert status.json()["data"] == {"status": "typing", "data": {"x": 1}}
    await runtime.engine.wait_idle()
    events = (await client.get(url, params={"wait_for_data": 0})).json()
    assert [e["offset"] for e in events] == [0, 1, 2, 3]


async def test_invalid_combinations_are_422(client: httpx.AsyncClient, runtime: Runtime) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    session_id = await new_session(client, agent["id"])
    url = f"/sessions/{session_id}/events"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kind": "message", "source": "customer"}, "non-empty 'message'"),
        ({"kind": "message", "source": "customer", "message": "  "}, "non-empty 'message'"),
        (
            {"kind": "message", "source": "ai_agent", "message": "Hi"},
            "the agent writes its own message",
        ),
        ({"kind": "message", "source": "system", "message": "x"}, "a message's source"),
        ({"kind": "message", "source": "human_agent", "message": "x"}, "'participant'"),
        ({"kind": "custom", "source": "system"}, "needs 'data'"),
        ({"kind": "custom", "source": "system", "data": 1, "message": "x"}, "apply only"),
        ({"kind": "status", "source": "ai_agent"}, "needs 'status'"),
        ({"kind": "status", "source": "ai_agent", "status": "cancelled"}, "not supported yet"),
        ({"kind": "status", "source": "ai_agent", "status": "ready", "data": 3}, "JSON object"),
        ({"kind": "tool", "source": "ai_agent", "data": {}}, "written by the engine"),
        (
            {
                "kind": "message",
                "source": "customer",
                "message": "x",
                "guidelines": [{"action": "a"}],
            },
            "'guidelines'",
        ),
    ]
    for body, fragment in cases:
        response = await client.post(url, json=body)
        assert response.status_code == 422, body
        assert fragment in refusal(response), (body, response.json())
    assert await runtime.store.list_events(session_id) == []
    unknown_kind = await client.post(url, json={"kind": "poem", "source": "customer"})
    assert unknown_kind.status_code == 422
    assert isinstance(unknown_kind.json()["detail"], list)


async def test_too_long_message_is_413(client: httpx.AsyncClient, runtime: Runtime) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    session_id = await new_session(client, agent["id"])
    limit = runtime.settings.max_message_chars
    for source, extra in (
        ("customer", {}),
        ("human_agent", {"participant": {"display_name": "Sam"}}),
    ):
        response = await client.post(
            f"/sessions/{session_id}/events",
            json={"kind": "message", "source": source, "message": "a" * (limit + 1), **extra},
        )
        assert response.status_code == 413
        assert response.json() == {
            "detail": f"the message has {limit + 1} characters; the limit is {limit}"
        }
    assert await runtime.store.list_events(session_id) == []


async def test_unknown_session_is_404(client: httpx.AsyncClient) -> None:
    body = {"kind": "message", "source": "customer", "message": "hi"}
    posted = await client.post("/sessions/ghost/events", json=body)
    assert posted.status_code == 404
    assert posted.json() == {"detail": "Session 'ghost' was not found"}
    listed = await client.get("/sessions/ghost/events", params={"wait_for_data": 5})
    assert listed.status_code == 404
    assert (
        await client.delete("/sessions/ghost/events", params={"min_offset": 0})
    ).status_code == 404


async def test_manual_mode_appends_without_a_turn(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    session_id = await new_session(client, agent["id"])
    await client.patch(f"/sessions/{session_id}", json={"mode": "manual"})
    await client.post(
        f"/sessions/{session_id}/events",
        json={"kind": "message", "source": "customer", "message": "anyone?"},
    )
    await runtime.engine.wait_idle()
    events = await runtime.store.list_events(session_id)
    # The handoff step, then the message: no acknowledgement, no turn.
    assert [e.kind.value for e in events] == ["custom", "message"]
    assert events[0].data["handoff"] == "requested"


async def test_read_and_delete_events(client: httpx.AsyncClient, runtime: Runtime) -> None:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    session_id = await new_session(client, agent["id"])
    url = f"/sessions/{session_id}/events"
    created = []
    for i in range(3):
        response = await client.post(url, json={"kind": "custom", "source": "system", "data": i})
        created.append(response.json())
    one = await client.get(f"{url}/{created[1]['id']}", params={"wait_for_completion": "true"})
    assert one.json() == created[1]
    missing = await client.get(f"{url}/ghost")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Event 'ghost' was not found"}

    assert (await client.delete(url, params={"min_offset": 1})).status_code == 204
    remaining = (await client.get(url, params={"wait_for_data": 0})).json()
    assert remaining == [created[0]]
    deleted = (await client.get(f"{url}/{created[2]['id']}")).json()
    assert deleted["deleted"] is True
    assert (await client.delete(url)).status_code == 422


async def test_long_poll_is_capped_by_the_settings(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.settings.long_poll_max_s = 0.05
    agent = (await client.post("/agents", json={"name": "A"})).json()
    session_id = await new_session(client, agent["id"])
    response = await asyncio.wait_for(
        client.get(f"/sessions/{session_id}/events", params={"wait_for_data": 600}), 5
    )
    assert response.status_code == 504
    assert "within 0.05 s" in response.json()["detail"]
