"""``tactful serve --workers N``: N server processes on one port and one PostgreSQL database.

The supervisor migrates the database and defines the agents once (so that the workers do not
race to create the same definitions), then starts the workers: each is an ordinary
``tactful serve`` with the same settings, listening with ``SO_REUSEPORT`` so the kernel spreads
connections over them. A worker that dies is started again; SIGTERM or Ctrl-C goes to every
worker, which drains its turns (``drain_grace_s``) before it exits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tactful.agent_files import load_agent_file
from tactful.cli.output import console, fail, note
from tactful.config import Settings
from tactful.errors import TactfulError
from tactful.server import Server

# A worker that keeps dying this soon after it started is not started again.
MIN_LIFETIME_S = 5.0


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of one worker: this process's, with the settings that flags gave."""
    env = dict(os.environ)
    env.update(
        TACTFUL_HOST=settings.host,
        TACTFUL_PORT=str(settings.port),
        TACTFUL_DATABASE_URL=settings.resolved_database_url(),
        TACTFUL_WORKERS="1",
        TACTFUL_REUSE_PORT="true",
    )
    return env


async def define_once(settings: Settings, agent_files: Sequence[Path]) -> None:
    """Migrate and define the agents in this process, before any worker starts."""
    async with Server(settings=settings.model_copy(update={"workers": 1})) as server:
        for path in agent_files:
            agents = await load_agent_file(server, path)
            note(f"defined {path}: {', '.join(a.name for a in agents) or 'no agent'}")


def run_workers(settings: Settings, agent_files: Sequence[Path]) -> None:
    """Supervise ``settings.workers`` serving processes until SIGTERM or Ctrl-C."""
    if not settings.resolved_database_url().startswith("postgresql"):
        fail(
            "--workers needs PostgreSQL: a SQLite file serves one process. Set "
            "TACTFUL_DATABASE_URL=postgresql://... (or --database-url), or serve one worker"
        )
    try:
        asyncio.run(define_once(settings, agent_files))
    except TactfulError as e:
        fail(str(e))
    command = [sys.executable, "-m", "tactful.cli.main", "serve"]
    for path in agent_files:
        command += ["--agent", str(path)]
    env = worker_env(settings)
    stopping = False

    def start() -> tuple[subprocess.Popen[bytes], float]:
        return subprocess.Popen(command, env=env), time.monotonic()

    workers = [start() for _ in range(settings.workers)]
    console.print(
        f"[green]{settings.workers} workers serving on http://{settings.host}:{settings.port}[/] "
        f"(pids {', '.join(str(p.pid) for p, _ in workers)}; Ctrl-C to stop)",
        soft_wrap=True,
    )

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for process, _ in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping or any(p.poll() is None for p, _ in workers):
        for i, (process, started) in enumerate(workers):
            code = process.poll()
            if code is None or stopping:
                continue
            if time.monotonic() - started < MIN_LIFETIME_S:
                stop(signal.SIGTERM, None)
                note(f"worker {process.pid} exited with {code} right after it started: stopping")
                continue
            note(f"worker {process.pid} exited with {code}: starting another")
            workers[i] = start()
        time.sleep(0.2)
    note("tactful stopped")
