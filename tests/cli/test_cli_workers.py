"""Several server processes on one PostgreSQL database: a turn whose process was killed is
finished by another, simultaneous messages through two processes are each answered once, and
``tactful serve --workers N``."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_process import SHOP_AGENT, clean_env, free_port, run, start_serve
from test_cli_turn_recovery import (
    ORDER,
    SLOW_AGENT,
    check_answered_once,
    marks,
    post_order,
    wait_for_mark,
)

from fresh_databases import postgres_database

# Short leases: a worker's death is noticed within seconds (and a busy one still renews).
FAST_TAKEOVER = {"TACTFUL_TURN_LEASE_S": "5", "TACTFUL_TURN_RECOVERY_INTERVAL_S": "0.3"}


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the test's processes (dropped afterwards)."""
    loop = asyncio.new_event_loop()
    manager = postgres_database()
    try:
        url = loop.run_until_complete(manager.__aenter__())
        yield url
    finally:
        loop.run_until_complete(manager.__aexit__(None, None, None))
        loop.close()


def serve_on(database_url: str, tmp_path: Path, agent: Path, **env: str) -> Any:
    marks_env = {"SLOW_AGENT_MARKS": str(tmp_path / "marks")}
    return start_serve(
        ["--database-url", database_url, "--agent", str(agent)],
        tmp_path,
        extra_env=FAST_TAKEOVER | marks_env | env,
    )


def ended(events: list[dict[str, Any]], trace_id: str) -> bool:
    return any(
        e["kind"] == "status"
        and e["trace_id"] == trace_id
        and e["data"]["status"] in ("ready", "cancelled")
        for e in events
    )


def events_when_ended(url: str, session: str, trace_ids: list[str], timeout: float = 90) -> Any:
    """The session's events once every given turn ended (read again until then)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=30) as c:
        while True:
            events = c.get(
                f"/sessions/{session}/events", params={"wait_for_data": 0, "limit": 1000}
            ).json()
            if all(ended(events, t) for t in trace_ids):
                return events
            assert time.monotonic() < deadline, events
            time.sleep(0.2)


def test_a_turn_of_a_killed_worker_is_finished_by_another(
    database_url: str, tmp_path: Path
) -> None:
    a = serve_on(database_url, tmp_path, SLOW_AGENT, SLOW_TOOL_S="60")
    b = serve_on(database_url, tmp_path, SLOW_AGENT)
    try:
        session, trace_id = post_order(a.url)
        wait_for_mark(tmp_path, "order", a)
        a.process.kill()
        a.process.wait(10)
        # No restart: B takes the turn over once A's lease expired.
        check_answered_once(events_when_ended(b.url, session, [trace_id]))
        trace = httpx.get(f"{b.url}/traces/{trace_id}").json()
        assert (trace["status"], trace["attempt"]) == ("done", 2)
    finally:
        b.stop()
    # The call in flight when A died was not recorded: B made it again.
    assert marks(tmp_path, "order") == 2


def test_simultaneous_messages_through_two_workers_are_each_answered(
    database_url: str, tmp_path: Path
) -> None:
    a = serve_on(database_url, tmp_path, SHOP_AGENT)
    b = serve_on(database_url, tmp_path, SHOP_AGENT)
    try:
        with httpx.Client(base_url=a.url, timeout=30) as c:
            sessions = [
                c.post("/sessions", json={"agent_id": "shopbot"}).json()["id"] for _ in range(50)
            ]
        posted: dict[str, list[str]] = {s: [] for s in sessions}

        def post(url: str, session: str, text: str) -> None:
            body = {"kind": "message", "source": "customer", "message": text}
            response = httpx.post(f"{url}/sessions/{session}/events", json=body, timeout=30)
            assert response.status_code == 201, response.text
            posted[session].append(response.json()["trace_id"])

        threads = [
            threading.Thread(target=post, args=(url, s, text))
            for s in sessions
            for url, text in (
                (a.url, "How do I return this?"),
                (b.url, "How long does shipping take?"),
            )
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s in sessions:
            events = events_when_ended(a.url, s, posted[s])
            customer = [e for e in events if e["source"] == "customer"]
            replies = [e for e in events if e["kind"] == "message" and e["source"] == "ai_agent"]
            # No turn replied twice, and the last message was answered by its own turn.
            assert len({r["trace_id"] for r in replies}) == len(replies), events
            assert replies and replies[-1]["trace_id"] == customer[-1]["trace_id"], events
            for m in customer:
                assert ended(events, m["trace_id"]), events
    finally:
        a.stop()
        b.stop()


def test_serve_workers_on_postgresql(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    serve = ["serve", "--workers", "2", "--port", str(port), "--database-url", database_url]
    process = subprocess.Popen(
        [sys.executable, "-m", "tactful.cli.main", *serve, "--agent", str(SHOP_AGENT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=clean_env(),
        cwd=tmp_path,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)
        with httpx.Client(base_url=url, timeout=60) as c:
            session = c.post("/sessions", json={"agent_id": "shopbot"}).json()["id"]
            c.post(f"/sessions/{session}/events", json=ORDER | {"message": "How do I return this?"})
            reply = c.get(
                f"/sessions/{session}/events",
                params={"min_offset": 1, "kinds": "message", "wait_for_data": 30},
            ).json()
        assert "30 days" in reply[0]["data"]["message"]
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "2 workers serving" in output and "tactful stopped" in output


def test_workers_need_postgresql(tmp_path: Path) -> None:
    result = run(["serve", "--workers", "2", "--data-dir", str(tmp_path / "d")], tmp_path)
    assert result.returncode == 1
    assert "--workers needs PostgreSQL" in result.stderr
