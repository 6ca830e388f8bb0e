"""Several ``tactful serve`` processes on one database, as an operator starts them: on
PostgreSQL a client of any process sees what any other did, at once; a SQLite file serves one
process and refuses a second with a message that says what to do."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cli_process import SHOP_AGENT, Served, free_port, run, start_serve
from sqlalchemy.engine import make_url

POSTGRES_ENV = "TACTFUL_TEST_POSTGRES_URL"
WAIT_S = 30
# Far less than the wait: an answer this fast was pushed, not found when the wait ran out.
PROMPTLY_S = 10


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database (dropped afterwards), or a skip saying what is missing."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(
            f"no PostgreSQL server given: set {POSTGRES_ENV}, e.g. "
            "postgresql://postgres@127.0.0.1:5432/test"
        )
    name = f"t_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture
def two_on_postgres(pg_database: str, tmp_path: Path) -> Iterator[tuple[Served, Served]]:
    env = {"TACTFUL_DATABASE_URL": pg_database}
    a = start_serve(["--agent", str(SHOP_AGENT)], tmp_path, extra_env=env)
    try:
        b = start_serve(["--agent", str(SHOP_AGENT)], tmp_path, extra_env=env)
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


def new_session(served: Served) -> str:
    created = httpx.post(f"{served.url}/sessions", json={"agent_id": "shopbot"}, timeout=10)
    assert created.status_code == 201, created.text
    session_id: str = created.json()["id"]
    return session_id


def post_message(served: Served, session_id: str, text: str) -> dict[str, Any]:
    posted = httpx.post(
        f"{served.url}/sessions/{session_id}/events",
        json={"kind": "message", "source": "customer", "message": text},
        timeout=10,
    )
    assert posted.status_code == 201, posted.text
    event: dict[str, Any] = posted.json()
    return event


@pytest.mark.postgres
def test_a_long_poll_on_one_process_wakes_for_a_reply_made_by_another(
    two_on_postgres: tuple[Served, Served],
) -> None:
    a, b = two_on_postgres

    async def scenario() -> tuple[httpx.Response, float]:
        session_id = new_session(a)
        async with httpx.AsyncClient(timeout=WAIT_S + 10) as client:
            poll = asyncio.create_task(
                client.get(
                    f"{b.url}/sessions/{session_id}/events",
                    params={"source": "ai_agent", "kinds": "message", "wait_for_data": WAIT_S},
                )
            )
            await asyncio.sleep(0.5)  # B's request is waiting by now
            assert not poll.done()
            posted_at = time.monotonic()
            await client.post(
                f"{a.url}/sessions/{session_id}/events",
                json={"kind": "message", "source": "customer", "message": "How do I return this?"},
            )
            answer = await poll
            return answer, time.monotonic() - posted_at

    answer, took = asyncio.run(scenario())
    assert answer.status_code == 200, answer.text
    [reply] = answer.json()
    assert reply["data"]["message"] == "You can return any item within 30 days for a full refund."
    assert took < PROMPTLY_S, f"B answered {took:.1f} s after the message was posted to A"


@pytest.mark.postgres
def test_sse_on_one_process_streams_the_turn_run_by_another(
    two_on_postgres: tuple[Served, Served],
) -> None:
    a, b = two_on_postgres
    session_id = new_session(a)

    async def scenario() -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = []
        async with (
            httpx.AsyncClient(timeout=WAIT_S + 10) as client,
            client.stream(
                "GET",
                f"{b.url}/sessions/{session_id}/events",
                params={"sse": "true", "wait_for_data": WAIT_S},
            ) as stream,
        ):
            assert stream.status_code == 200
            await asyncio.sleep(0.5)  # B's stream is waiting by now
            await client.post(
                f"{a.url}/sessions/{session_id}/events",
                json={"kind": "message", "source": "customer", "message": "How long is shipping?"},
            )

            async def until_ready() -> None:
                async for line in stream.aiter_lines():
                    if line.startswith("data: "):
                        received.append(json.loads(line[len("data: ") :]))
                        if received[-1]["kind"] == "status" and received[-1]["data"]["status"] in (
                            "ready",
                            "error",
                        ):
                            return

            await asyncio.wait_for(until_ready(), PROMPTLY_S)
        return received

    received = asyncio.run(scenario())
    assert [e["offset"] for e in received] == list(range(len(received)))
    assert received[0]["source"] == "customer"
    assert received[1]["data"]["status"] == "acknowledged"
    messages = [
        e["data"]["message"]
        for e in received
        if e["source"] == "ai_agent" and e["kind"] == "message"
    ]
    assert messages == ["Standard shipping takes 3 to 5 business days."]
    assert received[-1]["data"]["status"] == "ready"


def test_a_second_process_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_serve(["--data-dir", str(data), "--agent", str(SHOP_AGENT)], tmp_path)
    try:
        second = run(["serve", "--data-dir", str(data), "--port", str(free_port())], tmp_path)
        assert second.returncode == 1, second.stdout + second.stderr
        assert second.stderr.strip() == (
            f"the SQLite database {data / 'tactful.db'} is in use by another tactful process "
            f"(pid {first.process.pid}): SQLite serves one process at a time. Stop that "
            "process, give this one its own data folder (--data-dir), or run several "
            "processes on PostgreSQL (TACTFUL_DATABASE_URL=postgresql://...)"
        )
        assert "Traceback" not in second.stdout + second.stderr
        # Commands that only read or write a few rows still work beside the server.
        keys = run(["keys", "list", "--data-dir", str(data)], tmp_path)
        assert keys.returncode == 0, keys.stderr
        # The first one still serves, and answers.
        session_id = new_session(first)
        posted = post_message(first, session_id, "How do I return this?")
        answer = httpx.get(
            f"{first.url}/sessions/{session_id}/events",
            params={
                "min_offset": posted["offset"] + 1,
                "source": "ai_agent",
                "kinds": "message",
                "wait_for_data": 30,
            },
            timeout=40,
        )
        assert answer.status_code == 200
        assert answer.json()[0]["data"]["message"].startswith("You can return any item")
    finally:
        assert first.stop() == 0
    # Once the first has stopped, the file is free again.
    again = start_serve(["--data-dir", str(data)], tmp_path)
    again.stop()
