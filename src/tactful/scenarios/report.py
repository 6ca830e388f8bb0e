"""What a run of scenario files tells its reader: a live progress view while it runs, then a
summary (a line per scenario, each failed run's steps with the checks that failed and the
turn's trace, what was skipped and why, pass^k), and JUnit XML for CI.

The failure text is plain lines, shared by ``tactful test`` and the pytest plugin, so that a
failure reads the same wherever it is reported.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from tactful.domain import EventKind, EventSource
from tactful.scenarios.expectations import Check
from tactful.scenarios.run import RunOutcome, ScenarioOutcome, pass_hat
from tactful.scenarios.spec import Scenario, Suite
from tactful.scenarios.turns import TurnRecord

PASSED, FAILED, SKIPPED = "✓", "✗", "-"
# Characters XML 1.0 cannot carry (a reply or an error may hold them).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# -- where ----------------------------------------------------------------------------------------


def shown_path(path: Path) -> str:
    """The path as a reader at the current folder would type it (relative when it can be)."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return str(path) if relative.startswith(os.pardir + os.sep) else relative


def location(suite: Suite, line: int | None) -> str:
    """``file:line`` (the file alone when the line is unknown)."""
    where = shown_path(suite.path)
    return f"{where}:{line}" if line is not None else where


def _quote(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f}s"


