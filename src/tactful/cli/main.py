"""The ``tactful`` command line: ``serve``, ``chat``, ``keys``, ``version``; the admin
commands ``agents``, ``guidelines``, ``journeys`` and ``sessions``; and the definitions commands
``plan``, ``apply`` and ``export`` (definition files in YAML), ``history`` and ``rollback``
(revisions of definitions); ``test`` (conversation tests: scenario files)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from tactful import __version__
from tactful.cli.output import console, fail
from tactful.cli.settings import load_settings
from tactful.client import DEFAULT_URL

app = typer.Typer(
    name="tactful",
    help="tactful: a conversational harness for customer-facing LLM agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def agent_files(example: bool, files: list[Path] | None) -> list[Path]:
    from tactful.agent_files import DefinitionError, example_path

    paths = list(files or [])
    if example:
        try:
            paths.insert(0, example_path())
        except DefinitionError as e:
            fail(str(e))
    for path in paths:
        if not path.exists():
            fail(f"agent file {path} does not exist")
    return paths


DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Folder of the embedded SQLite database.", show_default=".tactful"
    ),
]
Transient = Annotated[
    bool, typer.Option("--transient", help="Keep everything in memory; nothing is saved.")
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(help="SQLAlchemy URL (sqlite or postgresql) instead of the data folder"),
]
Example = Annotated[
    bool, typer.Option("--example/--no-example", help="Load the bundled Voltmart example agent.")
]


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on.", show_default="127.0.0.1")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port to listen on.", show_default="8800")
    ] = None,
    data_dir: DataDir = None,
    transient: Transient = False,
    database_url: DatabaseUrl = None,
    example: Example = False,
    agent: Annotated[
        list[Path] | None,
        typer.Option(
            "--agent",
            help=(
                "Python file defining `async def define(server)`, or a definitions file or "
                "folder (YAML, docs/definitions.md); repeatable."
            ),
            metavar="FILE",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Server processes on this port (PostgreSQL only).",
            show_default="1",
        ),
    ] = None,
) -> None:
    """Serve the REST API until Ctrl-C, after loading agent definition files."""
    from tactful.cli.serve import run_serve

    settings = load_settings(
        host=host,
        port=port,
        data_dir=data_dir,
        transient=transient or None,
        database_url=database_url,
        workers=workers,
    )
    run_serve(settings, agent_files(example, agent))


@app.command()
def chat(
    url: Annotated[
        str | None,
        typer.Option(help="A running server.", show_default=f"$TACTFUL_URL or {DEFAULT_URL}"),
    ] = None,
    in_process: Annotated[
        bool, typer.Option("--in-process", help="Run a server in this process, without HTTP.")
    ] = False,
    agent: Annotated[
        str | None, typer.Option("--agent", help="Agent name or id (needed if several).")
    ] = None,
    data_dir: DataDir = None,
    transient: Transient = False,
    example: Annotated[
        bool, typer.Option("--example", help="With --in-process: load the Voltmart example.")
    ] = False,
    agent_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--agent-file",
            help="With --in-process: load this agent definition file.",
            metavar="FILE",
            dir_okay=False,
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for each reply.")] = 120.0,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="TACTFUL_API_KEY",
            help="An API key (operator or admin) for a production server.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Chat with an agent in the terminal (or from a pipe: one message per line).

    Under each reply, dimmed, the guidelines that matched and why.
    """
    from tactful.cli.chat import run_chat
    from tactful.cli.conversation import Conversation, InProcessConversation, RemoteConversation

    conversation: Conversation
    if in_process:
        if url is not None:
            raise typer.BadParameter("use either --url or --in-process", param_hint="--url")
        settings = load_settings(data_dir=data_dir, transient=transient or None)
        conversation = InProcessConversation(settings, agent_files(example, agent_file))
        hint = "the in-process server did not start"
    else:
        for flag, given in (
            ("--data-dir", data_dir is not None),
            ("--transient", transient),
            ("--example", example),
            ("--agent-file", bool(agent_file)),
        ):
            if given:
                raise typer.BadParameter(
                    "only applies with --in-process (a running server loads its agents "
                    "through `tactful serve`)",
                    param_hint=flag,
                )
        target = (url or os.environ.get("TACTFUL_URL") or DEFAULT_URL).rstrip("/")
        conversation = RemoteConversation(target, timeout, api_key)
        hint = "is `tactful serve` running?"
    run_chat(conversation, agent, hint)


keys_app = typer.Typer(
    help="API keys of a production server (stored in its database): create, list, revoke.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="admin or operator")],
    name: Annotated[str, typer.Option(help="Who holds it, e.g. bff")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a key and print its token (shown once; only its digest is stored)."""
    from tactful.cli import keys
    from tactful.domain import KeyRole

    try:
        key_role = KeyRole(role)
    except ValueError:
        raise typer.BadParameter("use admin or operator", param_hint="--role") from None
    if not name.strip() or len(name) > 200:
        raise typer.BadParameter("give a name of 1 to 200 characters", param_hint="--name")
    keys.create(load_settings(data_dir=data_dir, database_url=database_url), name, key_role)


@keys_app.command("list")
def keys_list(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """List the keys (without their secrets)."""
    from tactful.cli import keys

    keys.list_all(load_settings(data_dir=data_dir, database_url=database_url))


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (tactful keys list)")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a key; every server on the database refuses it from its next request."""
    from tactful.cli import keys

    keys.revoke(load_settings(data_dir=data_dir, database_url=database_url), key_id)


def _add_admin_commands() -> None:
    from tactful.cli.admin import agents_app, guidelines_app, journeys_app, sessions_app

    app.add_typer(agents_app, name="agents")
    app.add_typer(guidelines_app, name="guidelines")
    app.add_typer(journeys_app, name="journeys")
    app.add_typer(sessions_app, name="sessions")


_add_admin_commands()


def _add_definition_commands() -> None:
    from tactful.cli.evaluate import evaluate
    from tactful.cli.files import apply, export, history, plan, rollback

    for command in (plan, apply, export, history, rollback, evaluate):
        app.command()(command)


_add_definition_commands()


def _add_test_commands() -> None:
    from tactful.cli.scenarios import test_app

    app.add_typer(test_app, name="test")


_add_test_commands()


@app.command()
def version() -> None:
    """Print tactful's version."""
    console.print(f"tactful {__version__}")


def main() -> None:
    """Entry point of the ``tactful`` script."""
    app()


if __name__ == "__main__":
    main()
