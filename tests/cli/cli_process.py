"""Run ``tactful`` as a real subprocess: a free port, a clean environment, a served agent."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

DATA = Path(__file__).parent / "data"
SHOP_AGENT = DATA / "shop_agent.py"
TACTFUL = [sys.executable, "-m", "tactful.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def clean_env() -> dict[str, str]:
    """Offline tier, no colors, wide lines, nothing inherited that changes the outcome."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TACTFUL_") and k not in ("OPENAI_API_KEY", "FORCE_COLOR")
    }
    env.update(TACTFUL_MODEL_PROVIDER="offline", NO_COLOR="1", TERM="dumb", COLUMNS="200")
    return env


def run(
    args: list[str],
    cwd: Path,
    stdin: str = "",
    timeout: float = 60,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TACTFUL, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env() | (extra_env or {}),
        timeout=timeout,
        check=False,
    )


@dataclass
class Served:
    """A ``tactful serve`` subprocess and where its output goes."""

    process: subprocess.Popen[str]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def start_serve(
    args: list[str], cwd: Path, timeout: float = 30, extra_env: dict[str, str] | None = None
) -> Served:
    """Start ``tactful serve`` and wait until it answers and serves at least one agent."""
    port = free_port()
    log = cwd / f"serve-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [*TACTFUL, "serve", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=clean_env() | (extra_env or {}),
            text=True,
        )
    served = Served(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"tactful serve exited early:\n{served.output()}")
        try:
            # The API starts listening once the agents are defined.
            if httpx.get(f"{served.url}/agents", timeout=1).json():
                return served
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    served.stop(signal.SIGKILL)
    raise AssertionError(f"tactful serve did not come up:\n{served.output()}")