def _ratio(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def largest_repeat(outcomes: Sequence[ScenarioOutcome]) -> int:
    """k of the totals' pass^k: the most runs any scenario had."""
    return max((o.trials for o in outcomes), default=1) or 1


# -- one scenario ---------------------------------------------------------------------------------


def state(outcome: ScenarioOutcome) -> str:
    """passed, failed or skipped."""
    if outcome.skipped is not None:
        return "skipped"
    return "passed" if outcome.passed else "failed"


def scenario_line(outcome: ScenarioOutcome, name_width: int = 0, where_width: int = 0) -> str:
    """✓/✗/- , name, file:line, successes/trials, pass^k when repeated, seconds."""
    sign = {"passed": PASSED, "failed": FAILED, "skipped": SKIPPED}[state(outcome)]
    where = location(outcome.suite, outcome.scenario.line)
    seconds = sum(r.seconds for r in outcome.runs)
    if outcome.skipped is not None:
        tail = f"skipped: {outcome.skipped}"
    else:
        tail = f"{outcome.successes}/{outcome.trials}"
        if outcome.trials > 1:
            tail += f"  pass^{outcome.trials} {_ratio(outcome.pass_hat(outcome.trials))}"
        tail += f"  {_seconds(seconds)}"
    name = outcome.scenario.name.ljust(name_width)
    return f"{sign} {name}  {where.ljust(where_width)}  {tail}"


def run_label(outcome: ScenarioOutcome, run: RunOutcome) -> str:
    """``name`` alone, or ``name [run i/k]`` when the scenario ran more than once."""
    count = len(outcome.runs)
    return outcome.scenario.name + (f" [run {run.number}/{count}]" if count > 1 else "")


def failure_lines(outcome: ScenarioOutcome, run: RunOutcome) -> list[str]:
    """Why one run failed: its error, or each step with failed checks (where it is in the
    file, the customer's message, the agent's reply, each check's what and detail, then the
    turn's trace: what matched, what was decided and why), then failed end checks."""
    suite, scenario = outcome.suite, outcome.scenario
    lines = [f"{FAILED} {run_label(outcome, run)}  {location(suite, scenario.line)}"]
    if run.error is not None:
        lines.append(f"  error: {run.error}")
    for number, step in enumerate(run.steps, start=1):
        if step.failed:
            lines += _step_lines(suite, number, step.turn, step.failed)
    failed_end = [c for c in run.end if c.failed]
    if failed_end:
        lines.append("  at the end of the conversation:")
        lines += _check_lines(failed_end)
        lines += _transcript(run)
    return lines


def _step_lines(suite: Suite, number: int, turn: TurnRecord, failed: list[Check]) -> list[str]:
    step = turn.step
    if step.customer is not None:
        said = f"customer: {_quote(step.customer)}"
    elif step.agent_speaks is not None:
        said = f"agent_speaks: {_quote('; '.join(step.agent_speaks) or '(a greeting)')}"
    else:
        said = f"event: {_quote(str(step.event.data if step.event else ''))}"
    reply = _quote(turn.reply) if turn.replies else "(no reply)"
    lines = [f"  step {number} at {location(suite, step.line)}: {said}", f"    agent: {reply}"]
    lines += _check_lines(failed)
    lines.append("    trace:")
    lines += ["    " + line for line in trace_lines(turn)]
    return lines


def _check_lines(checks: list[Check]) -> list[str]:
    lines = []
    for check in checks:
        lines.append(f"    {FAILED} {check.what}")
        if check.detail:
            lines.append(f"        {check.detail}")
    return lines


def _transcript(run: RunOutcome) -> list[str]:
    """The simulated conversation, for end checks that failed."""
    lines = ["  the conversation:"]
    for step in run.steps:
        if step.turn.step.customer is not None:
            lines.append(f"    customer: {_quote(step.turn.step.customer)}")
        lines += [f"    agent: {_quote(reply)}" for reply in step.turn.replies]
    return lines


def trace_lines(turn: TurnRecord) -> list[str]:
    """The turn's trace as ``tactful chat`` prints it under a reply."""
    from tactful.cli.summary import summary
    from tactful.client import TraceInfo

    if turn.trace is None:
        return ["  (no trace: no turn ran)"]
    applied = [
        str(g)
        for e in turn.events
        if e.kind is EventKind.MESSAGE
        and e.source is EventSource.AI_AGENT
        and isinstance(e.data, dict)
        for g in e.data.get("guidelines", [])
    ] or list(turn.trace.composition.applied_guideline_ids)
    info = TraceInfo.model_validate(turn.trace.model_dump(mode="json"))
    return summary(info, applied)


def skipped_lines(outcomes: Sequence[ScenarioOutcome]) -> list[str]:
    """Skipped scenarios, runs and checks, each with its reason (once per scenario)."""
    lines: list[str] = []
    for outcome in outcomes:
        name = outcome.scenario.name
        if outcome.skipped is not None:
            lines.append(f"{SKIPPED} {name}: {outcome.skipped}")
            continue
        reasons = dict.fromkeys(r.skipped for r in outcome.runs if r.skipped is not None)
        lines += [f"{SKIPPED} {name}: some runs skipped: {reason}" for reason in reasons]
        checks = dict.fromkeys((c.what, c.detail) for r in outcome.runs for c in r.skipped_checks)
        lines += [f"{SKIPPED} {name}: {what}: {detail}" for what, detail in checks]
    return lines


def totals_line(outcomes: Sequence[ScenarioOutcome]) -> str:
    """Scenarios passed/failed/skipped, runs, pass^1 and pass^k (k the largest repeat)."""
    states = [state(o) for o in outcomes]
    runs = sum(o.trials for o in outcomes)
    seconds = sum(r.seconds for o in outcomes for r in o.runs)
    parts = [
        f"{len(outcomes)} scenario{'s' if len(outcomes) != 1 else ''}: "
        f"{states.count('passed')} passed, {states.count('failed')} failed, "
        f"{states.count('skipped')} skipped",
        f"{runs} run{'s' if runs != 1 else ''}",
        f"pass^1 {_ratio(pass_hat(outcomes, 1))}",
    ]
    k = largest_repeat(outcomes)
    if k > 1:
        parts.append(f"pass^{k} {_ratio(pass_hat(outcomes, k))}")
    parts.append(_seconds(seconds))
    return " · ".join(parts)


def failure_text(outcome: ScenarioOutcome) -> str:
    """Every failed run of ``outcome`` as plain text, with its pass^k when it ran repeatedly
    (the pytest plugin's failure report)."""
    lines = []
    if outcome.trials > 1:
        k = outcome.trials
        lines.append(
            f"{outcome.successes}/{k} runs passed: pass^{k} {_ratio(outcome.pass_hat(k))} "
            f"(pass^1 {_ratio(outcome.pass_hat(1))})"
        )
    for run in outcome.runs:
        if not run.passed and run.skipped is None:
            lines += failure_lines(outcome, run)
    return "\n".join(lines)


# -- the terminal -------------------------------------------------------------------------------


_STYLES = {PASSED: "green", FAILED: "red", SKIPPED: "yellow"}


def print_summary(
    console: Console, outcomes: Sequence[ScenarioOutcome], *, quiet: bool = False
) -> None:
    """The summary: scenario lines (failed ones only when ``quiet``), each failed run's
    failures, the skipped with their reasons, then the totals."""

    def say(line: str, style: str = "") -> None:
        console.print(Text(line, style=style), soft_wrap=True)

    shown = [o for o in outcomes if not quiet or state(o) == "failed"]
    name_width = max((len(o.scenario.name) for o in shown), default=0)
    where_width = max((len(location(o.suite, o.scenario.line)) for o in shown), default=0)
    for outcome in shown:
        line = scenario_line(outcome, name_width, where_width)
        say(line, _STYLES[line[0]])
    failed = [(o, r) for o in outcomes for r in o.runs if not r.passed and r.skipped is None]
    if failed:
        say("")
        say("failures", "bold")
    for outcome, run in failed:
        say("")
        for line in failure_lines(outcome, run):
            style = "red" if line.lstrip().startswith(FAILED) else ""
            say(line, "dim" if line.startswith("      ") and not style else style)
    skipped = skipped_lines(outcomes)
    if skipped and not quiet:
        say("")
        say("skipped", "bold")
        for line in skipped:
            say(line, "yellow")
    say("")
    everything_passed = all(state(o) != "failed" for o in outcomes)
    say(totals_line(outcomes), "bold green" if everything_passed else "bold red")


class LiveView:
    """A progress bar over every run (each scenario times its repeats) naming the scenario
    under way; drawn only on a terminal (CI logs get the summary alone)."""

    def __init__(self, console: Console, total: int, *, enabled: bool = True) -> None:
        self.console = console
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not (enabled and console.is_terminal),
        )
        self._task: TaskID = self._progress.add_task("", total=total)
        self._scenario: tuple[Suite, Scenario, int] | None = None

    def __enter__(self) -> LiveView:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def starting(self, suite: Suite, scenario: Scenario, runs: int) -> None:
        """``scenario`` is about to run ``runs`` times."""
        self._scenario = (suite, scenario, runs)
        self._describe(1)

    def ran(self, outcome: ScenarioOutcome, run: RunOutcome) -> None:
        """One run is over (the runner's ``on_run``)."""
        self._progress.advance(self._task)
        if self._scenario is not None and run.number < self._scenario[2]:
            self._describe(run.number + 1)

    def note(self, line: str) -> None:
        """A line above the bar."""
        self._progress.console.print(Text(line, style="dim"), soft_wrap=True)

    def _describe(self, number: int) -> None:
        assert self._scenario is not None
        suite, scenario, runs = self._scenario
        label = f"{suite.path.name}: {scenario.name}"
        if runs > 1:
            label += f" [run {number}/{runs}]"
        self._progress.update(self._task, description=label)


