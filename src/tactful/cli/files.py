"""The definitions commands, through the Python client: ``tactful plan`` and ``apply`` send
definition files (YAML: a file or a folder per agent, ``tactful.definitions.files``) to a running
server, ``export`` writes an agent's definitions as such files, ``history`` lists the revisions
of definitions and ``rollback`` returns an agent to one. ``--json`` prints the API's objects.

Exit codes: 0 done; 1 a failure (no server, a refusal), or with ``plan --check`` changes to
make (any failure is then 2, so that 1 means changes only); 2 files or documents that are not
valid (each problem on its own line, with the file and line it is about when known).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from tactful.cli.admin import ApiKey, AsJson, Url, call, print_json, row, table
from tactful.cli.output import console, errors, fail, note
from tactful.client import (
    AgentInfo,
    AppliedInfo,
    ChangeActionInfo,
    ClientError,
    PlanInfo,
    RevisionInfo,
    TactfulClient,
)
from tactful.definitions.files import DefinitionSource, dump_document, read_source, write_folder
from tactful.errors import ValidationError

INVALID = 2
MARKS = {
    ChangeActionInfo.CREATE: ("+", "green"),
    ChangeActionInfo.UPDATE: ("~", "yellow"),
    ChangeActionInfo.DELETE: ("-", "red"),
}

Paths = Annotated[
    list[Path],
    typer.Argument(
        metavar="PATH...",
        help="Definition files: a .yaml/.yml file or a folder of them, one agent each.",
        show_default=False,
    ),
]
AgentArg = Annotated[str, typer.Option("--agent", help="The agent: its id or its name.")]


def _problems(lines: Sequence[str]) -> None:
    for line in lines:
        errors.print(Text(line, style="red"), soft_wrap=True)


def load(paths: Sequence[Path]) -> list[DefinitionSource]:
    """Each path's document; every problem of every path printed, then exit 2."""
    sources: list[DefinitionSource] = []
    problems: list[str] = []
    for path in paths:
        try:
            sources.append(read_source(path))
        except ValidationError as e:
            problems += e.problems or (str(e),)
    if problems:
        _problems(problems)
        raise typer.Exit(INVALID)
    return sources


def located(source: DefinitionSource, error: ClientError) -> list[str] | None:
    """A refused document's problems, each with its file (and line); None for another
    failure."""
    if error.status_code != 422 or not error.problems:
        return None
    lines = []
    for problem in error.problems:
        problem = problem.removeprefix("document.")
        where = source.locate(problem)
        lines.append(where if where != problem else f"{source.label}: {problem}")
    return lines


def plan_lines(plan: PlanInfo) -> list[Text]:
    """``Shop (shop): 2 to create, 1 to update, 0 to delete`` and a line per change (``+``
    create, ``~`` update with the fields that change, ``-`` delete)."""
    head = f"{plan.agent_name} ({plan.agent_id}): "
    if plan.empty:
        return [Text(head + "No changes.")]
    lines = [Text(head + plan.summary(), style="bold")]
    for change in plan.changes:
        mark, style = MARKS[change.action]
        line = f"{mark} {change.action.value} {change.kind} {change.id}"
        if change.label and change.label != change.id:
            line += f"  {change.label}"
        if change.fields:
            line += f"  ({', '.join(change.fields)})"
        lines.append(Text(line, style=style))
    return lines


def _show(lines: Sequence[Text]) -> None:
    for line in lines:
        console.print(line, soft_wrap=True)


def _show_applied(applied: AppliedInfo) -> None:
    _show(plan_lines(applied.plan))
    if applied.revision is not None:
        console.print(f"revision {applied.revision}")


