"""tactful's own web app (web/, served at ``/``) in headless Chromium: a conversation with the
Voltmart example on the offline tier, the trace inspector of its last reply (the matched
guideline, the journey's current state, the tool call with its arguments, the template sent),
a session resumed after a reload, a reply streamed by the scripted model growing in place, and
flagging a reply (issue 15). Real server processes; ``sandbox.mjs`` drives the browser.

The conversation also saves docs/screenshots/sandbox.png and inspector.png, which the README
shows, so that they stay true.

Needs what test_widget.py needs (Debian's ``chromium``, ``node``, ``npm ci`` in tests/e2e) and
the web app's build (``cd web && npm ci && npm run build``); without them the tests skip and
say why, unless ``TACTFUL_E2E_REQUIRED=1`` (set by .ci/run), which makes them fail.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from streamed_server import REPLY as STREAMED_REPLY
from test_widget import (
    CHROMIUM,
    E2E,
    REQUIRED,
    Mode,
    Served,
    admin_key,
    free_port,
    missing_pieces,
    server_env,
    wait_until_serving,
)

from tactful.api import web

SCREENSHOTS = E2E.parent.parent / "docs" / "screenshots"
# The return journey: asks for the order number, looks the order up (a tool state), forks on
# what it found, and asks why (the template sent); VM10234567 is returnable in the seeded data.
CONVERSATION = [
    ("I want to return my headphones", "What's the order number?"),
    ("VM10234567", "can be returned for free"),
]
RETURN_JOURNEY = "vm-journey-return"
ASK_WHY = "Ask why the customer is returning it"


def missing() -> list[str]:
    found = missing_pieces()
    if not (web.DIST / "index.html").is_file():
        found.append(f"the web app is not built in {web.DIST} (cd web && npm ci && npm run build)")
    return found


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, once Chromium, the npm packages and the web build are there."""
    absent = missing()
    if absent:
        reason = "web app browser tests: " + "; ".join(absent)
        if REQUIRED:
            pytest.fail(f"{reason} (TACTFUL_E2E_REQUIRED=1)", pytrace=False)
        pytest.skip(reason)
    path = shutil.which("node")
    assert path is not None
    return path


def start(command: list[str], env: dict[str, str], cwd: Path, admin: dict[str, str]) -> Served:
    port = free_port()
    log = cwd / f"serve-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            text=True,
        )
    server = Served(process, f"http://127.0.0.1:{port}", log, admin)
    try:
        wait_until_serving(server)
    except BaseException:
        stop(server)
        raise
    return server


def stop(server: Served) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def voltmart(mode: Mode, tmp: Path) -> Served:
    """``tactful serve --example`` on a database file (so that a key can exist before it)."""
    data = tmp / "data"
    admin = {"Authorization": f"Bearer {admin_key(data)}"} if mode == "production" else {}
    command = [sys.executable, "-m", "tactful.cli.main", "serve", "--example"]
    env = server_env(mode, "http://127.0.0.1")
    return start([*command, "--data-dir", str(data)], env, tmp, admin)


