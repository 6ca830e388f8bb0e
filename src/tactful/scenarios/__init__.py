"""Conversation tests: scenarios in YAML files (``spec``), run against an agent with its tools
stubbed (``run``), checked turn by turn (``expectations``, ``judge``) or played by a simulated
customer (``simulate``), reported with pass^k (``report``)."""

from tactful.scenarios.expectations import Check
from tactful.scenarios.run import (
    RunOutcome,
    ScenarioOutcome,
    ScenarioRunner,
    StepOutcome,
    pass_hat,
)
from tactful.scenarios.spec import Scenario, Suite, load_suite, scenario_files

__all__ = [
    "Check",
    "RunOutcome",
    "Scenario",
    "ScenarioOutcome",
    "ScenarioRunner",
    "StepOutcome",
    "Suite",
    "load_suite",
    "pass_hat",
    "scenario_files",
]