def plan(
    paths: Paths,
    check: Annotated[
        bool,
        typer.Option("--check", help="Exit 1 when anything would change (for CI), else 0."),
    ] = False,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Show what applying definition files would change; changes nothing.

    Per agent: what would be created, updated and deleted (what its file no longer has).
    """
    sources = load(paths)

    async def run(c: TactfulClient) -> list[PlanInfo | list[str]]:
        found: list[PlanInfo | list[str]] = []
        for source in sources:
            try:
                found.append(await c.plan_definitions(source.document))
            except ClientError as e:
                found.append(_refused(source, e))
        return found

    results = call(url, api_key, run, code=INVALID if check else 1)
    plans = [r for r in results if isinstance(r, PlanInfo)]
    if as_json:
        print_json(plans)
    for result in results:
        if isinstance(result, PlanInfo):
            if not as_json:
                _show(plan_lines(result))
        else:
            _problems(result)
    if len(plans) < len(results):
        raise typer.Exit(INVALID)
    if check and any(not p.empty for p in plans):
        raise typer.Exit(1)


def _refused(source: DefinitionSource, error: ClientError) -> list[str]:
    problems = located(source, error)
    if problems is None:
        raise error
    return problems


def apply(
    paths: Paths,
    summary: Annotated[
        str | None,
        typer.Option(help="What the change is for, kept in the history.", show_default=False),
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Apply definition files: each agent's definitions become its file's.

    One revision per agent; what its file no longer has is deleted. Nothing is applied if
    any file has a problem.
    """
    sources = load(paths)

    async def run(c: TactfulClient) -> tuple[list[AppliedInfo], list[str]]:
        # Every document is checked before any is applied.
        problems = []
        for source in sources:
            try:
                await c.plan_definitions(source.document)
            except ClientError as e:
                problems += _refused(source, e)
        applied: list[AppliedInfo] = []
        for source in sources if not problems else ():
            try:
                applied.append(await c.apply_definitions(source.document, summary))
            except ClientError as e:
                return applied, _refused(source, e)
        return applied, problems

    applied, problems = call(url, api_key, run)
    if as_json and (applied or not problems):
        print_json(applied)
    elif not as_json:
        for done in applied:
            _show_applied(done)
    if problems:
        _problems(problems)
        raise typer.Exit(INVALID)


def resolve_agent(agents: Sequence[AgentInfo], given: str) -> str:
    """The id of the agent ``given`` names: its id, else its name (one agent's; case aside if
    no name matches exactly). A text no agent has now is taken as an id as it is: the server
    may know it from its history, or says it does not."""
    if any(a.id == given for a in agents):
        return given
    named = [a for a in agents if a.name == given]
    named = named or [a for a in agents if a.name.casefold() == given.casefold()]
    if len(named) > 1:
        ids = ", ".join(a.id for a in named)
        fail(f"{len(named)} agents are named {given!r} ({ids}): give the id of one")
    return named[0].id if named else given


def _agent_id(url: str | None, api_key: str | None, given: str) -> str:
    return resolve_agent(call(url, api_key, lambda c: c.list_agents()), given)


def export(
    agent: Annotated[str, typer.Argument(metavar="AGENT", help="The agent: its id or its name.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write this file instead of printing.",
            show_default=False,
        ),
    ] = None,
    folder: Annotated[
        Path | None,
        typer.Option(
            "--folder",
            metavar="DIR",
            help="Write this folder instead: agent.yaml and a file per section.",
            show_default=False,
        ),
    ] = None,
    revision: Annotated[
        int | None,
        typer.Option(min=1, help="As of this revision (default: now).", show_default=False),
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Write an agent's definitions as YAML: what plan and apply read back.

    Writing over a file or folder keeps its `code` section (the server does not know it).
    """
    if output is not None and folder is not None:
        raise typer.BadParameter("use either -o FILE or --folder DIR", param_hint="--folder")
    if output is not None and output.is_dir():
        fail(f"{output} is a folder: write it with --folder {output}")
    agent_id = _agent_id(url, api_key, agent)
    document = call(url, api_key, lambda c: c.export_agent(agent_id, revision))
    target = folder or output
    if target is None:
        typer.echo(dump_document(document), nl=False)
        return
    document = _with_code(document, target)
    try:
        if folder is not None:
            written = write_folder(document, folder)
            where = f"{len(written)} files in {folder}"
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(dump_document(document), encoding="utf-8")
            where = str(target)
    except ValidationError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot write {e.filename or target}: {e.strerror or e}")
    errors.print(Text(f"wrote {where}", style="dim"), soft_wrap=True)


def _with_code(document: dict[str, Any], output: Path) -> dict[str, Any]:
    """The document with the ``code`` section of the definitions at ``output`` it replaces:
    which Python files attach the agent's code is the files' to say, not the server's."""
    try:
        code = read_source(output).document.get("code") if output.exists() else None
    except ValidationError:
        code = None  # a file that cannot be read is replaced whole
    return {"code": code, **document} if code else document


def history(
    agent: Annotated[
        str | None, typer.Option("--agent", help="Only this agent's: its id or its name.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """List the revisions of definitions, newest first: when, who, what for."""
    agent_id = _agent_id(url, api_key, agent) if agent else None
    revisions = call(url, api_key, lambda c: c.list_revisions(agent_id, limit))
    if as_json:
        return print_json(revisions)
    t = table("Revision", "When", "Who", "Summary", "Agents")
    for r in revisions:
        row(t, str(r.id), _when(r), r.actor, r.summary, ", ".join(r.agents))
    console.print(t)
    note(f"{len(revisions)} revision(s)")


def _when(revision: RevisionInfo) -> str:
    return revision.creation_utc.astimezone().strftime("%Y-%m-%d %H:%M")


def rollback(
    revision: Annotated[
        int, typer.Argument(metavar="REVISION", min=1, help="The revision to return to.")
    ],
    agent: AgentArg,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Return an agent's definitions to what they were at REVISION.

    The rollback is a new revision: the history keeps everything.
    """
    agent_id = _agent_id(url, api_key, agent)
    applied = call(url, api_key, lambda c: c.rollback(revision, agent_id))
    if as_json:
        return print_json(applied)
    _show_applied(applied)