# -- JUnit XML ------------------------------------------------------------------------------------


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("?", text)


def _stem(path: Path) -> str:
    """``smoke.scenarios.yaml`` → ``smoke`` (the test class CI tools show)."""
    name = path.name
    for suffix in (".scenarios.yaml", ".scenarios.yml", ".yaml", ".yml"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return path.stem


def _counts(element: ET.Element, cases: list[tuple[str, float]], *, skipped: bool) -> None:
    kinds = [kind for kind, _ in cases]
    element.set("tests", str(len(cases)))
    element.set("failures", str(kinds.count("failure")))
    element.set("errors", str(kinds.count("error")))
    if skipped:  # the schema has no skipped count on <testsuites>
        element.set("skipped", str(kinds.count("skipped")))
    element.set("time", f"{sum(seconds for _, seconds in cases):.3f}")


def _testcase(outcome: ScenarioOutcome, run: RunOutcome, classname: str) -> ET.Element:
    case = ET.Element(
        "testcase",
        {
            "classname": _xml_text(classname),
            "name": _xml_text(run_label(outcome, run)),
            "time": f"{run.seconds:.3f}",
        },
    )
    if run.skipped is not None:
        ET.SubElement(case, "skipped", {"message": _xml_text(run.skipped)})
    elif run.error is not None:
        error = ET.SubElement(case, "error", {"message": _xml_text(run.error), "type": "error"})
        error.text = _xml_text("\n".join(failure_lines(outcome, run)))
    elif not run.passed:
        failed = [c.what for c in run.checks if c.failed]
        message = "; ".join(failed) or "failed"
        failure = ET.SubElement(
            case, "failure", {"message": _xml_text(message), "type": "ScenarioFailure"}
        )
        failure.text = _xml_text("\n".join(failure_lines(outcome, run)))
    return case


def _kind(run: RunOutcome) -> str:
    if run.skipped is not None:
        return "skipped"
    if run.error is not None:
        return "error"
    return "passed" if run.passed else "failure"


def junit_tree(outcomes: Sequence[ScenarioOutcome]) -> ET.ElementTree:
    """``<testsuites>``: a ``<testsuite>`` per scenario file, a ``<testcase>`` per run."""
    root = ET.Element("testsuites", {"name": "tactful scenarios"})
    files: dict[Path, list[ScenarioOutcome]] = {}
    for outcome in outcomes:
        files.setdefault(outcome.suite.path, []).append(outcome)
    every: list[tuple[str, float]] = []
    for path, of_file in files.items():
        suite = ET.SubElement(root, "testsuite", {"name": _stem(path), "file": shown_path(path)})
        cases: list[tuple[str, float]] = []
        for outcome in of_file:
            for run in outcome.runs:
                suite.append(_testcase(outcome, run, _stem(path)))
                cases.append((_kind(run), run.seconds))
        _counts(suite, cases, skipped=True)
        every += cases
    _counts(root, every, skipped=False)
    # The attributes in a reader's order: name first, counts after.
    for element in [root, *root]:
        _reorder(element, ["name", "tests", "failures", "errors", "skipped", "time", "file"])
    ET.indent(root)
    return ET.ElementTree(root)


def _reorder(element: ET.Element, order: list[str]) -> None:
    attributes: dict[str, Any] = dict(element.attrib)
    element.attrib.clear()
    for key in sorted(attributes, key=lambda k: order.index(k) if k in order else len(order)):
        element.set(key, attributes[key])


def write_junit(outcomes: Sequence[ScenarioOutcome], path: Path | str) -> None:
    """Write the JUnit XML of ``outcomes`` to ``path`` (its folder made when missing)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    junit_tree(outcomes).write(target, encoding="utf-8", xml_declaration=True)
