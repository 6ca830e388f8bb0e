"""Input at the edge (``tactful.api.input``): lone surrogates, NUL, undecodable bodies and
out-of-range numbers are refused with FastAPI's 422 shape before any route runs."""

from __future__ import annotations

from typing import Any

import httpx
from api_scenario import new_session

from tactful.domain import Customer, Guideline, Session
from tactful.runtime import Runtime

JSON = {"content-type": "application/json"}
# A lone high surrogate, as a JSON escape: Python's json (and FastAPI) turn it into a str that
# cannot be encoded as UTF-8.
LONE = "\\ud800"


def problems(response: httpx.Response) -> list[dict[str, Any]]:
    """The 422 body's items, checked against the shape the spec declares."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    for item in detail:
        assert isinstance(item["loc"], list)
        assert isinstance(item["msg"], str) and isinstance(item["type"], str)
    return detail


async def agent_id(client: httpx.AsyncClient) -> str:
    created = await client.post("/agents", json={"name": "A"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def test_a_lone_surrogate_in_a_customer_message_is_refused_and_not_stored(
    backend_client: httpx.AsyncClient, backend_runtime: Runtime
) -> None:
    client, runtime = backend_client, backend_runtime
    session_id = await new_session(client, await agent_id(client))
    body = f'{{"kind": "message", "source": "customer", "message": "hello {LONE}"}}'
    response = await client.post(f"/sessions/{session_id}/events", content=body, headers=JSON)
    [problem] = problems(response)
    assert problem["loc"] == ["body", "message"]
    assert "surrogate" in problem["msg"]
    assert await runtime.store.list_events(session_id) == []
    # The timeline still reads.
    listed = await client.get(f"/sessions/{session_id}/events", params={"wait_for_data": 0})
    assert listed.status_code == 200 and listed.json() == []


async def test_a_lone_surrogate_in_a_name_title_or_condition_is_refused(
    backend_client: httpx.AsyncClient, backend_runtime: Runtime
) -> None:
    client, runtime = backend_client, backend_runtime
    agent = await agent_id(client)
    customer = await client.post("/customers", content=f'{{"name": "Ada{LONE}"}}', headers=JSON)
    assert problems(customer)[0]["loc"] == ["body", "name"]
    session = await client.post(
        "/sessions", content=f'{{"agent_id": "{agent}", "title": "x{LONE}"}}', headers=JSON
    )
    assert problems(session)[0]["loc"] == ["body", "title"]
    guideline = await client.post(
        "/guidelines", content=f'{{"condition": "the customer {LONE} asks"}}', headers=JSON
    )
    assert problems(guideline)[0]["loc"] == ["body", "condition"]
    assert await runtime.store.list(Customer) == []
    assert await runtime.store.list(Session) == []
    assert await runtime.store.list(Guideline) == []


async def test_bad_text_is_found_at_any_depth_and_in_keys(client: httpx.AsyncClient) -> None:
    session_id = await new_session(client, await agent_id(client))
    nested = f'{{"kind": "custom", "source": "customer", "data": {{"a": [1, {{"b": "{LONE}"}}]}}}}'
    response = await client.post(f"/sessions/{session_id}/events", content=nested, headers=JSON)
    assert problems(response)[0]["loc"] == ["body", "data", "a", 1, "b"]
    in_key = '{"name": "Ada", "metadata": {"ti\\u0000er": "gold"}}'
    response = await client.post("/customers", content=in_key, headers=JSON)
    [problem] = problems(response)
    assert problem["loc"] == ["body", "metadata", "ti\\u0000er"]
    assert "NUL" in problem["msg"]


async def test_a_valid_surrogate_pair_is_text_like_any_other(client: httpx.AsyncClient) -> None:
    # "\ud83d\ude00" is one emoji, written as a JSON escape pair.
    created = await client.post(
        "/customers", content='{"name": "Ada \\ud83d\\ude00"}', headers=JSON
    )
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Ada \U0001f600"


async def test_nul_in_a_name_an_id_or_a_tag_is_refused_on_every_backend(
    backend_client: httpx.AsyncClient, backend_runtime: Runtime
) -> None:
    client, runtime = backend_client, backend_runtime
    name = await client.post("/customers", json={"name": "Ada\x00"})
    assert problems(name)[0]["loc"] == ["body", "name"]
    id_ = await client.post("/customers", json={"name": "Ada", "id": "a\x00b"})
    assert problems(id_)[0]["loc"] == ["body", "id"]
    tag = await client.post("/tags", json={"name": "vip\x00"})
    assert problems(tag)[0]["loc"] == ["body", "name"]
    read = await client.get("/customers/a%00b")
    assert problems(read)[0]["loc"] == ["path"]
    assert await runtime.store.list(Customer) == []
    # Lookups by such an id reach the store from the SDK too: they find nothing.
    assert await runtime.store.find(Customer, "a\x00b") is None


async def test_nul_in_the_path_or_the_query_is_refused(client: httpx.AsyncClient) -> None:
    path = await client.get("/customers/a%00b")
    assert problems(path)[0]["loc"] == ["path"]
    query = await client.get("/tags", params={"name": "a\x00b"})
    assert problems(query)[0]["loc"] == ["query", "name"]
    # Percent-encoded bytes that are not UTF-8 (here a surrogate's bytes) are refused too.
    raw = await client.get("/tags?name=%ED%A0%80")
    assert problems(raw)[0]["loc"] == ["query", "name"]


async def test_a_body_that_is_not_utf8_is_a_422_not_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/agents", content=b'{"name": "\xff\xfe"}', headers=JSON)
    [problem] = problems(response)
    assert problem["loc"] == ["body"]


async def test_invalid_json_keeps_fastapis_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/agents", content=b'{"name": ', headers=JSON)
    assert problems(response)[0]["type"] == "json_invalid"


async def test_huge_offsets_are_a_422_on_get_and_delete(backend_client: httpx.AsyncClient) -> None:
    client = backend_client
    session_id = await new_session(client, await agent_id(client))
    url = f"/sessions/{session_id}/events"
    for offset in (2**31, 2**63):
        got = await client.get(url, params={"min_offset": offset, "wait_for_data": 0})
        assert problems(got)[0]["loc"] == ["query", "min_offset"]
        deleted = await client.delete(url, params={"min_offset": offset})
        assert problems(deleted)[0]["loc"] == ["query", "min_offset"]
    largest = await client.get(url, params={"min_offset": 2**31 - 1, "wait_for_data": 0})
    assert largest.status_code == 200 and largest.json() == []


async def test_waits_must_be_finite(client: httpx.AsyncClient) -> None:
    session_id = await new_session(client, await agent_id(client))
    for wait in ("nan", "inf", "-1"):
        response = await client.get(
            f"/sessions/{session_id}/events", params={"wait_for_data": wait}
        )
        assert problems(response)[0]["loc"] == ["query", "wait_for_data"]


async def test_body_numbers_are_strict_and_bounded(client: httpx.AsyncClient) -> None:
    boolean = await client.post("/agents", json={"name": "A", "preamble_after_ms": False})
    assert problems(boolean)[0]["loc"] == ["body", "preamble_after_ms"]
    created = await client.post("/guidelines", json={"condition": "c", "priority": 2**31})
    assert problems(created)[0]["loc"] == ["body", "priority"]
    created = await client.post("/guidelines", json={"condition": "c", "priority": True})
    assert problems(created)[0]["loc"] == ["body", "priority"]
    flag = await client.post("/guidelines", json={"condition": "c", "about_reply": 0})
    assert problems(flag)[0]["loc"] == ["body", "about_reply"]
    fine = await client.post("/guidelines", json={"condition": "c", "priority": 2**31 - 1})
    assert fine.status_code == 201, fine.text


async def test_our_own_validation_errors_have_the_declared_shape(
    client: httpx.AsyncClient,
) -> None:
    cursor = await client.get("/sessions", params={"limit": 5, "cursor": "!!"})
    [problem] = problems(cursor)
    assert problem["loc"] == ["query", "cursor"]
    assert "cursor" in problem["msg"]
    session_id = await new_session(client, await agent_id(client))
    kinds = await client.get(
        f"/sessions/{session_id}/events", params={"kinds": "nope", "wait_for_data": 0}
    )
    assert problems(kinds)[0]["loc"] == ["query", "kinds"]


async def test_an_echoed_input_is_truncated(client: httpx.AsyncClient) -> None:
    response = await client.post("/customers", json={"name": "x" * 10_000})
    [problem] = problems(response)
    assert problem["loc"] == ["body", "name"]
    assert len(problem["input"]) < 300
    assert problem["input"].startswith("xxxx")
