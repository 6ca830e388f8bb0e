"""Parlant's React widget (npm ``parlant-chat-react``), served from another origin, holds a
conversation with the Voltmart example in headless Chromium: a real ``tactful serve`` process,
the widget's page on a second HTTP server, and ``widget.mjs`` driving the browser (issue 12).

Needs Debian's ``chromium``, ``node`` and ``npm ci`` in tests/e2e; without them the tests skip
and say why, unless ``TACTFUL_E2E_REQUIRED=1`` (set by .ci/run), which makes them fail.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
import pytest

from tactful.cli.keys import issue
from tactful.config import Settings
from tactful.domain import KeyRole

E2E = Path(__file__).parent
CHROMIUM = Path(os.environ.get("TACTFUL_E2E_CHROMIUM", "/usr/bin/chromium"))
REQUIRED = os.environ.get("TACTFUL_E2E_REQUIRED") == "1"
NPM_PACKAGES = ("esbuild", "parlant-chat-react", "playwright-core", "react", "react-dom")

AGENT_ID = "voltmart-support"  # the example's agent, defined with this id
AGENT_NAME = "Voltmart"
# (what the customer types, text the agent's reply must contain); the order is in the example's
# order database, and the second message continues the same session.
CONVERSATION = [
    ("where is my order VM10234567?", "Your order VM10234567 (Aurora ANC headphones)"),
    ("how much is 2-day shipping?", "Express (2 business days) is $12.99"),
]

Mode = Literal["development", "production"]


def missing_pieces() -> list[str]:
    """What the browser tests need and this machine lacks, each with how to get it."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    if shutil.which("node") is None:
        missing.append("no node on PATH (apt-get install nodejs npm)")
    absent = [p for p in NPM_PACKAGES if not (E2E / "node_modules" / p / "package.json").exists()]
    if absent:
        missing.append(f"npm packages not installed: {', '.join(absent)} (cd tests/e2e && npm ci)")
    return missing


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, once Chromium and the npm packages are known to be there."""
    missing = missing_pieces()
    if missing:
        reason = "browser tests: " + "; ".join(missing)
        if REQUIRED:
            pytest.fail(f"{reason} (TACTFUL_E2E_REQUIRED=1)", pytrace=False)
        pytest.skip(reason)
    path = shutil.which("node")
    assert path is not None
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_origin(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The widget's page, bundled with esbuild now, served by a second HTTP server.

    It is served as ``http://localhost:<port>`` while the API is ``http://127.0.0.1:<port>``:
    another origin, so every call the widget makes is cross-origin (CORS).
    """
    out = tmp_path_factory.mktemp("widget-page")
    subprocess.run([node, str(E2E / "build.mjs"), str(out)], check=True, cwd=E2E, timeout=120)
    handler = functools.partial(_QuietFiles, directory=str(out))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def server_env(mode: Mode, page_origin: str) -> dict[str, str]:
    """The server's environment for a mode: the one place the production settings come from."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TACTFUL_")
        and k not in ("OPENAI_API_KEY", "FORCE_COLOR", "VOLTMART_ORDERS_DB")
    }
    env.update(TACTFUL_MODEL_PROVIDER="offline", NO_COLOR="1", TERM="dumb", COLUMNS="200")
    if mode == "production":
        env.update(
            TACTFUL_MODE="production",
            TACTFUL_SECRET_KEY="e2e-secret-key-" + "s" * 32,
            TACTFUL_CORS_ORIGINS=page_origin,
        )
    return env


@dataclass
class Served:
    """A ``tactful serve --example`` process and where its output goes."""

    process: subprocess.Popen[str]
    url: str
    log: Path
    # Production mode: the admin key's header, for the test's own REST calls.
    admin: dict[str, str]

    def output(self) -> str:
        return self.log.read_text()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until_serving(server: Served, timeout: float = 60) -> None:
    """Until the example's agent is defined ("serving on" is printed then) and HTTP answers."""
    deadline = time.monotonic() + timeout
    # "serving on" comes out a moment before the port accepts connections, hence both checks.
    while "serving on " not in server.output() or not _answers(server.url):
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"tactful serve did not come up:\n{server.output()}")
        time.sleep(0.05)


