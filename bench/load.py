"""Load: event delivery and concurrency of tactful and Parlant 3.3.2, in the same run.

    .venv/bin/python bench/load.py [--parlant-venv DIR | --no-parlant] [--delivery-ks 1 100 1000]
        [--concurrency-ks 1 10 100] [--n 100] [--latency-ms 200] [--appends 200] [--json FILE]
    .venv/bin/python bench/load.py --backends [--concurrency-ks 1 10 100] [--postgres-url URL]
        [--baseline CHECKOUT]

Both systems serve the scenario of ../shared/anchors/parlant over their REST API on loopback,
one after the other (never at the same time), each in a process of its own: Parlant 3.3.2
through the anchor's ``server.py`` (its fake model) from its own virtual environment, tactful
through ``bench/serve_scenario.py`` (the scripted double answering the same way). Both expose
``/bench/info`` and ``/bench/calls``, so one client (this process, httpx, no proxies) drives
both with the same code.

Event delivery (scenario with 10 guidelines): K sessions, each with one long poll open
(``GET /sessions/{id}/events?min_offset=..&wait_for_data=60``, reopened after each answer).
Then ``--appends`` custom events (``kind: custom, source: system``; neither system starts a turn
for them) are posted one at a time, a few ms apart, to sessions spread over the K. Per event:
the time the client read it from its long poll minus the event's ``creation_utc`` (same clock).
Also reported: the server's and this client's CPU use while the events were appended.

Concurrency (``--n`` guidelines, model latency ``--latency-ms``): K sessions at once, each
sending the scenario's 5 customer turns, the next one ``--think-ms`` after the previous one is
"ready" (closed loop). K = 1, 10, 100 by default: 1 is the floor, and at 100 a server is bound
by something of its own (the row ``binding resource`` says what: the SQLite writer lock, the
CPU, or the model's latency), so a larger K only queues longer. Each customer message ends
with a tag, `` (ref k<i>)``, that the fakes ignore (too short for Parlant's fake, in no
guideline for tactful's), so that each model call is given to its session by finding the tag
in its prompt. Per turn: wall = the agent's reply ``creation_utc`` minus the customer
message's; engine overhead = wall minus the union of that session's model-call intervals
started within it. Throughput = turns completed / time from the first message to the last
reply read (pauses included). Once the load is over, each session's timeline is read back and
the agent's replies after each customer message counted: exactly one each, else it is reported.

``--backends`` runs only the concurrency measurement, on tactful alone, once per store: a SQLite
file (one process), PostgreSQL with one process, PostgreSQL with two processes sharing one port
(bench/load_backends.py); with ``--baseline CHECKOUT``, first an earlier build of tactful on a
SQLite file, so that the two compare in the same run. Each row names what bounds it (the SQLite
writer lock, the CPU, or the model's latency).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.util
import json
import os
import random
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ANCHOR_DIR = ROOT.parent / "shared" / "anchors" / "parlant"
DELIVERY_N = 10
WAIT_S = 60
# A customer's pause before the next message. It also lets Parlant's after-reply analysis call
# (one model latency) finish, which otherwise overlaps the next turn and inflates its overhead.
THINK_MS = 500.0
# At most this long for one K's load, both runs included (quietest): a slow store at K = 100
# on a busy machine takes minutes.
LOAD_TIMEOUT_S = 900
TAG = re.compile(r"\(ref (k\d+)\)")
sys.path.insert(0, str(BENCH))


def _anchor_driver() -> Any:
    """The anchor's driver.py, for its process helpers (loaded by path: its name is generic)."""
    spec = importlib.util.spec_from_file_location("parlant_anchor_driver", ANCHOR_DIR / "driver.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def log(line: str) -> None:
    print(f"[load] {line}", file=sys.stderr, flush=True)


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    at = (len(ordered) - 1) * q / 100
    lo = int(at)
    if at == lo:
        return ordered[lo]
    a, b = ordered[lo], ordered[lo + 1]
    return b if b == float("inf") else a + (b - a) * (at - lo)


def union_s(spans: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Seconds of [lo, hi] covered by the spans."""
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in spans if b > lo and a < hi)
    total, end = 0.0, lo
    for a, b in clipped:
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (Linux procfs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_descendants(pid: int) -> list[int]:
    """``pid`` and every process it started, theirs too (its embedding process: the offline
    embedder computes in one of its own, forked from a fork server)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError, ValueError):  # gone meanwhile
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and of the processes it started (those still running)."""
    total = 0.0
    for each in with_descendants(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += cpu_s(each)
    return total


def busy_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (Linux procfs)."""
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:8]
    busy = sum(int(v) for i, v in enumerate(cpu) if i not in (3, 4))  # not idle, iowait
    return busy / os.sysconf("SC_CLK_TCK")


async def quiet_machine(limit_pct: float = 40, patience_s: float = 30) -> None:
    """Wait a while for other work on the machine to calm down before starting a server."""
    deadline = time.time() + patience_s
    while True:
        busy, mine, wall = busy_s(), time.process_time(), time.time()
        await asyncio.sleep(1)
        other = (busy_s() - busy - (time.process_time() - mine)) / (time.time() - wall) * 100
        if other < limit_pct:
            return
        if time.time() > deadline:
            log(f"other processes still use {other:.0f}% of a CPU: measuring anyway")
            return


NOISY_PCT = 30.0


