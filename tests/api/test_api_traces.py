"""Traces: why the agent said what it said, readable after a turn."""

from __future__ import annotations

import httpx
from api_scenario import answering_agent, new_session

from tactful.runtime import Runtime


async def test_trace_of_a_turn(client: httpx.AsyncClient, runtime: Runtime) -> None:
    scenario = await answering_agent(client, runtime)
    session_id = await new_session(client, scenario.agent_id)
    assert (await client.get(f"/sessions/{session_id}/traces")).json() == []
    await client.post(
        f"/sessions/{session_id}/events",
        json={"kind": "message", "source": "customer", "message": "how long does a refund take"},
    )
    await runtime.engine.wait_idle()
    events = (
        await client.get(f"/sessions/{session_id}/events", params={"kinds": "message"})
    ).json()
    reply = events[-1]
    assert reply["source"] == "ai_agent"

    traces = (await client.get(f"/sessions/{session_id}/traces")).json()
    assert [t["id"] for t in traces] == [reply["trace_id"]]
    trace = (await client.get(f"/traces/{reply['trace_id']}")).json()
    assert trace == traces[0]
    assert trace["session_id"] == session_id
    assert trace["agent_id"] == scenario.agent_id
    assert trace["tier"] == "offline"
    assert trace["status"] == "done"
    assert trace["message_event_id"] == reply["id"]
    [candidate] = trace["candidates"]
    assert candidate["guideline_id"] == scenario.guideline_id
    assert candidate["score"] > 0
    [match] = [m for m in trace["matches"] if m["applies"]]
    assert match["guideline_id"] == scenario.guideline_id
    assert "offline" in match["rationale"]
    assert trace["composition"]["canned_response_id"] == scenario.canned_response_id
    assert set(trace["stage_timings_ms"]) >= {"context", "retrieve", "match", "compose"}
    assert trace["model_calls"] == []


async def test_unknown_trace_or_session_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/traces/ghost")).json() == {"detail": "Trace 'ghost' was not found"}
    assert (await client.get("/sessions/ghost/traces")).status_code == 404


async def test_traces_go_with_their_session(client: httpx.AsyncClient, runtime: Runtime) -> None:
    scenario = await answering_agent(client, runtime)
    session_id = await new_session(client, scenario.agent_id)
    await client.post(
        f"/sessions/{session_id}/events",
        json={"kind": "message", "source": "customer", "message": "refund please"},
    )
    await runtime.engine.wait_idle()
    [trace] = (await client.get(f"/sessions/{session_id}/traces")).json()
    assert (await client.delete(f"/sessions/{session_id}")).status_code == 204
    assert (await client.get(f"/traces/{trace['id']}")).status_code == 404
