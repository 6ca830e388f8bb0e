"""``tactful test``: conversation tests from the command line. ``tactful test PATH...`` runs
scenario files (``run`` is the group's default command), shows a live progress bar, then the
summary with each failure's checks and trace; ``--junit`` writes a report for CI.

Exit codes: 0 every run passed (skips allowed), 1 a run failed, 2 a file did not load.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text
from typer.core import TyperGroup

from tactful.cli.output import console, errors, fail
from tactful.cli.record import record
from tactful.cli.settings import load_settings

if TYPE_CHECKING:
    from tactful.scenarios import ScenarioOutcome, ScenarioRunner, Suite
    from tactful.scenarios.report import LiveView


class DefaultRun(TyperGroup):
    """A group whose default command is ``run``: a first word that names none of its commands
    (a path, an option) starts ``run``'s arguments, so ``tactful test PATH`` is
    ``tactful test run PATH``."""

    # ``ctx`` is click's Context (typer vendors click from 0.20 on, so its class varies).
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


test_app = typer.Typer(
    cls=DefaultRun,
    help=(
        "Conversation tests: run scenario files (*.scenarios.yaml) against their agent. "
        "`tactful test PATH...` is `tactful test run PATH...`."
    ),
    no_args_is_help=True,
)


@test_app.command("run")
def run(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Scenario files, or folders searched for *.scenarios.yaml / *.scenarios.yml.",
            show_default=False,
        ),
    ],
    repeat: Annotated[
        int | None,
        typer.Option(
            "--repeat", min=1, max=100, help="Run every scenario K times (pass^K).", metavar="K"
        ),
    ] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option("-k", "--scenario", help="Only the scenario of this name; repeatable."),
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Write a JUnit XML report here (for CI).", metavar="FILE"),
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Run on the offline tier whatever is configured.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress; only failures and the totals.")
    ] = False,
) -> None:
    """Run scenario files: every scenario (each its repeat times) on a fresh in-memory server."""
    from tactful.scenarios import ScenarioRunner
    from tactful.scenarios.report import LiveView, print_summary, state, write_junit

    suites = _load(paths)
    names = list(dict.fromkeys(scenario or []))
    known = {s.name for suite in suites for s in suite.scenarios}
    unknown = [n for n in names if n not in known]
    if unknown:
        fail(f"no scenario named {', '.join(map(repr, unknown))} in the files given", code=2)
    settings = load_settings()
    total = sum(
        repeat or suite.runs_of(s)
        for suite in suites
        for s in suite.scenarios
        if not names or s.name in names
    )
    with LiveView(console, total, enabled=not quiet) as view:

        def tell(tier: str) -> None:
            if not quiet:
                view.note(f"model: {tier}")

        runner = ScenarioRunner(settings=settings, offline=offline, on_run=view.ran, on_tier=tell)
        outcomes = asyncio.run(_run_all(runner, suites, view, repeat, names))
    print_summary(console, outcomes, quiet=quiet)
    if junit is not None:
        try:
            write_junit(outcomes, junit)
        except OSError as e:
            fail(f"cannot write the JUnit report {junit}: {e.strerror or e}")
        if not quiet:
            console.print(Text(f"JUnit report: {junit}", style="dim"), soft_wrap=True)
    raise typer.Exit(1 if any(state(o) == "failed" for o in outcomes) else 0)


# `tactful test record SESSION_ID`: a scenario file from a stored conversation. DefaultRun
# leaves it alone, since `record` names a command of the group.
test_app.command("record")(record)


def _load(paths: list[Path]) -> list[Suite]:
    """Every scenario file under ``paths``, loaded; each problem of the files that do not load
    on a line of its own (file:line), then exit 2."""
    from tactful.errors import ValidationError
    from tactful.scenarios import load_suite, scenario_files

    files = scenario_files(paths)
    if not files:
        shown = ", ".join(str(p) for p in paths)
        fail(f"no scenario files (*.scenarios.yaml, *.scenarios.yml) under {shown}", code=2)
    suites, problems = [], []
    for path in files:
        try:
            suites.append(load_suite(path))
        except ValidationError as e:
            problems += list(e.problems) or [str(e)]
    if problems:
        for problem in problems:
            errors.print(Text(problem, style="red"), soft_wrap=True)
        raise typer.Exit(2)
    return suites


async def _run_all(
    runner: ScenarioRunner,
    suites: list[Suite],
    view: LiveView,
    repeat: int | None,
    names: list[str],
) -> list[ScenarioOutcome]:
    outcomes = []
    async with runner:
        for suite in suites:
            for scenario in suite.scenarios:
                if names and scenario.name not in names:
                    continue
                view.starting(suite, scenario, repeat or suite.runs_of(scenario))
                outcomes += await runner.run_suite(suite, repeat=repeat, names=[scenario.name])
    return outcomes
