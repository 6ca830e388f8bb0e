"""Reporting outcomes, on hand-built outcomes (no agent runs): pass^k, the summary's text and
the JUnit XML (valid against the schema CI tools read, with the right counts)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
from rich.console import Console

from tactful.scenarios import (
    Check,
    RunOutcome,
    Scenario,
    ScenarioOutcome,
    StepOutcome,
    Suite,
    pass_hat,
)
from tactful.scenarios.report import (
    failure_lines,
    failure_text,
    print_summary,
    totals_line,
    write_junit,
)
from tactful.scenarios.spec import Step
from tactful.scenarios.turns import TurnRecord

SCHEMA = Path(__file__).parent / "junit-10.xsd"


def _suite(path: Path, *names: str) -> Suite:
    suite = Suite(
        agent="agent.py",
        scenarios=[Scenario(name=n, steps=[Step(customer="hello", line=9)]) for n in names],
        path=path,
    )
    for number, scenario in enumerate(suite.scenarios):
        scenario.line = 5 + 10 * number
    return suite


def _run(
    number: int, *checks: Check, error: str | None = None, skipped: str | None = None
) -> RunOutcome:
    step = Step(customer="where is my order?", line=12)
    turn = TurnRecord(index=1, step=step)
    return RunOutcome(
        number,
        steps=[StepOutcome(turn, list(checks))],
        error=error,
        skipped=skipped,
        seconds=1.5,
    )


OK = Check("reply contains 'order'", True, "the reply: 'your order'")
WRONG = Check("matched vm-orders-track", False, "not a candidate: retrieval did not put it forward")
UNJUDGED = Check("criteria 'polite'", None, "no model is configured")


def _outcome(suite: Suite, index: int, *runs: RunOutcome) -> ScenarioOutcome:
    return ScenarioOutcome(suite, suite.scenarios[index], list(runs))


def test_pass_hat_of_one_scenario() -> None:
    suite = _suite(Path("a.scenarios.yaml"), "s")
    outcome = _outcome(suite, 0, _run(1, OK), _run(2, WRONG), _run(3, OK), _run(4, OK))
    assert (outcome.trials, outcome.successes) == (4, 3)
    assert outcome.pass_hat(1) == pytest.approx(3 / 4)
    # C(3, 2) / C(4, 2): 3 of the 6 pairs of runs both passed.
    assert outcome.pass_hat(2) == pytest.approx(3 / 6)
    assert outcome.pass_hat(4) == 0
    assert outcome.pass_hat(5) is None
    assert not outcome.passed


def test_pass_hat_skipped_runs_are_no_trials() -> None:
    suite = _suite(Path("a.scenarios.yaml"), "s")
    outcome = _outcome(suite, 0, _run(1, OK), _run(2, skipped="no model"))
    assert outcome.trials == 1
    assert outcome.pass_hat(1) == 1
    assert outcome.pass_hat(2) is None
    assert outcome.passed


def test_pass_hat_over_scenarios_counts_those_run_k_times() -> None:
    suite = _suite(Path("a.scenarios.yaml"), "twice", "once")
    twice = _outcome(suite, 0, _run(1, OK), _run(2, WRONG))
    once = _outcome(suite, 1, _run(1, OK))
    assert pass_hat([twice, once], 1) == pytest.approx((1 / 2 + 1) / 2)
    assert pass_hat([twice, once], 2) == 0  # only `twice` ran twice, and one run failed
    assert pass_hat([once], 2) is None


def test_failure_lines_say_where_what_and_why() -> None:
    suite = _suite(Path("a.scenarios.yaml"), "order status")
    outcome = _outcome(suite, 0, _run(1, OK, WRONG))
    lines = failure_lines(outcome, outcome.runs[0])
    text = "\n".join(lines)
    assert lines[0] == "✗ order status  a.scenarios.yaml:5"
    assert "step 1 at a.scenarios.yaml:12: customer: 'where is my order?'" in text
    assert "✗ matched vm-orders-track" in text
    assert "not a candidate: retrieval did not put it forward" in text
    assert "reply contains 'order'" not in text  # checks that held are not failures
    assert "no trace" in text


def test_failure_text_gives_pass_hat_when_repeated() -> None:
    suite = _suite(Path("a.scenarios.yaml"), "s")
    outcome = _outcome(suite, 0, _run(1, OK), _run(2, WRONG), _run(3, error="the agent broke"))
    text = failure_text(outcome)
    assert text.startswith("1/3 runs passed: pass^3 0.00 (pass^1 0.33)")
    assert "✗ s [run 2/3]" in text
    assert "✗ s [run 3/3]" in text
    assert "error: the agent broke" in text
    assert "[run 1/3]" not in text


def test_summary_lines_failures_skips_and_totals() -> None:
    suite = _suite(Path("a.scenarios.yaml"), "good", "bad", "simulated")
    outcomes = [
        _outcome(suite, 0, _run(1, OK, UNJUDGED), _run(2, OK)),
        _outcome(suite, 1, _run(1, WRONG), _run(2, OK)),
        _outcome(suite, 2, _run(1, skipped="simulated customer: no model")),
    ]
    out = io.StringIO()
    print_summary(Console(file=out, width=200, color_system=None), outcomes)
    text = out.getvalue()
    assert "✓ good       a.scenarios.yaml:5   2/2  pass^2 1.00  3.0s" in text
    assert "✗ bad        a.scenarios.yaml:15  1/2  pass^2 0.00  3.0s" in text
    assert "- simulated  a.scenarios.yaml:25  skipped: simulated customer: no model" in text
    assert "✗ bad [run 1/2]" in text
    assert "[run 2/2]" not in text.split("failures", 1)[1].split("skipped")[0]
    assert "- good: criteria 'polite': no model is configured" in text
    assert totals_line(outcomes) in text
    assert totals_line(outcomes).startswith(
        "3 scenarios: 1 passed, 1 failed, 1 skipped · 4 runs · pass^1 0.75 · pass^2 0.50"
    )


def test_junit_is_valid_with_counts(tmp_path: Path) -> None:
    first = _suite(tmp_path / "orders.scenarios.yaml", "good", "bad", "simulated")
    second = _suite(tmp_path / "returns.scenarios.yml", "broken <&>")
    outcomes = [
        _outcome(first, 0, _run(1, OK)),
        _outcome(first, 1, _run(1, WRONG), _run(2, OK)),
        _outcome(first, 2, _run(1, skipped="simulated customer: no model")),
        _outcome(second, 0, _run(1, error="agent.py: \x1b[31mno such file\x00")),
    ]
    report = tmp_path / "reports" / "junit.xml"
    write_junit(outcomes, report)

    xmlschema.XMLSchema(SCHEMA).validate(report)
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "time")} == {
        "tests": "5",
        "failures": "1",
        "errors": "1",
        "time": "7.500",
    }
    orders, returns = root.findall("testsuite")
    assert (orders.get("name"), returns.get("name")) == ("orders", "returns")
    assert [orders.get(k) for k in ("tests", "failures", "errors", "skipped")] == [
        "4",
        "1",
        "0",
        "1",
    ]
    assert [returns.get(k) for k in ("tests", "failures", "errors", "skipped")] == [
        "1",
        "0",
        "1",
        "0",
    ]
    cases = orders.findall("testcase")
    assert [c.get("name") for c in cases] == ["good", "bad [run 1/2]", "bad [run 2/2]", "simulated"]
    assert {c.get("classname") for c in cases} == {"orders"}
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == "matched vm-orders-track"
    assert "not a candidate" in (failure.text or "")
    skipped = cases[3].find("skipped")
    assert skipped is not None and skipped.get("message") == "simulated customer: no model"
    error = returns.find("testcase/error")
    assert error is not None and "no such file" in (error.get("message") or "")
    assert returns.find("testcase").get("name") == "broken <&>"  # type: ignore[union-attr]


def test_the_schema_rejects_what_ci_tools_would() -> None:
    """The schema is strict enough to catch a malformed report (a testcase without a name)."""
    schema = xmlschema.XMLSchema(SCHEMA)
    assert schema.is_valid(
        '<testsuites><testsuite name="a" tests="0" failures="0" errors="0"/></testsuites>'
    )
    assert not schema.is_valid(
        '<testsuites><testsuite name="a" tests="1" failures="0" errors="0">'
        "<testcase/></testsuite></testsuites>"
    )
