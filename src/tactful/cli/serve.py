"""``tactful serve``: print the settings and model tier, load agent files, serve until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tactful import __version__
from tactful.agent import Agent as AgentHandle
from tactful.agent_files import load_agent_file
from tactful.cli.output import console, fail, note
from tactful.config import Settings
from tactful.domain import Agent, KeyRole
from tactful.errors import ConfigurationError, TactfulError
from tactful.security.exposure import check_exposure
from tactful.security.keys import list_keys
from tactful.server import Server, port_unavailable

# What to do about a taken port, on the command line.
_ADVICE = "choose another port with --port"


def check_port(host: str, port: int) -> None:
    """Bind and release the address as uvicorn will (SO_REUSEADDR), to fail early and clearly
    (``ConfigurationError``, worded as ``Server.start_http`` words it).

    uvicorn reports a taken port with ``sys.exit`` from inside its task, which the SDK cannot
    turn into a clean error, so the command checks first.
    """
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, address in infos:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
    except OSError as e:  # socket.gaierror among them
        raise port_unavailable(host, port, e, advice=_ADVICE) from e


def print_settings(settings: Settings) -> None:
    table = Table(title=f"tactful {__version__}", title_justify="left", show_header=False)
    table.add_column("setting", style="cyan")
    table.add_column("value")
    for name, value in settings.describe().items():
        table.add_row(name, "" if value is None else str(value))
    console.print(table)


async def describe_access(server: Server) -> str:
    """One line on who may call this server (docs/security.md)."""
    settings = server.settings
    if settings.mode == "development":
        return (
            "development mode: every caller is admin, on loopback only; any CORS origin "
            "(TACTFUL_MODE=production to expose it)"
        )
    keys = [k for k in await list_keys(server.runtime.store) if k.active]
    origins = ", ".join(settings.cors_origins) or "none"
    guests = [a.name for a in await server.entities(Agent) if a.guest_sessions]
    line = (
        f"production mode: {len(keys)} active API key(s); CORS origins: {origins}; "
        f"guest sessions: {', '.join(guests) or 'no agent'}"
    )
    if not any(k.role is KeyRole.ADMIN for k in keys):
        line += "; no admin key yet: `tactful keys create --role admin --name <you>`"
    return line


def print_turns() -> None:
    """One dimmed line on the console per turn this process runs (``engine.lifecycle``), and a
    yellow one when a model starts failing, is skipped, or recovers (``llm.routing``)."""

    class TurnLines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            note(record.getMessage())

    class ModelLines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            console.print(Text(record.getMessage(), style="yellow"), soft_wrap=True)

    for name, handler in (("tactful.turns", TurnLines()), ("tactful.models", ModelLines())):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        logger.propagate = False


async def serve(settings: Settings, agent_files: Sequence[Path]) -> None:
    """Start the server, define the agents, then serve until Ctrl-C or SIGTERM."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    state = {"http_owns_signals": False, "stopping": False}

    def on_sigterm() -> None:
        # Before the HTTP server runs, SIGTERM stops like Ctrl-C does under asyncio.run. Once it
        # runs, uvicorn handles SIGINT and SIGTERM itself and shuts down gracefully.
        if main is not None and not state["http_owns_signals"] and not state["stopping"]:
            state["stopping"] = True
            main.cancel()

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        async with Server(settings=settings, serve=True) as server:
            state["http_owns_signals"] = True
            console.print(f"[bold]model[/]: {server.runtime.tier_reason}", soft_wrap=True)
            embedder = server.runtime.engine.cache.embedder.describe()
            console.print(f"[bold]embedder[/]: {escape(embedder)}", soft_wrap=True)
            console.print(f"[bold]access[/]: {await describe_access(server)}", soft_wrap=True)
            for path in agent_files:
                agents = await load_agent_file(
                    server, path, lambda a, p: note(f"pruned from {a.name}: {p.summary()}")
                )
                names = ", ".join(a.name for a in agents) or "no agent"
                note(f"loaded {path}: {names}")
            summaries = await summarize_agents(server)
            for s in summaries:
                console.print(f"[bold]agent[/] {s.line()}", soft_wrap=True)
            if not summaries:
                note(
                    "no agents yet: add --example, or --agent FILE with `async def define(server)`"
                )
            # Listen first, so that "serving on" is true when a client reads it.
            await server.start_http()
            console.print(f"[green]serving on {server.url}[/] (Ctrl-C to stop)", soft_wrap=True)
            print_turns()
        # Leaving the block serves until stopped, then closes the store.
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def run_serve(settings: Settings, agent_files: Sequence[Path]) -> None:
    """Run ``serve`` and turn every expected failure into one red line and exit code 1."""
    try:
        check_exposure(settings)
        if not settings.reuse_port:  # a worker of --workers: its supervisor checked the port
            check_port(settings.host, settings.port)
    except ConfigurationError as e:
        fail(str(e))
    print_settings(settings)
    if settings.workers > 1:
        from tactful.cli.workers import run_workers

        run_workers(settings, agent_files)
        return
    try:
        asyncio.run(serve(settings, agent_files))
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    except TactfulError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot serve on {settings.host}:{settings.port}: {e.strerror or e}")
    except SystemExit as e:
        # uvicorn exits this way when it cannot bind (a race with the check above).
        if e.code not in (0, None):
            fail(f"the HTTP server could not start on {settings.host}:{settings.port}")
    note("tactful stopped")


@dataclass(frozen=True)
class AgentSummary:
    id: str
    name: str
    guidelines: int
    observations: int

    def line(self) -> str:
        counts = f"{self.guidelines} guideline{'s' if self.guidelines != 1 else ''}"
        if self.observations:
            counts += f", {self.observations} observation{'s' if self.observations != 1 else ''}"
        return f"{self.name} (id {self.id}): {counts}"


async def summarize_agents(server: Server) -> list[AgentSummary]:
    """Every agent the server holds, with its guideline counts."""
    summaries = []
    for model in await server.entities(Agent):
        guidelines = await AgentHandle(server.runtime, model).guidelines()
        observations = sum(1 for g in guidelines if g.is_observation)
        summaries.append(
            AgentSummary(model.id, model.name, len(guidelines) - observations, observations)
        )
    return summaries
