"""A session that holds text an older version stored (a lone surrogate, written before the edge
refused it) still reads: plain GET, long-poll and SSE, on both backends."""

from __future__ import annotations

import json

import httpx
from api_scenario import new_session
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tactful.domain import Customer, EventKind, EventSource
from tactful.runtime import Runtime


async def write_raw_json(runtime: Runtime, table: str, id: str, raw: str) -> None:
    """Overwrite a row's ``data`` with JSON text, as an older version could have written it."""
    store = runtime.store
    cast = "CAST(CAST(:raw AS TEXT) AS JSON)" if store.backend == "postgresql" else ":raw"
    async with store.transaction() as conn:
        assert isinstance(conn, AsyncConnection)
        await conn.execute(
            text(f"UPDATE {table} SET data = {cast} WHERE id = :id"), {"raw": raw, "id": id}
        )


async def session_with_bad_message(client: httpx.AsyncClient, runtime: Runtime) -> str:
    agent = (await client.post("/agents", json={"name": "A"})).json()
    session_id = await new_session(client, agent["id"])
    event = await runtime.store.append_event(
        session_id, kind=EventKind.MESSAGE, source=EventSource.CUSTOMER, data={"message": "hi"}
    )
    await write_raw_json(runtime, "events", event.id, '{"message": "hello \\ud800 there"}')
    return session_id


async def test_a_stored_lone_surrogate_reads_over_get_and_long_poll(
    backend_client: httpx.AsyncClient, backend_runtime: Runtime
) -> None:
    session_id = await session_with_bad_message(backend_client, backend_runtime)
    url = f"/sessions/{session_id}/events"
    for wait in (0, 5):  # an immediate answer, and the long-poll path
        response = await backend_client.get(url, params={"wait_for_data": wait})
        assert response.status_code == 200, response.text
        [event] = response.json()
        assert event["data"]["message"] == "hello \ufffd there"
    one = await backend_client.get(f"{url}/{event['id']}")
    assert one.status_code == 200 and one.json()["data"]["message"] == "hello \ufffd there"


async def test_a_stored_lone_surrogate_reads_over_sse(
    backend_server_url: str, backend_runtime: Runtime
) -> None:
    async with httpx.AsyncClient(base_url=backend_server_url, timeout=10) as client:
        session_id = await session_with_bad_message(client, backend_runtime)
        params = {"sse": "true", "wait_for_data": 0.5}
        async with client.stream("GET", f"/sessions/{session_id}/events", params=params) as s:
            assert s.status_code == 200
            lines = [line async for line in s.aiter_lines() if line.startswith("data: ")]
    [event] = [json.loads(line[len("data: ") :]) for line in lines]
    assert event["data"]["message"] == "hello \ufffd there"


async def test_a_stored_lone_surrogate_in_a_customer_reads(
    backend_client: httpx.AsyncClient, backend_runtime: Runtime
) -> None:
    created = await backend_client.post("/customers", json={"name": "Ada"})
    ada = await backend_runtime.store.get(Customer, created.json()["id"])
    raw = ada.model_dump_json().replace('"Ada"', '"Ada \\udc00"')
    await write_raw_json(backend_runtime, "customers", ada.id, raw)
    read = await backend_client.get(f"/customers/{ada.id}")
    assert read.status_code == 200, read.text
    assert read.json()["name"] == "Ada \ufffd"
    listed = await backend_client.get("/customers")
    assert [c["name"] for c in listed.json()] == ["Ada \ufffd"]