async def quietest(run: Callable[[], Awaitable[dict[str, Any]]], label: str) -> dict[str, Any]:
    """Measure; once more if other processes took over NOISY_PCT of a CPU meanwhile, keeping
    the quieter of the two."""
    first = await run()
    if first.get("other_cpu_pct", 0) <= NOISY_PCT:
        return first
    log(f"{label}: other processes used {first['other_cpu_pct']:.0f}% of a CPU: once more")
    await quiet_machine()
    second = await run()
    return min(first, second, key=lambda r: r.get("other_cpu_pct", 0))


def pg_backends(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend connected to ``database`` (by process title)."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):  # gone meanwhile
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if title.startswith("postgres: ") and f" {database} " in title:
                found[int(entry.name)] = cpu_s(int(entry.name))
    return found


class PgBackends:
    """The PostgreSQL backends connected to one database, sampled every ``every_s`` while a
    load runs: the CPU seconds they used (one that ends between two samples loses at most an
    interval's: the pool closes its overflow connections as they come back) and the most
    connected at once."""

    def __init__(self, database: str, every_s: float = 0.25) -> None:
        self.database = database
        self.start = pg_backends(database)
        self.last = dict(self.start)
        self.most = len(self.start)
        self._task = asyncio.get_running_loop().create_task(self._sample(every_s))

    def sample(self) -> None:
        now = pg_backends(self.database)
        self.last.update(now)
        self.most = max(self.most, len(now))

    async def _sample(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.sample()

    def stop(self) -> float:
        """The CPU seconds used since the start."""
        self._task.cancel()
        self.sample()
        return sum(cpu - self.start.get(pid, 0.0) for pid, cpu in self.last.items())


class CpuUse:
    """CPU use over a window: the server's processes, the PostgreSQL backends serving its
    database (if any), this client, and every other process of the machine (other work on a
    2-CPU box skews any timing, so the report shows it)."""

    def __init__(self, pids: list[int], pg_database: str | None = None) -> None:
        self.pids = pids
        self.start = self._read()
        self.pg = PgBackends(pg_database) if pg_database else None

    def _read(self) -> tuple[float, float, float, float]:
        # The server's processes with their embedding processes.
        server = sum(tree_cpu_s(pid) for pid in self.pids)
        return time.time(), server, time.process_time(), busy_s()

    def percent(self) -> dict[str, float]:
        """Percent of one CPU used by each since the window opened, and the seconds."""
        pg = self.pg.stop() if self.pg else 0.0
        end = self._read()
        wall, server, me, busy = (b - a for a, b in zip(self.start, end, strict=True))
        use = {
            "server_cpu_pct": round(100 * server / wall, 1),
            "client_cpu_pct": round(100 * me / wall, 1),
            "other_cpu_pct": round(100 * max(0.0, busy - server - me - pg) / wall, 1),
            "server_cpu_s": server,
        }
        if self.pg:
            use |= {"pg_cpu_pct": round(100 * pg / wall, 1), "pg_cpu_s": pg}
            use |= {"pg_connections_max": self.pg.most}
        return use


# -- the servers ---------------------------------------------------------------------------------


@dataclass
class Served:
    """A running server of one system (one process, or several sharing a port), with the
    agent of the scenario."""

    system: str
    url: str
    agent_id: str
    pids: list[int]
    # Where each process answers ``/bench/*`` (with one process, ``url``).
    bench_urls: list[str]
    log_files: list[Path]
    # The PostgreSQL database it serves, if any (its backends' CPU use is reported apart).
    pg_database: str | None = None

    def tail(self) -> str:
        return "\n".join(_tail(f) for f in self.log_files)


@contextlib.asynccontextmanager
async def served(
    system: str,
    python: Path,
    scenario: Path,
    latency_ms: float,
    work: Path,
    database_url: str | None = None,
    workers: int = 1,
    src: Path | None = None,
) -> AsyncIterator[Served]:
    """Start one system's server on free loopback ports; stop it by its PIDs at the end.

    tactful may keep its data in ``database_url`` (default: a SQLite file), served by
    ``workers`` processes on one port (SO_REUSEPORT), started one after the other (the first
    defines the agent)."""
    driver = _anchor_driver()
    port, tool_port, *own_ports = driver.free_loopback_ports(2 + workers)
    token = secrets.token_hex(8)
    env = _server_env(token)
    if system == "parlant":
        home = Path(tempfile.mkdtemp(prefix="parlant-home-", dir=work))
        env.update(PARLANT_HOME=str(home), FAKE_LLM_LATENCY_MS=f"{latency_ms:g}")
        cmd = [str(python), str(ANCHOR_DIR / "server.py"), "--scenario", str(scenario)]
        cmd += ["--port", str(port), "--tool-port", str(tool_port), "--policy", "null"]
        commands = [(cmd, port)]
    else:
        env.setdefault("TACTFUL_LOG_LEVEL", "WARNING")
        if src is not None:
            # Another build of tactful (a checkout's src folder) under this benchmark's code.
            env["PYTHONPATH"] = str(src)
        cmd = [str(python), str(BENCH / "serve_scenario.py"), "--scenario", str(scenario)]
        cmd += ["--port", str(port), "--latency-ms", f"{latency_ms:g}"]
        if database_url is not None:
            cmd += ["--database-url", database_url]
        commands = _worker_commands(cmd, port, own_ports if workers > 1 else [])
    started = time.time()
    processes: list[subprocess.Popen[bytes]] = []
    log_files: list[Path] = []
    try:
        for i, (cmd, own_port) in enumerate(commands):
            log_files.append(work / f"{system}-{port}-{i}.log")
            processes.append(_spawn(cmd, env, work, log_files[-1], driver._server_preexec))
            info = await _ready(processes[-1], f"http://127.0.0.1:{own_port}", token, log_files[-1])
        log(f"{system} ({len(processes)} process(es)): serving {info.get('n_guidelines')} "
            f"guidelines after {time.time() - started:.1f} s")  # fmt: skip
        yield Served(
            system,
            f"http://127.0.0.1:{port}",
            info["agent_id"],
            [p.pid for p in processes],
            [f"http://127.0.0.1:{own_port}" for _, own_port in commands],
            log_files,
            make_url(database_url).database if database_url else None,
        )
    finally:
        await asyncio.gather(*(asyncio.to_thread(driver.stop_server, p) for p in processes))


def _server_env(token: str) -> dict[str, str]:
    """No inherited Parlant/OpenTelemetry settings or proxies: the server stays on loopback."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PARLANT_", "OTEL_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        BENCH_TOKEN=token,
        PYTHONDONTWRITEBYTECODE="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


def _worker_commands(
    cmd: list[str], port: int, own_ports: list[int]
) -> list[tuple[list[str], int]]:
    """Each process's command and the port that reaches it alone: with several, they share
    ``port`` and each answers on one of ``own_ports`` too; the first defines the agent."""
    if not own_ports:
        return [(cmd, port)]
    return [
        ([*cmd, "--reuse-port", "--bench-port", str(own), *(["--no-define"] if i else [])], own)
        for i, own in enumerate(own_ports)
    ]


def _spawn(
    cmd: list[str], env: dict[str, str], work: Path, log_file: Path, preexec: Any
) -> subprocess.Popen[bytes]:
    with log_file.open("w") as out:
        return subprocess.Popen(
            cmd,
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=preexec,
        )


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-1500:]
    except OSError:
        return ""


async def _ready(
    process: subprocess.Popen[bytes], url: str, token: str, log_file: Path
) -> dict[str, Any]:
    deadline = time.time() + 300
    async with httpx.AsyncClient(base_url=url, timeout=10, trust_env=False) as http:
        while time.time() < deadline:
            if process.poll() is not None:
                tail = _tail(log_file)
                raise RuntimeError(f"server exited during start-up ({process.returncode}): {tail}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/healthz")).status_code == 200:
                    info: dict[str, Any] = (await http.get("/bench/info")).json()
                    if info.get("token") != token:
                        raise RuntimeError("another process answers on the chosen port")
                    return info
            await asyncio.sleep(0.05)
    raise RuntimeError("server not ready after 300 s")


def client(url: str, connections: int) -> httpx.AsyncClient:
    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them: at equal
    # timeouts a request can go out on a connection the server is closing (a ReadError).
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=2
    )
    timeout = httpx.Timeout(WAIT_S + 60, connect=60, pool=WAIT_S + 60)
    return httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout, trust_env=False)


async def create_sessions(http: httpx.AsyncClient, agent_id: str, k: int) -> list[str]:
    gate = asyncio.Semaphore(16)

    async def one() -> str:
        async with gate:
            r = await http.post("/sessions", json={"agent_id": agent_id})
            r.raise_for_status()
            return str(r.json()["id"])

    return list(await asyncio.gather(*(one() for _ in range(k))))


async def wait_idle(http: httpx.AsyncClient, served: Served, timeout: float = 60) -> list[int]:
    """Wait until no model call is in flight in any of the server's processes; the number of
    calls each has made so far."""
    deadline = time.time() + timeout
    while True:
        infos = [(await http.get(f"{u}/bench/info")).json() for u in served.bench_urls]
        if not any(i["n_calls_in_flight"] for i in infos) or time.time() > deadline:
            return [int(i["n_calls"]) for i in infos]
        await asyncio.sleep(0.1)


async def writer_lock(http: httpx.AsyncClient, served: Served) -> tuple[float, int] | None:
    """Seconds the server's SQLite writer lock has been held, and how many times it was taken
    (bench/serve_scenario.py counts them; None for a server without one)."""
    infos = [(await http.get(f"{u}/bench/info")).json() for u in served.bench_urls]
    if not all("writer_lock_held_s" in i for i in infos):
        return None
    return sum(i["writer_lock_held_s"] for i in infos), sum(i["writer_lock_taken"] for i in infos)


def binding(row: dict[str, Any]) -> str:
    """What bounds a concurrency row's throughput: the writer lock when it is held nearly all
    the time, the CPU when the server (or the machine) uses all it has, else the model's
    latency (each session waits for its reply before it writes again)."""
    lock = row.get("writer_lock_held_pct")
    server = row.get("server_cpu_pct") or 0.0
    machine = server + (row.get("client_cpu_pct") or 0.0) + (row.get("other_cpu_pct") or 0.0)
    machine += row.get("pg_cpu_pct") or 0.0
    cpus = os.cpu_count() or 1
    cpu = server >= 85 or machine >= 85 * cpus
    if lock is not None and lock >= 85:
        if cpu:
            # Both saturated: a commit that waits for a busy event loop holds the lock longer.
            return (
                f"CPU and the SQLite writer lock (server {server:.0f}% of a CPU, "
                f"lock held {lock:.0f}%)"
            )
        return f"SQLite writer lock ({lock:.0f}% held)"
    if cpu:
        return f"CPU (server {server:.0f}%, machine {machine:.0f}% of {cpus * 100}%)"
    return "model latency"


async def model_calls(
    http: httpx.AsyncClient, served: Served, since: list[int]
) -> list[dict[str, Any]]:
    """The model calls of all the server's processes, from the counts ``since`` on."""
    calls: list[dict[str, Any]] = []
    for url, first in zip(served.bench_urls, since, strict=True):
        r = await http.get(f"{url}/bench/calls", params={"since": first})
        r.raise_for_status()
        calls += r.json()
    return calls


# -- event delivery ------------------------------------------------------------------------------


async def _poll(http: httpx.AsyncClient, session_id: str, seen: dict[str, float]) -> None:
    """One long poll open on the session at all times; when each event was read."""
    offset = 0
    while True:
        r = await http.get(
            f"/sessions/{session_id}/events",
            params={"min_offset": offset, "wait_for_data": WAIT_S},
        )
        now = time.time()
        if r.status_code == 504:
            continue
        r.raise_for_status()
        for event in r.json():
            seen.setdefault(event["id"], now)
            offset = max(offset, event["offset"] + 1)


async def deliver(
    served: Served,
    k: int,
    appends: int,
    gap_s: float,
    budget_s: float = 60,
    *,
    poll_url: str | None = None,
) -> dict[str, Any]:
    """Latency from an event's creation to a long-polling client reading it, K sessions.
    Events are appended through ``served.url``, and read through ``poll_url`` (default: the
    same; another process on the same database for delivery between processes).

    Appending stops after ``budget_s``; an event not read 15 s after the last append counts as
    never delivered (and lifts the percentiles it reaches to infinity)."""
    polled = poll_url or served.url
    async with client(polled, k + 8) as polling, client(served.url, 4) as posting:
        began = time.time()
        sessions = await create_sessions(posting, served.agent_id, k)
        log(f"delivery: {served.system} K={k}: {k} sessions in {time.time() - began:.1f} s")
        seen: dict[str, float] = {}
        pollers = [asyncio.create_task(_poll(polling, s, seen)) for s in sessions]
        try:
            # Until every poll is open on the server (no event exists yet to answer them).
            await asyncio.sleep(1 + k / 200)
            order = sessions * (appends // k + 1)
            random.Random(k).shuffle(order)
            created: dict[str, float] = {}
            posts: list[float] = []
            cpu = CpuUse(served.pids)
            stop = time.time() + budget_s
            for i in range(appends):
                if time.time() > stop:
                    log(f"delivery: {served.system} K={k}: {i} appends in {budget_s:g} s, stop")
                    break
                before = time.time()
                r = await posting.post(
                    f"/sessions/{order[i]}/events",
                    json={"kind": "custom", "source": "system", "data": {"seq": i}},
                )
                r.raise_for_status()
                posts.append(time.time() - before)
                event = r.json()
                created[event["id"]] = ts(event["creation_utc"])
                await asyncio.sleep(gap_s)
            deadline = time.time() + 15
            while time.time() < deadline and not all(e in seen for e in created):
                if failed := [p for p in pollers if p.done()]:
                    failed[0].result()
                await asyncio.sleep(0.05)
            use = cpu.percent()
        finally:
            for p in pollers:
                p.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)
    ms = [(seen[e] - t) * 1000 if e in seen else float("inf") for e, t in created.items()]
    return {
        "p50_ms": _finite(pct(ms, 50)),
        "p99_ms": _finite(pct(ms, 99)),
        "max_ms": _finite(max(ms, default=None)),
        "delivered": sum(1 for e in created if e in seen),
        "appended": len(created),
        "post_p50_ms": pct([p * 1000 for p in posts], 50),
        **use,
    }


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _finite(value: float | None) -> float | None:
    return None if value is None or value == float("inf") else value


def run_delivery(parlant_python: Path | None, ks: list[int], appends: int = 200) -> list[dict]:
    """Event delivery at each K, tactful then Parlant (``parlant_python=None``: tactful only)."""
    return asyncio.run(_run_delivery(parlant_python, ks, appends))


async def _run_delivery(parlant_python: Path | None, ks: list[int], appends: int) -> list[dict]:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="tactful-load-") as tmp:
        work = Path(tmp)
        scenario = _scenario(work, DELIVERY_N)
        for system, python in _systems(parlant_python):
            await quiet_machine()
            log(f"delivery: {system}: starting (N={DELIVERY_N})")
            try:
                async with served(system, python, scenario, 0, work) as server:
                    log(f"delivery: {system}: warm-up (20 events, not reported)")
                    await deliver(server, 1, 20, 0.005)
                    for k in ks:
                        row = {"system": system, "k": k, "requested": appends, "error": None}
                        try:
                            once = functools.partial(deliver, server, k, appends, 0.01)
                            row |= await asyncio.wait_for(quietest(once, f"{system} K={k}"), 240)
                            got = f"{row['delivered']}/{row['appended']}"
                            log(f"delivery: {system} K={k}: p50 {_ms(row['p50_ms'])}, "
                                f"p99 {_ms(row['p99_ms'])} ({got} delivered)")  # fmt: skip
                        except Exception as e:
                            row["error"] = _error(e, server)
                            log(f"delivery: {system} K={k}: FAILED {row['error'][:300]}")
                        rows.append(row)
            except Exception as e:
                log(f"delivery: {system}: FAILED {_error(e)[:300]}")
                rows += [{"system": system, "k": k, "error": _error(e)} for k in ks]
    return rows


# -- concurrency ---------------------------------------------------------------------------------


def _is_ready(event: dict[str, Any]) -> bool:
    data = event.get("data") or {}
    return (
        event["kind"] == "status"
        and data.get("status") == "ready"
        and (data.get("data") or {}).get("stage", "completed") == "completed"
    )


async def converse(
    http: httpx.AsyncClient, session_id: str, tag: str, turns: list[str], think_s: float = 0
) -> list[dict[str, Any]]:
    """The customer turns of one session, each ``think_s`` after the previous one is ready."""
    done: list[dict[str, Any]] = []
    for text in turns:
        if done:
            await asyncio.sleep(think_s)
        r = await http.post(
            f"/sessions/{session_id}/events",
            params={"moderation": "none"},
            json={"kind": "message", "source": "customer", "message": f"{text} (ref {tag})"},
        )
        r.raise_for_status()
        asked = r.json()
        offset = asked["offset"] + 1
        replies: list[dict[str, Any]] = []
        statuses: list[float] = []
        ready = False
        while not ready:
            rr = await http.get(
                f"/sessions/{session_id}/events",
                params={"min_offset": offset, "wait_for_data": WAIT_S},
            )
            if rr.status_code == 504:
                continue
            rr.raise_for_status()
            for event in rr.json():
                offset = max(offset, event["offset"] + 1)
                if event["kind"] == "message" and event["source"] == "ai_agent":
                    replies.append(event)
                if event["kind"] == "status":
                    statuses.append(ts(event["creation_utc"]))
                ready = ready or _is_ready(event)
        done.append(
            {
                "tag": tag,
                "t0": ts(asked["creation_utc"]),
                "t1": ts(replies[-1]["creation_utc"]) if replies else None,
                "first_status": min(statuses) if statuses else None,
                "read": time.time(),
            }
        )
    return done


async def load(served: Served, k: int, turns: list[str], think_s: float) -> dict[str, Any]:
    """K sessions at once, 5 turns each; throughput, wall and overhead per turn, and how many
    replies each turn got."""
    async with client(served.url, k + 8) as http, client(served.url, 4) as bench:
        sessions = await create_sessions(http, served.agent_id, k)
        since = await wait_idle(bench, served)
        lock_before = await writer_lock(bench, served)
        cpu = CpuUse(served.pids, served.pg_database)
        started = time.time()
        outcomes = await asyncio.gather(
            *(converse(http, s, f"k{i}", turns, think_s) for i, s in enumerate(sessions)),
            return_exceptions=True,
        )
        use = cpu.percent()
        window_s = time.time() - started
        lock_after = await writer_lock(bench, served)
        await wait_idle(bench, served)
        raw = await model_calls(bench, served, since)
        replies = await count_replies(http, sessions)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    read = [t for o in outcomes if isinstance(o, list) for t in o]
    figures = turn_figures(read, raw, started)
    per_turn = {
        f"{name}_ms_per_turn": use[f"{name}_s"] * 1000 / max(1, figures["turns"])
        for name in ("server_cpu", "pg_cpu")
        if f"{name}_s" in use
    }
    if lock_before is not None and lock_after is not None:
        held = lock_after[0] - lock_before[0]
        per_turn["writer_lock_held_pct"] = 100 * held / max(1e-9, window_s)
        per_turn["writes_per_turn"] = (lock_after[1] - lock_before[1]) / max(1, figures["turns"])
        per_turn["writer_lock_ms_per_write"] = 1000 * held / max(1, lock_after[1] - lock_before[1])
    row = {
        **figures,
        "turns_expected": k * len(turns),
        "turns_without_reply": len(read) - figures["turns"],
        "failed_sessions": len(failures),
        "first_failure": _error(failures[0], served) if failures else None,
        **replies,
        **use,
        **per_turn,
    }
    row["binding"] = binding(row)
    return row


def turn_figures(
    read: list[dict[str, Any]], raw: list[dict[str, Any]], started: float
) -> dict[str, Any]:
    """Throughput, wall and overhead of the turns read, given the model calls made meanwhile
    (each given to its session by the tag in its prompt)."""
    spans: dict[str, list[tuple[float, float]]] = {}
    unattributed, work = 0, {}
    for c in raw:
        tags = set(TAG.findall(c["prompt"]))
        if len(tags) != 1 or c["t_llm_end"] is None:
            unattributed += 1
            continue
        tag = tags.pop()
        spans.setdefault(tag, []).append((c["t_llm_start"], c["t_llm_end"]))
        work[(tag, c["t_llm_start"])] = c.get("fake_work_s", 0.0)
    turns_done = [t for t in read if t["t1"] is not None]
    walls, overheads, calls, fake_ms = [], [], [], []
    first_status = [
        (t["first_status"] - t["t0"]) * 1000 for t in read if t.get("first_status") is not None
    ]
    for t in turns_done:
        mine = [s for s in spans.get(t["tag"], []) if t["t0"] <= s[0] <= t["t1"]]
        wall = t["t1"] - t["t0"]
        walls.append(wall * 1000)
        overheads.append((wall - union_s(mine, t["t0"], t["t1"])) * 1000)
        calls.append(len(mine))
        fake_ms.append(sum(work.get((t["tag"], s[0]), 0.0) for s in mine) * 1000)
    elapsed = max((t["read"] for t in turns_done), default=time.time()) - started
    return {
        "turns": len(turns_done),
        "turns_per_s": len(turns_done) / elapsed if turns_done else None,
        "elapsed_s": round(elapsed, 2),
        "wall_p50_ms": pct(walls, 50),
        "wall_p99_ms": pct(walls, 99),
        "overhead_p50_ms": pct(overheads, 50),
        "overhead_p90_ms": pct(overheads, 90),
        "overhead_p99_ms": pct(overheads, 99),
        "overhead_max_ms": max(overheads, default=None),
        "first_status_p50_ms": pct(first_status, 50),
        "calls_per_turn": pct(calls, 50),
        "fake_cpu_ms_per_turn": pct(fake_ms, 50),
        "unattributed_calls": unattributed,
    }


async def session_events(http: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    """Every event of a session so far, page by page."""
    events: list[dict[str, Any]] = []
    while True:
        offset = events[-1]["offset"] + 1 if events else 0
        r = await http.get(
            f"/sessions/{session_id}/events", params={"min_offset": offset, "limit": 1000}
        )
        r.raise_for_status()
        events += r.json()
        if r.headers.get("Tactful-Has-More") != "true":
            return events


async def count_replies(http: httpx.AsyncClient, sessions: list[str]) -> dict[str, Any]:
    """Replies (agent messages, preambles aside) after each customer message, read back from
    the sessions' whole timelines once the load is over: each turn must have exactly one."""
    gate = asyncio.Semaphore(16)

    async def one(session_id: str) -> list[int]:
        async with gate:
            events = await session_events(http, session_id)
        counts: list[int] = []
        for e in events:
            if e["kind"] != "message":
                continue
            if e["source"] == "customer":
                counts.append(0)
            elif (
                e["source"] == "ai_agent"
                and counts
                and not (e.get("metadata") or {}).get("preamble")
            ):
                counts[-1] += 1
        return counts

    per_session = await asyncio.gather(*(one(s) for s in sessions))
    histogram = Counter(c for counts in per_session for c in counts)
    odd = [
        f"{s} turn {i + 1}: {c} replies"
        for s, counts in zip(sessions, per_session, strict=True)
        for i, c in enumerate(counts)
        if c != 1
    ]
    return {
        "replies_per_turn": {str(n): histogram[n] for n in sorted(histogram)},
        "turns_one_reply": histogram[1],
        "turns_not_one_reply": len(odd),
        "odd_turns": odd[:10],
    }


def run_concurrency(
    parlant_python: Path | None,
    ks: list[int],
    n: int,
    latency_ms: float,
    think_ms: float = THINK_MS,
) -> list[dict]:
    """Concurrency at each K, tactful then Parlant (``parlant_python=None``: tactful only)."""
    return asyncio.run(_run_concurrency(parlant_python, ks, n, latency_ms, think_ms))


async def _run_concurrency(
    parlant_python: Path | None, ks: list[int], n: int, latency_ms: float, think_ms: float
) -> list[dict]:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="tactful-load-") as tmp:
        work = Path(tmp)
        scenario = _scenario(work, n)
        turns = json.loads(scenario.read_text())["customer_turns"]
        for system, python in _systems(parlant_python):
            await quiet_machine()
            log(f"concurrency: {system}: starting (N={n}, {latency_ms:g} ms model)")
            base = {"system": system, "n": n, "latency_ms": latency_ms, "think_ms": think_ms}
            try:
                async with served(system, python, scenario, latency_ms, work) as server:
                    rows += await measure_ks(server, ks, turns, base)
            except Exception as e:
                log(f"concurrency: {system}: FAILED {_error(e)[:300]}")
                rows += [base | {"k": k, "error": _error(e)} for k in ks]
    return rows


async def measure_ks(
    server: Served, ks: list[int], turns: list[str], base: dict[str, Any]
) -> list[dict[str, Any]]:
    """After a warm-up turn in each process (not reported: its first turn is slower), the load
    at each K on one server: a row each."""
    for url in server.bench_urls:
        async with client(url, 4) as http:
            (session,) = await create_sessions(http, server.agent_id, 1)
            await converse(http, session, "k0", turns[:1])
    rows: list[dict[str, Any]] = []
    name = base["system"]
    for k in ks:
        row = base | {"k": k, "error": None}
        try:
            once = functools.partial(load, server, k, turns, base["think_ms"] / 1000)
            row |= await asyncio.wait_for(quietest(once, f"{name} K={k}"), LOAD_TIMEOUT_S)
            if row["failed_sessions"]:
                row["error"] = f"{row['failed_sessions']} sessions failed: " + str(
                    row["first_failure"]
                )
            log(f"concurrency: {name} K={k}: {row['turns']} turns in "
                f"{row['elapsed_s']} s, overhead p99 {row['overhead_p99_ms'] or 0:.0f} ms, "
                f"{row['turns_not_one_reply']} turns without exactly one reply")  # fmt: skip
        except Exception as e:
            row["error"] = _error(e, server)
            log(f"concurrency: {name} K={k}: FAILED {row['error'][:300]}")
        rows.append(row)
    return rows


def _systems(parlant_python: Path | None) -> list[tuple[str, Path]]:
    systems = [("tactful", Path(sys.executable))]
    if parlant_python is not None:
        systems.append(("parlant", parlant_python))
    return systems


def _scenario(work: Path, n: int) -> Path:
    import turn_cost

    path = work / f"scenario_n{n}.json"
    path.write_text(json.dumps(turn_cost.scenario(n)))
    return path


def _error(e: BaseException, server: Served | None = None) -> str:
    text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    with contextlib.suppress(RuntimeError):  # httpx errors name their request, when they have one
        if isinstance(e, httpx.RequestError):
            text += f" ({e.request.method} {e.request.url.path})"
    if server is not None and (tail := server.tail().strip()):
        text += f" | server log: {tail[-500:]}"
    return text


# -- the report ----------------------------------------------------------------------------------

DELIVERY = [
    ("p50_ms", "p50 ms", "{:,.1f}"),
    ("p99_ms", "p99 ms", "{:,.1f}"),
    ("server_cpu_pct", "server CPU % while appending", "{:,.0f}"),
    ("client_cpu_pct", "client CPU % while appending", "{:,.0f}"),
    ("other_cpu_pct", "other processes' CPU % meanwhile", "{:,.0f}"),
]
CONCURRENCY = [
    ("turns_per_s", "turns / s", "{:,.2f}"),
    ("overhead_p50_ms", "overhead p50 ms", "{:,.1f}"),
    ("overhead_p99_ms", "overhead p99 ms", "{:,.1f}"),
    ("wall_p99_ms", "wall p99 ms", "{:,.0f}"),
    ("first_status_p50_ms", "ms to the first status event (p50)", "{:,.1f}"),
    ("calls_per_turn", "model calls / turn (median)", "{:g}"),
    ("fake_cpu_ms_per_turn", "fake model's CPU ms / turn", "{:,.1f}"),
    ("server_cpu_pct", "server CPU % during the load", "{:,.0f}"),
    ("client_cpu_pct", "client CPU % during the load", "{:,.0f}"),
    ("other_cpu_pct", "other processes' CPU % meanwhile", "{:,.0f}"),
    ("server_cpu_ms_per_turn", "server CPU ms / turn", "{:,.1f}"),
    ("writes_per_turn", "SQLite write transactions / turn", "{:,.1f}"),
    ("writer_lock_held_pct", "SQLite writer lock held %", "{:,.0f}"),
    ("writer_lock_ms_per_write", "ms the lock is held per write", "{:,.1f}"),
    ("binding", "binding resource", "{}"),
]


# Not the systems' own figures: a ratio would mean nothing.
NO_RATIO = {"client_cpu_pct", "other_cpu_pct", "binding"}


def _table(rows: list[dict], metrics: list[tuple[str, str, str]]) -> list[str]:
    by = {(r["system"], r["k"]): r for r in rows}
    ks = sorted({r["k"] for r in rows})
    out = ["| K | metric | tactful | Parlant | tactful / Parlant |", "|---|---|---|---|---|"]
    for k in ks:
        t, p = by.get(("tactful", k)), by.get(("parlant", k))
        for name, label, fmt in metrics:
            tv = t.get(name) if t and not t.get("error") else None
            pv = p.get(name) if p and not p.get("error") else None
            cells = ["n/a" if v is None else fmt.format(v) for v in (tv, pv)]
            ratio = "n/a" if tv is None or not pv or name in NO_RATIO else f"{tv / pv:.3f}"
            ratio = "-" if name in NO_RATIO else ratio
            out.append(f"| {k} | {label} | {cells[0]} | {cells[1]} | {ratio} |")
    return out


def _failures(rows: list[dict]) -> list[str]:
    return [
        f"- {r['system']} K={r['k']}: {(r.get('error') or '').splitlines()[0][:400]}"
        for r in rows
        if r.get("error")
    ]


def markdown(delivery: list[dict], concurrency: list[dict]) -> list[str]:
    """Report lines: one table per benchmark (tactful, Parlant, ratio) and how it was measured."""
    lines: list[str] = []
    if delivery:
        requested = max((r.get("requested") or 0 for r in delivery), default=0)
        floor = next(
            (r["p50_ms"] for r in delivery if r["system"] == "tactful" and r["k"] == 1
             and r.get("p50_ms") is not None),
            None,
        )  # fmt: skip
        lines += [
            "### Event delivery",
            "",
            *_table(delivery, DELIVERY),
            "",
            f"Measured by `bench/load.py`: scenario with {DELIVERY_N} guidelines; tactful on "
            "its embedded default (a SQLite file), Parlant on its transient stores; K sessions, "
            "each with one long poll open "
            f"(`wait_for_data={WAIT_S}`, reopened after each answer); {requested} custom events "
            "posted one at a time, 10 ms apart (at most 60 s of posting), to sessions spread over "
            "the K; per event, the time the client read it minus its `creation_utc` (an event "
            "not read 15 s after the last post counts as never delivered). One Python client "
            "process (httpx) holds all K polls, so its own scheduling is inside every figure: "
            "K = 1 is the floor"
            + (f" (tactful: {floor:.1f} ms)" if floor is not None else "")
            + ", and the client's CPU use is in the table. Parlant 3.3.2 answers a long poll by "
            "polling its store every 250 ms, tactful by waking the poll when the event is "
            "appended. Other processes' CPU use on this 2-CPU machine skews every figure (a K "
            f"during which they took over {NOISY_PCT:g}% of a CPU was measured once more, keeping "
            "the quieter run).",
            "",
        ]
        short = [
            f"- {r['system']} K={r['k']}: {r['appended']} of {r['requested']} events posted, "
            f"{r['delivered']} read (median post round trip {r['post_p50_ms']:,.0f} ms); "
            "percentiles over those few."
            for r in delivery
            if not r.get("error")
            and (r.get("appended", 0) < r.get("requested", 0) or r["delivered"] < r["appended"])
        ]
        if short:
            lines += ["Cut short:", *short, ""]
        if fails := _failures(delivery):
            lines += ["Failed:", *fails, ""]
    if concurrency:
        first = concurrency[0]
        lines += [
            "### Concurrency",
            "",
            *_table(concurrency, CONCURRENCY),
            "",
            f"Measured by `bench/load.py`: scenario with {first.get('n')} guidelines, fake models "
            f"sleeping {first.get('latency_ms', 0):g} ms per call; tactful on its embedded "
            "default (a SQLite file) with its real offline embedder (MiniLM on this CPU), Parlant "
            "on its transient stores with the anchor's fake embedder (hashed words); after "
            "one warm-up turn, K sessions at once, each sending the scenario's 5 customer turns, "
            f"the next {first.get('think_ms', 0):g} ms after the previous is ready (a customer's "
            "pause; it also lets Parlant's after-reply analysis call finish). The row `binding "
            "resource` says what bounds each run: the SQLite writer lock when it is held 85% of "
            "the time or more (timed by bench/serve_scenario.py around the store's lock), else "
            "the CPU when the server uses 85% of a CPU or the machine 85% of all of them, else "
            "the model's latency. Wall: customer message "
            "`creation_utc` to the reply's; overhead: wall minus the union of the session's model "
            "calls started within it (each call given to its session by a tag in the customer "
            "messages); turns / s: turns completed over the time from the first message to the "
            "last reply read, pauses included. p99 over 5 K turns (at K = 1, about the slowest "
            "of 5). The fakes' CPU time (building answers) falls inside the model intervals but "
            "holds the server's event loop, so it slows the other sessions: its row shows how "
            "much it is. The client (one Python process) shares the machine's 2 CPUs with the "
            "server: its CPU use is in the table, with other processes' (a K during which they "
            f"took over {NOISY_PCT:g}% of a CPU was measured once more, keeping the quieter run).",
            "",
        ]
        odd = [
            f"- {r['system']} K={r['k']}: {r['unattributed_calls']} model calls had no session "
            "tag in their prompt and are not counted as model time."
            for r in concurrency
            if r.get("unattributed_calls")
        ]
        odd += [
            f"- {r['system']} K={r['k']}: {r['turns_without_reply']} turns ended without a reply "
            "and are not in the figures."
            for r in concurrency
            if r.get("turns_without_reply")
        ]
        if odd:
            lines += ["Caveats:", *odd, ""]
        if fails := _failures(concurrency):
            lines += ["Failed:", *fails, ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parlant-venv", type=Path, default=ANCHOR_DIR / ".venv")
    parser.add_argument("--no-parlant", action="store_true")
    parser.add_argument("--delivery-ks", type=int, nargs="*", default=[1, 100, 1000])
    parser.add_argument("--concurrency-ks", type=int, nargs="*", default=[1, 10, 100])
    parser.add_argument("--n", type=int, default=100, help="guidelines (concurrency)")
    parser.add_argument("--latency-ms", type=float, default=200.0, help="model latency")
    parser.add_argument("--appends", type=int, default=200, help="events appended per K")
    parser.add_argument("--think-ms", type=float, default=THINK_MS, help="pause between turns")
    parser.add_argument(
        "--backends",
        action="store_true",
        help="instead: concurrency of tactful alone on SQLite, then PostgreSQL with 1 and 2 "
        "processes",
    )
    parser.add_argument(
        "--postgres-url",
        help="a PostgreSQL server where --backends creates (and drops) a database of its own "
        "(default: $TACTFUL_TEST_POSTGRES_URL, else the local test one)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="with --backends: also measure this checkout of tactful (its src folder is used "
        "under this benchmark's code) on a SQLite file, in the same run, e.g. a "
        "`git worktree add /tmp/base <commit>` of an earlier main",
    )
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    started = time.time()
    if args.backends:
        from load_backends import backends_markdown, run_backends

        backends = run_backends(
            args.concurrency_ks,
            args.n,
            args.latency_ms,
            args.think_ms,
            args.postgres_url,
            baseline=args.baseline,
        )
        log(f"done in {time.time() - started:.0f} s")
        _write_json(args.json, {"backends": backends})
        print("\n".join(backends_markdown(backends)))
        return
    parlant = None if args.no_parlant else args.parlant_venv / "bin" / "python"
    if parlant is not None and not parlant.exists():
        log(f"no Parlant venv at {args.parlant_venv}: tactful only")
        parlant = None
    delivery = run_delivery(parlant, args.delivery_ks, args.appends) if args.delivery_ks else []
    concurrency = (
        run_concurrency(parlant, args.concurrency_ks, args.n, args.latency_ms, args.think_ms)
        if args.concurrency_ks
        else []
    )
    log(f"done in {time.time() - started:.0f} s")
    _write_json(args.json, {"delivery": delivery, "concurrency": concurrency})
    print("\n".join(markdown(delivery, concurrency)))


def _write_json(path: Path | None, results: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(results, indent=1, default=str))
        log(f"wrote {path}")


if __name__ == "__main__":
    main()
