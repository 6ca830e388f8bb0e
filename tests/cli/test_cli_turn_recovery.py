"""Turns survive their server: ``kill -9`` mid-turn, then a restart, answers the message once,
with its trace; SIGTERM lets the running turn finish, or hands it to the next start."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
from cli_process import DATA, Served, start_serve

SLOW_AGENT = DATA / "slow_agent.py"
ORDER = {"kind": "message", "source": "customer", "message": "please place my order"}
REPLY = "Your order ORD-1 is placed."


def serve(tmp_path: Path, **env: str) -> Served:
    data = ["--data-dir", str(tmp_path / "data"), "--agent", str(SLOW_AGENT)]
    marks = {"SLOW_AGENT_MARKS": str(tmp_path / "marks")}
    return start_serve(data, tmp_path, extra_env=marks | env)


def marks(tmp_path: Path, kind: str) -> int:
    return len(list((tmp_path / "marks").glob(f"{kind}-*")))


def wait_for_mark(tmp_path: Path, kind: str, served: Served, timeout: float = 60) -> None:
    """Until the agent's tool or retriever has started (it leaves a file)."""
    deadline = time.monotonic() + timeout
    while marks(tmp_path, kind) == 0:
        assert served.process.poll() is None, served.output()
        assert time.monotonic() < deadline, f"no {kind} started:\n{served.output()}"
        time.sleep(0.05)


def post_order(url: str) -> tuple[str, str]:
    with httpx.Client(base_url=url, timeout=30) as c:
        session = c.post("/sessions", json={"agent_id": "orders"}).json()["id"]
        posted = c.post(f"/sessions/{session}/events", json=ORDER)
        assert posted.status_code == 201, posted.text
        return session, posted.json()["trace_id"]


def timeline(url: str, session: str, trace_id: str) -> list[dict[str, Any]]:
    """The turn's events, once its terminal status is there (long-polled, no sleeps)."""
    seen: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, timeout=90) as c:
        while not any(
            e["kind"] == "status" and e["data"]["status"] in ("ready", "cancelled") for e in seen
        ):
            offset = seen[-1]["offset"] + 1 if seen else 0
            page = c.get(
                f"/sessions/{session}/events",
                params={"min_offset": offset, "trace_id": trace_id, "wait_for_data": 60},
            )
            assert page.status_code == 200, page.text
            seen += page.json()
    return seen


def check_answered_once(events: list[dict[str, Any]]) -> None:
    replies = [
        e
        for e in events
        if e["kind"] == "message"
        and e["source"] == "ai_agent"
        and not e["metadata"].get("preamble")
    ]
    assert [r["data"]["message"] for r in replies] == [REPLY]
    ends = [e["data"]["status"] for e in events if e["kind"] == "status"]
    assert ends[-1] == "ready" and "cancelled" not in ends and "error" not in ends


def test_kill_9_during_a_slow_tool_then_a_restart_answers_once(tmp_path: Path) -> None:
    first = serve(tmp_path, SLOW_TOOL_S="60")
    session, trace_id = post_order(first.url)
    wait_for_mark(tmp_path, "order", first)
    first.process.kill()  # SIGKILL: nothing of it gets to clean up
    first.process.wait(10)

    again = serve(tmp_path)
    try:
        events = timeline(again.url, session, trace_id)
        check_answered_once(events)
        trace = httpx.get(f"{again.url}/traces/{trace_id}").json()
        assert (trace["status"], trace["attempt"]) == ("done", 2)
    finally:
        again.stop()
    # The call in flight when the process died was not recorded: it ran again (docs).
    assert marks(tmp_path, "order") == 2


def test_a_consequential_call_already_recorded_is_not_made_again(tmp_path: Path) -> None:
    first = serve(tmp_path, SLOW_RETRIEVER_S="60")
    session, trace_id = post_order(first.url)
    wait_for_mark(tmp_path, "retriever", first)
    # The tool ran and its event is on the timeline; the turn waits for the retriever.
    with httpx.Client(base_url=first.url) as c:
        tools = c.get(
            f"/sessions/{session}/events", params={"kinds": "tool", "wait_for_data": 30}
        ).json()
    assert tools and tools[0]["data"]["tool_calls"][0]["tool_id"].endswith("place_order")
    first.process.kill()
    first.process.wait(10)

    again = serve(tmp_path)
    try:
        check_answered_once(timeline(again.url, session, trace_id))
        trace = httpx.get(f"{again.url}/traces/{trace_id}").json()
        assert trace["composition"]["tool_calls_reused"] == [
            tools[0]["data"]["tool_calls"][0]["tool_id"]
        ]
    finally:
        again.stop()
    assert marks(tmp_path, "order") == 1


def test_sigterm_lets_the_running_turn_finish(tmp_path: Path) -> None:
    served = serve(tmp_path, SLOW_TOOL_S="3")
    session, trace_id = post_order(served.url)
    wait_for_mark(tmp_path, "order", served)
    assert served.stop(signal.SIGTERM, timeout=60) == 0
    assert "Traceback" not in served.output()
    # Read what it left with a new server on the same data (nothing left to run).
    again = serve(tmp_path)
    try:
        check_answered_once(timeline(again.url, session, trace_id))
        trace = httpx.get(f"{again.url}/traces/{trace_id}").json()
        assert trace["attempt"] == 1
    finally:
        again.stop()
    assert marks(tmp_path, "order") == 1


def test_sigterm_past_the_grace_hands_the_turn_to_the_next_start(tmp_path: Path) -> None:
    served = serve(tmp_path, SLOW_TOOL_S="60", TACTFUL_DRAIN_GRACE_S="0.5")
    session, trace_id = post_order(served.url)
    wait_for_mark(tmp_path, "order", served)
    assert served.stop(signal.SIGTERM, timeout=60) == 0
    again = serve(tmp_path)
    try:
        check_answered_once(timeline(again.url, session, trace_id))
    finally:
        again.stop()
    assert marks(tmp_path, "order") == 2
