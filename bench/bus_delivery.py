"""Event delivery across processes: an append on process A read by a long poll on process B.

    .venv/bin/python bench/bus_delivery.py [--postgres-url URL] [--ks 1 100] [--appends 200]

Three set-ups, one after the other, in one run: SQLite with one process (the embedded default:
the in-process bus), PostgreSQL with one process (LISTEN/NOTIFY bus, appends and polls on the
same process: woken locally), and PostgreSQL with two processes (appends on A, long polls on B:
woken by NOTIFY). Each is ``tactful serve`` (offline tier), PostgreSQL in a fresh database
(dropped afterwards; the URL defaults to TACTFUL_TEST_POSTGRES_URL).

Per set-up and K: K sessions, each with one long poll open on the polling process
(``GET /sessions/{id}/events?min_offset=..&wait_for_data=60``, reopened after each answer), then
``--appends`` custom events (no turn) posted one at a time, 10 ms apart, to sessions spread
over the K, on the appending process. Per event: when the client read it minus its
``creation_utc`` (one clock: one machine). The method and the code are bench/load.py's
``deliver``, with posting and polling on different processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from databases import fresh_database
from load import Served, quiet_machine
from load import deliver as load_deliver

GAP_S = 0.01
WARM_UP = 20


def log(line: str) -> None:
    print(f"[bus_delivery] {line}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@dataclass
class Process:
    url: str
    pid: int


@contextlib.asynccontextmanager
async def serve(env: dict[str, str], args: list[str], work: Path) -> AsyncIterator[Process]:
    """``tactful serve`` on a free loopback port, stopped with SIGINT at the end."""
    port = free_port()
    log_file = work / f"serve-{port}.log"
    process = _spawn(["--port", str(port), *args], env, work, log_file)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        async with httpx.AsyncClient(base_url=url, timeout=5, trust_env=False) as http:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"tactful serve exited: {log_file.read_text()[-1500:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/healthz")).status_code == 200:
                        break
                if time.time() > deadline:
                    raise RuntimeError("tactful serve is not up after 120 s")
                await asyncio.sleep(0.1)
        yield Process(url, process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()


def _spawn(args: list[str], env: dict[str, str], work: Path, log_file: Path) -> subprocess.Popen:
    with log_file.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tactful.cli.main", "serve", *args],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


async def deliver(post: Process, poll: Process, agent_id: str, k: int, appends: int) -> dict:
    """bench/load.py's ``deliver``: appends on ``post``, long polls on ``poll`` (its CPU use
    is the server's)."""
    served = Served(f"{post.url} to {poll.url}", post.url, agent_id, [poll.pid], [post.url], [])
    return await load_deliver(served, k, appends, GAP_S, poll_url=poll.url)


async def measure(setup: str, post: Process, poll: Process, ks: list[int], appends: int) -> list:
    async with httpx.AsyncClient(base_url=post.url, timeout=10, trust_env=False) as http:
        agent = (await http.post("/agents", json={"name": f"Bench {setup}"})).json()
    await deliver(post, poll, agent["id"], 1, WARM_UP)  # connections, caches: not reported
    rows = []
    for k in ks:
        await quiet_machine()
        row = {"setup": setup, "k": k} | await deliver(post, poll, agent["id"], k, appends)
        log(
            f"{setup} K={k}: p50 {_ms(row['p50_ms'])}, p99 {_ms(row['p99_ms'])}, "
            f"{row['delivered']}/{row['appended']} delivered, others used "
            f"{row['other_cpu_pct']:.0f}% of a CPU"
        )
        rows.append(row)
    return rows


async def run(postgres_url: str, ks: list[int], appends: int) -> list[dict[str, Any]]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TACTFUL_") and k.lower() not in ("http_proxy", "https_proxy")
    }
    base |= {"TACTFUL_MODEL_PROVIDER": "offline", "NO_COLOR": "1"}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tactful-bus-") as tmp:
        work = Path(tmp)
        async with serve(base, ["--data-dir", str(work / "data")], work) as one:
            rows += await measure("SQLite, 1 process", one, one, ks, appends)
        async with fresh_database(postgres_url) as db:
            env = base | {"TACTFUL_DATABASE_URL": db}
            async with serve(env, [], work) as a:
                rows += await measure("PostgreSQL, 1 process", a, a, ks, appends)
                async with serve(env, [], work) as b:
                    rows += await measure("PostgreSQL, A to B", a, b, ks, appends)
    return rows


def _ms(value: float | None) -> str:
    """A latency; None: some event was never delivered."""
    return "never" if value is None else f"{value:.2f} ms"


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| set-up | K | p50 | p99 | max | delivered | others' CPU |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setup']} | {r['k']} | {_ms(r['p50_ms'])} | {_ms(r['p99_ms'])} | "
            f"{_ms(r['max_ms'])} | {r['delivered']}/{r['appended']} | "
            f"{r['other_cpu_pct']:.0f}% |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", default=os.environ.get("TACTFUL_TEST_POSTGRES_URL"))
    parser.add_argument("--ks", type=int, nargs="*", default=[1, 100])
    parser.add_argument("--appends", type=int, default=200)
    args = parser.parse_args()
    if not args.postgres_url:
        parser.error("give --postgres-url (or set TACTFUL_TEST_POSTGRES_URL)")
    print(markdown(asyncio.run(run(args.postgres_url, args.ks, args.appends))))


if __name__ == "__main__":
    main()
