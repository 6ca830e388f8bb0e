"""The client against a scripted transport: shapes, long-poll, and errors a user can act on."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tactful.client import ClientError, TactfulClient, TraceInfo, UnreachableError
from tactful.errors import TactfulError

Handler = Callable[[httpx.Request], httpx.Response]


def event(offset: int, kind: str, source: str, data: Any, trace_id: str = "") -> dict[str, Any]:
    return {
        "id": f"e{offset}",
        "offset": offset,
        "kind": kind,
        "source": source,
        "trace_id": trace_id,
        "correlation_id": trace_id,
        "data": data,
        "metadata": {},
        "deleted": False,
        "creation_utc": "2025-01-01T00:00:00Z",
    }


def client_for(handler: Handler) -> TactfulClient:
    return TactfulClient("http://tactful.test/", transport=httpx.MockTransport(handler))


async def test_endpoints_parse_into_typed_models() -> None:
    seen: list[tuple[str, str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.method, request.url.path, body))
        match request.method, request.url.path:
            case "GET", "/healthz":
                return httpx.Response(200, json={"status": "ok", "tier": "offline"})
            case "GET", "/agents":
                return httpx.Response(200, json=[{"id": "a1", "name": "Shopbot", "extra": 1}])
            case "POST", "/sessions":
                return httpx.Response(201, json={"id": "s1", "agent_id": "a1", "customer_id": "g"})
            case "POST", "/sessions/s1/events":
                return httpx.Response(201, json=event(0, "message", "customer", {"message": "hi"}))
            case "GET", "/traces/t1":
                return httpx.Response(
                    200,
                    json={
                        "id": "t1",
                        "session_id": "s1",
                        "agent_id": "a1",
                        "matches": [
                            {
                                "guideline_id": "g1",
                                "condition": "c1",
                                "applies": True,
                                "score": 0.9,
                            },
                            {"guideline_id": "g2", "condition": "c2", "applies": False},
                        ],
                        "composition": {"method": "canned", "canned_response_id": "r1"},
                        "stage_timings_ms": {"match": 1.5},
                        "model_calls": [],
                        "candidates": [],
                    },
                )
        return httpx.Response(404, json={"detail": "no route"})

    async with client_for(handler) as client:
        assert client.base_url == "http://tactful.test"
        health = await client.health()
        assert (health.status, health.tier) == ("ok", "offline")
        agents = await client.list_agents()
        assert [(a.id, a.name) for a in agents] == [("a1", "Shopbot")]
        session = await client.create_session("a1", title="t")
        assert session.id == "s1"
        posted = await client.post_message("s1", "hi")
        assert posted.offset == 0 and posted.message == "hi"
        trace = await client.get_trace("t1")
        assert [m.guideline_id for m in trace.matched] == ["g1"]
        assert trace.composition.canned_response_id == "r1"
    assert ("POST", "/sessions", {"agent_id": "a1", "title": "t"}) in seen
    assert (
        "POST",
        "/sessions/s1/events",
        {"kind": "message", "source": "customer", "message": "hi"},
    ) in seen


async def test_wait_events_sends_the_long_poll_query_and_maps_504_to_nothing() -> None:
    queries: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        queries.append(dict(request.url.params))
        if len(queries) == 1:
            return httpx.Response(504, json={"detail": "no events in time"})
        return httpx.Response(200, json=[event(3, "status", "ai_agent", {"status": "ready"})])

    async with client_for(handler) as client:
        assert await client.wait_events("s1", 3, ["message", "status"], wait_for_data=2) == []
        events = await client.wait_events("s1", 3, wait_for_data=0)
    assert queries[0] == {"min_offset": "3", "kinds": "message,status", "wait_for_data": "2"}
    assert "kinds" not in queries[1]
    assert events[0].status == "ready"


async def test_send_waits_for_the_ready_status_of_the_turn() -> None:
    timeline = [
        event(0, "message", "customer", {"message": "hi"}),
        event(1, "status", "ai_agent", {"status": "acknowledged", "data": {}}, "t1"),
        event(2, "status", "ai_agent", {"status": "processing", "data": {}}, "t1"),
        event(3, "message", "ai_agent", {"message": "Hello!", "guidelines": ["g1"]}, "t1"),
        event(4, "status", "ai_agent", {"status": "ready", "data": {}}, "t1"),
    ]
    polls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(201, json=timeline[0])
        offset = int(request.url.params["min_offset"])
        polls.append(offset)
        # Deliver one event per poll, as a server would when they come one by one.
        return httpx.Response(200, json=[e for e in timeline if e["offset"] == offset])

    async with client_for(handler) as client:
        turn = await client.send("s1", "hi", timeout=5)
    assert turn.text == "Hello!"
    assert turn.trace_id == "t1"
    assert turn.replies[0].guideline_ids == ["g1"]
    assert turn.error is None
    assert polls == [1, 2, 3, 4]


async def test_send_reports_a_failed_turn() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(201, json=event(0, "message", "customer", {"message": "hi"}))
        return httpx.Response(
            200,
            json=[
                event(1, "status", "ai_agent", {"status": "error", "data": {"exception": "boom"}}),
                event(2, "status", "ai_agent", {"status": "ready", "data": {}}, "t9"),
            ],
        )

    async with client_for(handler) as client:
        turn = await client.send("s1", "hi")
    assert (turn.replies, turn.error, turn.trace_id) == ([], "boom", "t9")


async def test_get_trace_can_wait_for_a_trace_not_stored_yet() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            return httpx.Response(404, json={"detail": "Trace 't1' was not found"})
        return httpx.Response(200, json={"id": "t1", "session_id": "s1", "agent_id": "a1"})

    async with client_for(handler) as client:
        assert (await client.get_trace("t1", wait=2)).id == "t1"
    assert calls == 3


async def test_server_detail_is_the_error_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/sessions":
            return httpx.Response(
                422,
                json={"detail": [{"loc": ["body", "agent_id"], "msg": "Field required"}]},
            )
        return httpx.Response(404, json={"detail": "agent 'nope' was not found"})

    async with client_for(handler) as client:
        with pytest.raises(ClientError) as raised:
            await client.get_trace("nope")
        assert isinstance(raised.value, TactfulError)
        assert raised.value.status_code == 404
        assert raised.value.detail == "agent 'nope' was not found"
        assert str(raised.value) == "GET /traces/nope failed (404): agent 'nope' was not found"
        with pytest.raises(ClientError, match=r"\(422\): agent_id: Field required"):
            await client.create_session("a1")


async def test_answers_that_are_not_tactful_are_clear_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/healthz":
            return httpx.Response(200, text="<html>hello</html>")
        return httpx.Response(200, json={"unexpected": True})

    async with client_for(handler) as client:
        with pytest.raises(ClientError, match="not JSON"):
            await client.health()
        with pytest.raises(ClientError, match="unexpected answer to GET /agents"):
            await client.list_agents()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_unreachable_server_says_where_it_looked() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    async with TactfulClient(url, timeout=5) as client:
        with pytest.raises(UnreachableError) as raised:
            await client.health()
    assert str(raised.value).startswith(f"cannot reach tactful at {url}: ")
    assert raised.value.url == url


def test_a_traces_cost_line_adds_the_dollars_of_priced_calls() -> None:
    calls = [
        {"stage": "match", "model": "m", "prompt_tokens": 1200, "cost_usd": 0.00125},
        {"stage": "compose", "model": "m", "prompt_tokens": 300, "cost_usd": None},
    ]
    trace = TraceInfo.model_validate(
        {
            "id": "t",
            "session_id": "s",
            "agent_id": "a",
            "model_calls": calls,
            "stage_timings_ms": {"match": 40.0, "compose": 2.0},
        }
    )
    assert trace.cost() == "2 model calls, 1,500 prompt tokens, $0.001250, 42 ms"
    unpriced = TraceInfo.model_validate(
        {"id": "t", "session_id": "s", "agent_id": "a", "model_calls": calls[1:]}
    )
    assert unpriced.cost() == "1 model call, 300 prompt tokens, 0 ms"
