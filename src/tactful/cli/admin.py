"""The admin commands: ``tactful agents|guidelines|journeys|sessions list|show`` read what a
running server holds, through the Python client; ``--json`` prints the API's objects instead."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Annotated, Any, TypeVar

import pydantic
import pydantic_core
import typer
from rich.table import Table
from rich.text import Text

from tactful.cli.output import console, fail, note
from tactful.cli.summary import summary
from tactful.client import (
    DEFAULT_URL,
    ClientError,
    EventInfo,
    GuidelineDetail,
    GuidelineInfo,
    JourneyGraphInfo,
    JourneyInfo,
    SessionInfo,
    TactfulClient,
    TraceInfo,
    UnreachableError,
)
from tactful.domain import JourneyState, StateKind

T = TypeVar("T")

# A turn's trace is stored just after its ready status; a turn still running may need a moment.
TRACE_WAIT_S = 1.0

Url = Annotated[
    str | None,
    typer.Option(help="A running server.", show_default=f"$TACTFUL_URL or {DEFAULT_URL}"),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="TACTFUL_API_KEY",
        help="An API key (operator or admin) for a production server.",
        show_default=False,
    ),
]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print the API's objects as JSON, and nothing else.")
]
AgentFilter = Annotated[str | None, typer.Option("--agent", help="Only this agent's (its id).")]


def call(
    url: str | None,
    api_key: str | None,
    read: Callable[[TactfulClient], Awaitable[T]],
    *,
    code: int = 1,
) -> T:
    """Run ``read`` with a client for the server; a refusal or no server is one red line, and
    exit ``code``."""
    target = (url or os.environ.get("TACTFUL_URL") or DEFAULT_URL).rstrip("/")

    async def run() -> T:
        async with TactfulClient(target, api_key=api_key) as client:
            return await read(client)

    try:
        return asyncio.run(run())
    except UnreachableError as e:
        fail(f"cannot reach tactful at {e.url}: is `tactful serve` running?", code)
    except ClientError as e:
        # The server's own words ("Agent 'x' was not found") say it best.
        fail(e.detail if e.status_code == 404 and e.detail else str(e), code)


def print_json(value: Any) -> None:
    """JSON on stdout, nothing else (no wrapping, no colors): for scripts."""
    data = pydantic_core.to_jsonable_python(value)
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def table(*columns: str) -> Table:
    return Table(*columns, header_style="bold", box=None, pad_edge=False)


def row(t: Table, *cells: str | Text) -> None:
    """A row of plain text: ids and conditions may hold ``[...]``, which is not Rich markup."""
    t.add_row(*(c if isinstance(c, Text) else Text(c) for c in cells))


def fields(record: pydantic.BaseModel, skip: Iterable[str] = ()) -> Table:
    """A record's fields, one per line: name, then value (lists joined, empty ones left out)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for name, value in record.model_dump(mode="json").items():
        if name in skip or value in (None, [], {}, ""):
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False)
        grid.add_row(name, Text(str(value)))
    return grid


def agent_tag(agent_id: str | None) -> str | None:
    return f"agent:{agent_id}" if agent_id else None


# -- agents -------------------------------------------------------------------------------------

agents_app = typer.Typer(help="The agents a running server serves.", no_args_is_help=True)


