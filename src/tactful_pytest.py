"""The tactful pytest plugin: scenario files as pytest tests. Each ``*.scenarios.yaml`` /
``*.scenarios.yml`` file pytest finds is collected, one test per scenario (its repeats run
inside it, and it passes only when every run does). A failure reads as ``tactful test`` prints
it; a scenario that cannot run (a simulated customer without a model) is skipped with the
reason.

The plugin loads in every pytest session of an environment where tactful is installed (entry
point ``pytest11``), so it is a module of its own, outside the ``tactful`` package (importing
that takes a second), and imports nothing of tactful's until a scenario file is collected.
Options: ``--tactful-offline`` (the offline tier whatever is configured), ``--tactful-repeat
K`` (run every scenario K times).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr

    from tactful.scenarios.run import ScenarioRunner
    from tactful.scenarios.spec import Scenario, Suite

SUFFIXES = (".scenarios.yaml", ".scenarios.yml")


def is_scenario_file(path: Path) -> bool:
    """Whether pytest collects ``path``: a ``<topic>.scenarios.yaml`` (or ``.yml``) file, or
    one named ``scenarios.yaml``."""
    name = path.name
    return name.endswith(SUFFIXES) or name in ("scenarios.yaml", "scenarios.yml")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tactful", "tactful conversation tests (*.scenarios.yaml)")
    group.addoption(
        "--tactful-offline",
        action="store_true",
        default=False,
        help="run scenario files on the offline tier whatever model is configured",
    )
    group.addoption(
        "--tactful-repeat",
        type=int,
        default=None,
        metavar="K",
        help="run every scenario K times (it passes only when all K runs pass: pass^K)",
    )


def pytest_configure(config: pytest.Config) -> None:
    repeat = config.getoption("tactful_repeat")
    if repeat is not None and not 1 <= repeat <= 100:
        raise pytest.UsageError("--tactful-repeat takes a number of runs from 1 to 100")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if is_scenario_file(file_path):
        file: ScenarioFile = ScenarioFile.from_parent(parent, path=file_path)
        return file
    return None


class ScenarioFileError(Exception):
    """A scenario file that does not load: its problems, one a line."""


class ScenarioFailed(Exception):
    """A scenario with a failed run: the failure text of ``tactful test``."""


class ScenarioFile(pytest.File):
    """One scenario file: a test per scenario."""

    def collect(self) -> Iterator[ScenarioItem]:
        from tactful.errors import ValidationError
        from tactful.scenarios.spec import load_suite

        try:
            suite = load_suite(self.path)
        except ValidationError as e:
            raise ScenarioFileError("\n".join(e.problems or (str(e),))) from None
        for scenario in suite.scenarios:
            yield ScenarioItem.from_parent(self, name=scenario.name, suite=suite, scenario=scenario)

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, ScenarioFileError):
            return f"scenario file does not load:\n{excinfo.value}"
        return super().repr_failure(excinfo)


# One event loop and one runner for the session's scenarios: the runs share the runner's
# embedder (and what it has embedded), and its connections stay on the loop that opened them.
_SESSION = pytest.StashKey["tuple[asyncio.AbstractEventLoop, ScenarioRunner]"]()


def _session(config: pytest.Config) -> tuple[asyncio.AbstractEventLoop, ScenarioRunner]:
    found = config.stash.get(_SESSION, None)
    if found is None:
        from tactful.scenarios.run import ScenarioRunner

        found = (
            asyncio.new_event_loop(),
            ScenarioRunner(offline=config.getoption("tactful_offline")),
        )
        config.stash[_SESSION] = found
    return found


def pytest_unconfigure(config: pytest.Config) -> None:
    found = config.stash.get(_SESSION, None)
    if found is not None:
        loop, runner = found
        try:
            loop.run_until_complete(runner.close())
        finally:
            loop.close()
        del config.stash[_SESSION]


class ScenarioItem(pytest.Item):
    """One scenario: all its runs, on fresh in-memory servers."""

    def __init__(self, *, suite: Suite, scenario: Scenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite = suite
        self.scenario = scenario

    def runtest(self) -> None:
        from tactful.scenarios.report import failure_text

        repeat: int | None = self.config.getoption("tactful_repeat")
        loop, runner = _session(self.config)
        outcomes = loop.run_until_complete(
            runner.run_suite(self.suite, repeat=repeat, names=[self.scenario.name])
        )
        outcome = outcomes[0]
        if outcome.skipped is not None:
            pytest.skip(outcome.skipped)
        if not outcome.passed:
            raise ScenarioFailed(failure_text(outcome))

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, ScenarioFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        line = self.scenario.line - 1 if self.scenario.line is not None else None
        return self.path, line, f"scenario: {self.scenario.name}"