@pytest.fixture(scope="module")
def development(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = voltmart("development", tmp_path_factory.mktemp("sandbox-dev"))
    try:
        yield server
    finally:
        stop(server)


def drive(node: str, server: Served, scenario: str, *extra: str, tmp: Path) -> dict[str, Any]:
    """Run sandbox.mjs; what the page showed, as JSON."""
    command = [node, str(E2E / "sandbox.mjs"), "--url", server.url, "--scenario", scenario]
    command += ["--chromium", str(CHROMIUM), "--failure", str(tmp / "sandbox-failure.png")]
    key = server.admin.get("Authorization", "").removeprefix("Bearer ")
    if key:
        command += ["--key", key]
    process = subprocess.Popen(
        [*command, *extra],
        cwd=E2E,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a hung run takes its Chromium with it
    )
    try:
        stdout, stderr = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
    assert process.returncode == 0, f"sandbox.mjs {scenario} failed:\n{stderr}\n{server.output()}"
    print(stderr)  # what the browser saw (pytest -rP shows it)
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def conversation_args() -> list[str]:
    args: list[str] = []
    for message, expected in CONVERSATION:
        args += ["--say", message, "--expect", expected]
    return args


def check_conversation(seen: dict[str, Any], server: Served) -> None:
    # The inspector of the last reply: the journey's rule matched, its current state is the one
    # the reply came from, the tool ran on the order number the customer gave, and the template
    # sent is that state's.
    inspector = seen["inspector"]
    assert f"journey:{RETURN_JOURNEY}" in inspector["final_guidelines"], inspector
    [journey] = inspector["journeys"]
    assert journey["journey_id"] == RETURN_JOURNEY
    assert ASK_WHY in journey["current_label"]
    [current] = journey["graph_current"]
    assert ASK_WHY in current["label"]
    # start, ask, look up, fork, ask why: visited, and the four transitions between them.
    assert journey["visited"] == 5 and journey["taken_edges"] == 4, journey
    [tool] = inspector["tool_calls"]
    assert tool["tool_id"] == "voltmart:order_status"
    assert tool["arguments"] == [
        {"name": "order_id", "value": '"VM10234567"', "source": "from customer"}
    ]
    [template] = inspector["sent_templates"]
    assert template["text"].startswith("Good news: order {{order_id}} ({{items}}) can be returned")
    assert "compose" in inspector["stages"]

    # What the server stored says the same: that reply's trace, and that state.
    trace = httpx.get(f"{server.url}/traces/{inspector['trace_id']}", headers=server.admin).json()
    assert trace["journeys"][-1]["state_after"] == current["state_id"]
    assert template["id"] in trace["composition"]["canned_response_ids"]

    # After a reload of the session's page, the same conversation is back.
    resumed = [(m["from"], m["text"]) for m in seen["resumed"]]
    assert [who for who, _ in resumed] == ["customer", "agent"] * len(CONVERSATION)
    for (message, expected), (asked, answered) in zip(
        CONVERSATION, zip(resumed[0::2], resumed[1::2], strict=True), strict=True
    ):
        assert asked[1] == message
        assert expected in answered[1]
    assert seen["url"].endswith(f"/ui/sessions/{seen['session_id']}")


@pytest.mark.e2e
@pytest.mark.embedder
def test_a_conversation_its_inspector_and_a_reload(
    node: str, development: Served, tmp_path: Path
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = time.time()
    seen = drive(
        node,
        development,
        "conversation",
        *conversation_args(),
        "--screenshots",
        str(SCREENSHOTS),
        tmp=tmp_path,
    )
    check_conversation(seen, development)
    for name in ("sandbox.png", "inspector.png"):
        shot = SCREENSHOTS / name
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_mtime >= before - 1, f"{shot} was not written by this run"


@pytest.mark.e2e
@pytest.mark.embedder
def test_in_production_mode_the_app_sends_the_api_key(node: str, tmp_path: Path) -> None:
    server = voltmart("production", tmp_path)
    try:
        # The API refuses a caller without the key; the page itself is public.
        assert httpx.get(f"{server.url}/agents").status_code == 401
        assert httpx.get(f"{server.url}/").status_code == 200
        seen = drive(node, server, "conversation", *conversation_args(), tmp=tmp_path)
        check_conversation(seen, server)
    finally:
        stop(server)


@pytest.mark.e2e
@pytest.mark.embedder
def test_flagging_a_reply_lists_it(node: str, development: Served, tmp_path: Path) -> None:
    if httpx.get(f"{development.url}/flags").status_code == 404:
        pytest.skip("this server has no flags API (GET /flags answers 404)")
    note = "should ask which item first"
    message, expected = CONVERSATION[0]
    seen = drive(
        node,
        development,
        "conversation",
        "--say",
        message,
        "--expect",
        expected,
        "--flag",
        note,
        tmp=tmp_path,
    )
    flags = seen["flags"]
    assert flags["available"], flags
    reply = [m for m in seen["resumed"] if m["from"] == "agent"][-1]
    assert flags["listed"][0]["event_id"] == reply["event_id"]
    assert flags["listed"][0]["note"] == note
    stored = httpx.get(f"{development.url}/flags", params={"session_id": seen["session_id"]})
    assert [(f["event_id"], f["note"]) for f in stored.json()] == [(reply["event_id"], note)]


@pytest.mark.e2e
def test_a_streamed_reply_grows_in_place(node: str, tmp_path: Path) -> None:
    env = server_env("development", "http://127.0.0.1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(E2E)) if p)
    command = [sys.executable, str(E2E / "streamed_server.py"), "--data-dir", str(tmp_path / "d")]
    server = start(command, env, tmp_path, {})
    try:
        seen = drive(node, server, "streaming", "--say", "how do refunds work?", tmp=tmp_path)
    finally:
        stop(server)
    states = seen["states"]
    # One element, shown at several lengths while streaming, each a prefix of the next.
    assert not seen["replaced"]
    assert len({s["event_id"] for s in states}) == 1
    growing = [s["text"] for s in states if s["streaming"] == "true"]
    assert len(growing) >= 3, states
    assert all(b.startswith(a) and len(b) > len(a) for a, b in itertools.pairwise(growing))
    # Complete: the whole reply, and nothing is left of the growing state.
    assert states[-1] == {**states[-1], "streaming": "false", "text": STREAMED_REPLY}
    # The preamble went out first, as its own message.
    agent = [m for m in seen["transcript"] if m["from"] == "agent"]
    assert agent[0]["preamble"] and agent[0]["text"] == "One moment, let me check."
    assert [m["text"] for m in agent if not m["preamble"]] == [STREAMED_REPLY]
