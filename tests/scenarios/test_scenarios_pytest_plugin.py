"""The pytest plugin: scenario files collected as tests in another pytest session (pytester),
against the Voltmart example on the offline tier."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest

# Imported here, once: pytester's in-process runs forget the modules they imported, and numpy
# (under tactful) cannot be imported twice in one process.
import tactful.scenarios.run  # noqa: F401

pytest_plugins = ["pytester"]

AGENT = (Path(__file__).parents[2] / "examples" / "voltmart" / "agent.py").resolve()

PASSING = f"""\
agent: {AGENT}
real_tools: [voltmart]
scenarios:
  - name: order status by number
    steps:
      - customer: where is my order VM10234568?
        expect:
          tools: [{{tool: order_status, arguments: {{order_id: VM10234568}}}}]
          reply_contains: shipped
"""

FAILING = f"""\
agent: {AGENT}
scenarios:
  - name: returns say banana
    steps:
      - customer: Can I return my headphones?
        expect:
          reply_contains: banana
"""

SIMULATED = f"""\
agent: {AGENT}
scenarios:
  - name: a simulated customer
    simulate:
      goal: learn where their order is
"""


def _plugin_args() -> list[str]:
    """Load the plugin by hand unless its entry point is installed (``pip install -e .``);
    without pytest-asyncio, which the plugin does not need."""
    if entry_points(group="pytest11", name="tactful"):
        return ["-p", "no:asyncio"]
    return ["-p", "no:asyncio", "-p", "tactful_pytest"]


def test_one_test_per_scenario_and_the_failure_text(pytester: pytest.Pytester) -> None:
    pytester.makefile(".scenarios.yaml", orders=PASSING)
    pytester.makefile(".scenarios.yml", returns=FAILING)
    # Not a scenario file by its name: not collected.
    pytester.makefile(".yaml", notes=FAILING)
    result = pytester.runpytest(*_plugin_args(), "--tactful-offline", "--tactful-repeat", "2")
    result.assert_outcomes(passed=1, failed=1)
    text = result.stdout.str()
    assert "0/2 runs passed: pass^2 0.00 (pass^1 0.00)" in text
    assert "✗ returns say banana [run 1/2]  returns.scenarios.yml:3" in text
    assert "returns.scenarios.yml:5: customer: 'Can I return my headphones?'" in text
    assert "✗ reply contains 'banana'" in text
    assert "the reply: " in text  # the check's detail
    assert "journey 'Return an item'" in text  # the turn's trace
    result.stdout.fnmatch_lines(["*returns.scenarios.yml::returns say banana*"])


def test_a_scenario_that_cannot_run_is_skipped_and_a_bad_file_is_an_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".scenarios.yaml", simulated=SIMULATED)
    pytester.makefile(".scenarios.yaml", broken="agent: a.py\nscenarios:\n  - name: no steps\n")
    result = pytester.runpytest(
        *_plugin_args(), "--tactful-offline", "-rs", "--continue-on-collection-errors"
    )
    result.assert_outcomes(skipped=1, errors=1)
    text = result.stdout.str()
    assert "simulated customer: no model is configured" in text
    assert "scenario file does not load:" in text
    assert "broken.scenarios.yaml:3: scenarios.0" in text


def test_a_repeat_out_of_range_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*_plugin_args(), "--tactful-repeat", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--tactful-repeat takes a number of runs from 1 to 100" in result.stderr.str()
