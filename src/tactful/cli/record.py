"""``tactful test record SESSION_ID``: a stored conversation, written as a scenario file that
replays it (``tactful.scenarios.record``), through the Python client.

A flagged reply becomes a step that fails until the agent is fixed. Exit codes: 0 written; 1 a
failure (no server, no such session, a file that cannot be written).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from tactful.cli.admin import ApiKey, Url, call
from tactful.cli.output import errors, fail
from tactful.client import ClientError, CustomerInfo, TactfulClient
from tactful.domain import GUEST_CUSTOMER_ID
from tactful.errors import ValidationError
from tactful.scenarios.record import record_session, render


async def record_scenario(client: TactfulClient, session_id: str, agent: str | None) -> str:
    """The scenario file of session ``session_id`` as YAML text; ``agent`` is the path written
    in it (None: a placeholder to edit)."""
    session = await client.get_session(session_id)
    events = await client.read_events(session_id)
    traces = await client.list_traces(session_id)
    flags = await client.list_flags(session_id=session_id)
    customer: CustomerInfo | None = None
    tag_names: dict[str, str] = {}
    if session.customer_id and session.customer_id != GUEST_CUSTOMER_ID:
        customer = await client.get_customer(session.customer_id)
        for tag_id in customer.tags:
            # A tag deleted since keeps its id in the file.
            try:
                tag_names[tag_id] = (await client.get_tag(tag_id)).name
            except ClientError as e:
                if e.status_code != 404:
                    raise
    recording = record_session(
        session,
        events,
        traces,
        flags,
        customer=customer,
        tag_names=tag_names,
        agent=agent,
    )
    return render(recording)


def _agent_path(agent: str | None, output: Path | None) -> str | None:
    """The agent path as the file must say it: relative to the file's folder (a path given from
    here that exists is rewritten so); as given otherwise."""
    if agent is None or output is None:
        return agent
    given = Path(agent).expanduser()
    if given.is_absolute() or not given.exists():
        return agent
    return Path(os.path.relpath(given.resolve(), output.resolve().parent)).as_posix()


def record(
    session_id: Annotated[str, typer.Argument(metavar="SESSION_ID", help="The session's id.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write this file (name it <topic>.scenarios.yaml) instead of printing.",
            show_default=False,
        ),
    ] = None,
    agent: Annotated[
        str | None,
        typer.Option(
            "--agent",
            metavar="FILE",
            help="The agent file or definitions folder the test runs (default: a placeholder "
            "to edit).",
            show_default=False,
        ),
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Write a stored session as a scenario file: a step per customer message, expecting what
    the agent did; a flagged reply becomes a step that fails until the agent is fixed."""
    if output is not None and output.is_dir():
        fail(f"{output} is a folder: give a file, e.g. {output / 'recorded.scenarios.yaml'}")
    written_agent = _agent_path(agent, output)

    async def read(client: TactfulClient) -> str:
        return await record_scenario(client, session_id, written_agent)

    try:
        text = call(url, api_key, read)
    except ValidationError as e:
        fail(str(e))
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as e:
        fail(f"cannot write {e.filename or output}: {e.strerror or e}")
    errors.print(Text(f"wrote {output}", style="dim"), soft_wrap=True)
