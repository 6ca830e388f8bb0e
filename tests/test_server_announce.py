"""A server started from Python with ``serve=True`` says where it listens, and logs its turns."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cli.cli_process import clean_env, free_port

SCRIPT = """
import asyncio, sys
import tactful

async def main():
    async with tactful.Server(transient=True, offline=True, serve=True, port=int(sys.argv[1])) as s:
        await s.create_agent("Support")

asyncio.run(main())
"""


def wait_for(log: Path, text: str, process: subprocess.Popen[bytes], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = log.read_text()
        if text in output:
            return output
        if process.poll() is not None:
            raise AssertionError(f"the server exited early:\n{output}")
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared:\n{log.read_text()}")


def test_serve_true_says_where_it_listens_and_prints_a_line_per_turn(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "stderr.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(port)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=tmp_path,
            env=clean_env(),
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(log, f"tactful serving on {url} (Ctrl-C to stop)", process)
        agent = httpx.get(f"{url}/agents").json()[0]
        session = httpx.post(f"{url}/sessions", json={"agent_id": agent["id"]}).json()
        httpx.post(
            f"{url}/sessions/{session['id']}/events",
            json={"kind": "message", "source": "customer", "message": "hello"},
        )
        output = wait_for(log, f"session {session['id']}: done", process)
        assert "0 model call(s), 0 tokens" in output
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(15)
