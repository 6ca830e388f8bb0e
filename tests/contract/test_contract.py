"""The spec tells the truth: schemathesis (every operation, every check, a fixed seed) against a
real server finds no server error and no contract mismatch.

Takes a few minutes, so it is deselected by default; ``.ci/run`` runs it with
``pytest -m contract tests/contract``.
"""

from __future__ import annotations

import pytest
from run_schemathesis import SEED, run_contract

pytestmark = pytest.mark.contract


@pytest.mark.parametrize("mode", ["development", "production"])
def test_schemathesis_finds_no_server_error_and_no_mismatch(mode: str) -> None:
    result = run_contract(seed=SEED, production=mode == "production")
    summary = result.stdout[result.stdout.rfind("SUMMARY") - 40 :]
    print(summary)
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5_000:]
    # The run really tested every operation (and did not stop on a schema it could not load).
    assert "Tested: " in summary and "passed" in summary