def admin_key(data: Path) -> str:
    """An admin key in the database under ``data``, as `tactful keys create` makes it."""
    return issue(Settings(data_dir=data), "e2e", KeyRole.ADMIN).token


@pytest.fixture(params=["development", "production"])
def served(
    request: pytest.FixtureRequest, page_origin: str, tmp_path: Path
) -> Iterator[tuple[Mode, Served]]:
    """The Voltmart example served by a real process in the parametrized mode, offline tier."""
    mode: Mode = request.param
    port = free_port()
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "tactful.cli.main", "serve", "--example"]
    admin: dict[str, str] = {}
    if mode == "production":
        # A database on disk, so that the admin key exists before the server starts.
        data = tmp_path / "data"
        admin = {"Authorization": f"Bearer {admin_key(data)}"}
        command += ["--data-dir", str(data)]
    else:
        command += ["--transient"]
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
            env=server_env(mode, page_origin),
            text=True,
        )
    server = Served(process, f"http://127.0.0.1:{port}", log, admin)
    try:
        wait_until_serving(server)
        yield mode, server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def allow_guests(mode: Mode, server: Served) -> dict[str, str]:
    """Let anonymous browsers talk to the agent; the headers of the test's own REST calls.

    Development mode needs neither. Production mode turns the agent's guest sessions on, so that
    an anonymous browser may start a session with it, and reads the timeline as an admin.
    """
    if mode == "development":
        return {}
    headers = server.admin
    switched = httpx.patch(
        f"{server.url}/agents/{AGENT_ID}", json={"guest_sessions": True}, headers=headers
    )
    assert switched.status_code == 200, (
        f"cannot turn guest sessions on: {switched.status_code} {switched.text}"
    )
    return headers


def run_widget(node: str, page_url: str, screenshot: Path) -> dict[str, Any]:
    """Hold the conversation through the widget in Chromium; what the widget showed, as JSON."""
    command = [node, str(E2E / "widget.mjs"), "--page", page_url]
    command += ["--chromium", str(CHROMIUM), "--screenshot", str(screenshot)]
    for message, expected in CONVERSATION:
        command += ["--say", message, "--expect", expected]
    # Its own process group, so that a hung run takes its Chromium with it.
    process = subprocess.Popen(
        command,
        cwd=E2E,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
    assert process.returncode == 0, f"the widget's conversation failed:\n{stderr}"
    print(stderr)  # what the browser saw (pytest -rP shows it)
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


@pytest.mark.e2e
@pytest.mark.embedder
def test_widget_holds_a_conversation_from_another_origin(
    node: str, page_origin: str, served: tuple[Mode, Served], tmp_path: Path
) -> None:
    mode, server = served
    headers = allow_guests(mode, server)
    query = urlencode({"server": server.url, "agentId": AGENT_ID, "agentName": AGENT_NAME})
    seen = run_widget(node, f"{page_origin}/index.html?{query}", tmp_path / "widget-failure.png")

    # The widget showed each message, then the agent's reply to it.
    shown = [(m["from"], m["text"]) for m in seen["transcript"]]
    assert [who for who, _ in shown] == ["You", AGENT_NAME] * len(CONVERSATION), shown
    for (message, expected), (asked, answered) in zip(
        CONVERSATION, zip(shown[0::2], shown[1::2], strict=True), strict=True
    ):
        assert asked[1] == message
        assert expected in answered[1]

    # And the session's timeline holds the same exchange, from the customer and the agent.
    session_id = seen["session_id"]
    session = httpx.get(f"{server.url}/sessions/{session_id}", headers=headers)
    assert session.status_code == 200, session.text
    assert session.json()["agent_id"] == AGENT_ID
    events = httpx.get(
        f"{server.url}/sessions/{session_id}/events", params={"kinds": "message"}, headers=headers
    )
    assert events.status_code == 200, events.text
    timeline = [(e["source"], e["data"]["message"]) for e in events.json()]
    assert timeline == [
        ("customer" if who == "You" else "ai_agent", text) for who, text in shown
    ], server.output()