@agents_app.command("list")
def agents_list(url: Url = None, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """List the agents."""
    agents = call(url, api_key, lambda c: c.list_agents())
    if as_json:
        return print_json(agents)
    t = table("ID", "Name", "Composition", "Description")
    for a in agents:
        row(t, a.id, a.name, a.composition_mode or "", _short(a.description or ""))
    console.print(t)
    note(f"{len(agents)} agent(s)")


@agents_app.command("show")
def agents_show(
    agent_id: Annotated[str, typer.Argument(metavar="ID", help="The agent's id.")],
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Show one agent."""
    agent = call(url, api_key, lambda c: c.get_agent(agent_id))
    if as_json:
        return print_json(agent)
    console.print(fields(agent))


# -- guidelines ---------------------------------------------------------------------------------

guidelines_app = typer.Typer(
    help="Guidelines (and observations): when a condition holds, the agent follows the action.",
    no_args_is_help=True,
)


@guidelines_app.command("list")
def guidelines_list(
    agent: AgentFilter = None, url: Url = None, api_key: ApiKey = None, as_json: AsJson = False
) -> None:
    """List the guidelines (those tagged ``agent:ID`` with --agent)."""

    async def read(c: TactfulClient) -> list[GuidelineInfo]:
        if agent:
            await c.get_agent(agent)  # an unknown agent is an error, not an empty list
        return await c.list_guidelines(tag_id=agent_tag(agent))

    guidelines = call(url, api_key, read)
    if as_json:
        return print_json(guidelines)
    t = table("ID", "Condition", "Action")
    for g in guidelines:
        off = "" if g.enabled else " (disabled)"
        row(t, g.id, g.condition + off, g.action or Text("observation", style="dim"))
    console.print(t)
    note(f"{len(guidelines)} guideline(s)")


@guidelines_app.command("show")
def guidelines_show(
    guideline_id: Annotated[str, typer.Argument(metavar="ID", help="The guideline's id.")],
    agent: AgentFilter = None,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Show a guideline with its relationships and tools."""
    detail: GuidelineDetail = call(url, api_key, lambda c: c.get_guideline(guideline_id))
    tag = agent_tag(agent)
    if tag and tag not in detail.guideline.tags:
        fail(f"guideline {guideline_id!r} is not tagged {tag!r}")
    if as_json:
        return print_json(detail)
    console.print(fields(detail.guideline))
    console.print(Text("relationships", style="bold"))
    for r in detail.relationships:
        source = _end(r.source_guideline, r.source_tag, r.source_tool)
        target = _end(r.target_guideline, r.target_tag, r.target_tool)
        console.print(Text(f"  {source} —{r.kind}→ {target}"), soft_wrap=True)
    if not detail.relationships:
        note("  none")
    console.print(Text("tools", style="bold"))
    for a in detail.tool_associations:
        console.print(Text(f"  {a.tool}"))
    if not detail.tool_associations:
        note("  none")


def _end(
    guideline: GuidelineInfo | None, tag: dict[str, Any] | None, tool: dict[str, Any] | None
) -> str:
    if guideline is not None:
        return f"{guideline.id} ({_short(guideline.condition, 60)})"
    if tag is not None:
        return f"tag {tag.get('name') or tag.get('id')}"
    if tool is not None:
        return f"tool {tool.get('name')}"
    return "?"


# -- journeys -----------------------------------------------------------------------------------

journeys_app = typer.Typer(
    help="Journeys: the states and transitions of a multi-turn flow.", no_args_is_help=True
)


@journeys_app.command("list")
def journeys_list(
    agent: AgentFilter = None, url: Url = None, api_key: ApiKey = None, as_json: AsJson = False
) -> None:
    """List the journeys (those tagged ``agent:ID`` with --agent)."""

    async def read(c: TactfulClient) -> list[JourneyInfo]:
        if agent:
            await c.get_agent(agent)
        return await c.list_journeys(tag_id=agent_tag(agent))

    journeys = call(url, api_key, read)
    if as_json:
        return print_json(journeys)
    t = table("ID", "Title", "Conditions")
    for j in journeys:
        row(t, j.id, j.title, ", ".join(j.conditions))
    console.print(t)
    note(f"{len(journeys)} journey(s)")


@journeys_app.command("show")
def journeys_show(
    journey_id: Annotated[str, typer.Argument(metavar="ID", help="The journey's id.")],
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Show a journey: its states, each with the transitions that leave it."""

    async def read(c: TactfulClient) -> tuple[JourneyInfo, JourneyGraphInfo]:
        return await c.get_journey(journey_id), await c.get_journey_graph(journey_id)

    journey, graph = call(url, api_key, read)
    if as_json:
        return print_json({"journey": journey, "graph": graph})
    console.print(fields(journey))
    console.print(Text("states", style="bold"))
    for line in graph_lines(graph):
        console.print(Text(line), soft_wrap=True)


def graph_lines(graph: JourneyGraphInfo) -> list[str]:
    """The states in order, numbered as the Mermaid diagram numbers them, each followed by its
    outgoing transitions (indented)."""
    names = {s.id: f"s{i}" for i, s in enumerate(graph.states)}
    lines = []
    for s in graph.states:
        initial = "  (initial)" if s.id == graph.initial_state_id else ""
        lines.append(f"  {names[s.id]}  {_state(s)}  [{s.id}]{initial}")
        for t in graph.transitions:
            if t.source != s.id:
                continue
            target = names.get(t.target, t.target)
            if t.target_journey_id:
                target = f"{t.target} of journey {t.target_journey_id}"
            when = f"  when {t.condition}" if t.condition else ""
            lines.append(f"      → {target}{when}")
    return lines


def _state(s: JourneyState) -> str:
    match s.kind:
        case StateKind.TOOL:
            return f"tool {', '.join(s.tools)}"
        case StateKind.JOURNEY:
            return f"journey {s.sub_journey_id}"
        case StateKind.CHAT:
            return s.action or "chat (start)"
        case _:
            return str(s.kind)


# -- sessions -----------------------------------------------------------------------------------

sessions_app = typer.Typer(help="Conversations and what happened in them.", no_args_is_help=True)

QUIET_STATUSES = ("acknowledged", "processing", "typing", "ready", "cancelled")


@sessions_app.command("list")
def sessions_list(
    agent: AgentFilter = None,
    customer: Annotated[
        str | None, typer.Option("--customer", help="Only this customer's (its id).")
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """List the sessions, oldest first."""
    sessions = call(url, api_key, lambda c: c.list_sessions(agent_id=agent, customer_id=customer))
    if as_json:
        return print_json(sessions)
    t = table("ID", "Agent", "Customer", "Mode", "Created", "Title")
    for s in sessions:
        created = getattr(s, "creation_utc", "") or ""
        row(t, s.id, s.agent_id, s.customer_id, s.mode or "", str(created)[:19], s.title or "")
    console.print(t)
    note(f"{len(sessions)} session(s)")


@sessions_app.command("show")
def sessions_show(
    session_id: Annotated[str, typer.Argument(metavar="ID", help="The session's id.")],
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Show a session's timeline: messages, tool calls and, under each reply, what its trace
    says (as ``tactful chat`` does)."""

    async def read(
        c: TactfulClient,
    ) -> tuple[SessionInfo, str, list[EventInfo], dict[str, TraceInfo | str]]:
        session = await c.get_session(session_id)
        events = await c.read_events(session_id)
        try:
            agent_name = (await c.get_agent(session.agent_id)).name
        except ClientError:
            agent_name = session.agent_id
        traces: dict[str, TraceInfo | str] = {}
        for trace_id in _replied_turns(events):
            try:
                traces[trace_id] = await c.get_trace(trace_id, wait=TRACE_WAIT_S)
            except ClientError as e:
                traces[trace_id] = str(e.detail or e)
        return session, agent_name, events, traces

    session, agent_name, events, traces = call(url, api_key, read)
    if as_json:
        found = [t for t in traces.values() if isinstance(t, TraceInfo)]
        return print_json({"session": session, "events": events, "traces": found})
    note(f"session {session.id} · agent {session.agent_id} · customer {session.customer_id}")
    for line in timeline(events, agent_name, traces):
        console.print(line, soft_wrap=True)


def _replied_turns(events: Sequence[EventInfo]) -> list[str]:
    """The trace ids of the turns in which the agent said something, in order."""
    ids = (e.trace_id for e in events if e.message is not None and not _from_customer(e))
    return list(dict.fromkeys(i for i in ids if i))


def _from_customer(e: EventInfo) -> bool:
    return e.source in ("customer", "customer_ui")


def timeline(
    events: Sequence[EventInfo], agent_name: str, traces: dict[str, TraceInfo | str]
) -> list[Text]:
    """What happened, in order: messages, tool calls, failures; after each turn's last reply,
    its trace summary (dimmed). Routine statuses (typing, ready...) are left out."""
    last_reply = {e.trace_id: e.offset for e in events if e.message is not None and e.trace_id}
    applied: dict[str, list[str]] = {}
    lines: list[Text] = []
    for e in events:
        if e.message is not None:
            if _from_customer(e):
                lines.append(Text.assemble(("customer > ", "bold cyan"), e.message))
                continue
            who = agent_name if e.source == "ai_agent" else e.source.replace("_", " ")
            lines.append(Text.assemble((f"{who} > ", "bold green"), e.message))
            applied.setdefault(e.trace_id, []).extend(e.guideline_ids)
            if last_reply.get(e.trace_id) == e.offset and e.trace_id in traces:
                lines += _trace_lines(traces[e.trace_id], applied[e.trace_id])
        elif e.kind == "tool":
            lines += [Text(f"  ⚙ {call}", style="yellow") for call in _tool_calls(e)]
        elif e.status is not None and e.status not in QUIET_STATUSES:
            lines.append(Text(f"  ! {e.status}{_status_detail(e)}", style="red"))
    return lines


def _trace_lines(trace: TraceInfo | str, applied: list[str]) -> list[Text]:
    if isinstance(trace, str):
        return [Text(f"  (no trace: {trace})", style="dim")]
    return [Text(line, style="dim") for line in summary(trace, applied)]


def _tool_calls(e: EventInfo) -> list[str]:
    data = e.data if isinstance(e.data, dict) else {}
    calls = []
    for c in data.get("tool_calls", []):
        args = ", ".join(f"{k}={v!r}" for k, v in (c.get("arguments") or {}).items())
        result = c.get("result") or {}
        outcome = (
            f"error: {c['error']}" if c.get("error") else _short(json.dumps(result.get("data")))
        )
        calls.append(f"{c.get('tool_id', '?')}({args}) → {outcome}")
    return calls


def _status_detail(e: EventInfo) -> str:
    data = e.data.get("data") if isinstance(e.data, dict) else None
    if isinstance(data, dict) and data.get("exception"):
        return f": {data['exception']}"
    return ""


def _short(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
