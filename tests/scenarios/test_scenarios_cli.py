"""``tactful test`` end to end, in-process through Typer's runner: the Voltmart example on the
offline tier (each run takes a few seconds, so few runs)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
from typer.testing import CliRunner

from tactful.cli.main import app

HERE = Path(__file__).parent
SMOKE = HERE / "data" / "smoke.yaml"
SCHEMA = HERE / "junit-10.xsd"

runner = CliRunner()


@pytest.fixture
def smoke(tmp_path: Path) -> Path:
    """The sample file named as `tactful test` finds it in a folder, its agent made absolute."""
    agent = (HERE.parents[1] / "examples" / "voltmart" / "agent.py").resolve()
    text = SMOKE.read_text(encoding="utf-8").replace(
        "../../../examples/voltmart/agent.py", str(agent)
    )
    path = tmp_path / "suite" / "smoke.scenarios.yaml"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    return path


def test_a_failure_shows_its_checks_and_the_trace(smoke: Path) -> None:
    # The folder: files are found by their name.
    result = runner.invoke(app, ["test", str(smoke.parent), "--offline"])
    assert result.exit_code == 1, result.output
    out = result.output
    assert out.count("model: offline tier") == 1  # once, not once per run
    assert "✓ order status by number" in out
    assert "✓ stubbed order status" in out  # its stub gives every field the template needs
    assert "✗ deliberately wrong" in out
    # The failed step: where, what was said, each failed check's what and detail.
    assert "smoke.scenarios.yaml:32: customer: 'Can I return my headphones?'" in out
    assert "✗ matched vm-orders-track\n" in out
    assert "does not apply; similarity" in out  # the check's detail: why it did not match
    assert "✗ reply contains 'banana'" in out
    # The turn's trace: what matched and what was decided.
    assert "journey 'Return an item'" in out
    assert "model calls" in out
    assert "3 scenarios: 2 passed, 1 failed, 0 skipped · 3 runs · pass^1 0.67" in out


def test_repeat_gives_pass_hat_and_junit(smoke: Path, tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    result = runner.invoke(
        app,
        [
            "test",
            "run",
            str(smoke),
            "-k",
            "order status by number",
            "--repeat",
            "2",
            "--offline",
            "--junit",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1/2" not in result.output
    assert "2/2  pass^2 1.00" in result.output
    assert "1 scenario: 1 passed, 0 failed, 0 skipped · 2 runs · pass^1 1.00 · pass^2 1.00" in (
        result.output
    )
    xmlschema.XMLSchema(SCHEMA).validate(report)
    root = ET.parse(report).getroot()
    assert [root.get(k) for k in ("tests", "failures", "errors")] == ["2", "0", "0"]
    names = [c.get("name") for c in root.iter("testcase")]
    assert names == ["order status by number [run 1/2]", "order status by number [run 2/2]"]
    assert {c.get("classname") for c in root.iter("testcase")} == {"smoke"}


@pytest.mark.parametrize("run", [[], ["run"]])
def test_a_file_that_does_not_load_exits_2(tmp_path: Path, run: list[str]) -> None:
    bad = tmp_path / "bad.scenarios.yaml"
    bad.write_text(
        "agent: agent.py\nscenarios:\n  - name: x\n    steps:\n      - customer: hi\n"
        "        expect: {replies_contains: oops}\n  - steps: []\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["test", *run, str(bad)])
    assert result.exit_code == 2, result.output
    problems = result.stderr.strip().splitlines()
    assert len(problems) >= 2
    assert any(p.startswith(f"{bad}:3: ") and "replies_contains" in p for p in problems)
    assert any(p.startswith(f"{bad}:7: ") for p in problems)
    assert "scenarios:" not in result.stdout  # nothing ran


def test_no_files_or_unknown_scenario_exit_2(tmp_path: Path, smoke: Path) -> None:
    missing = runner.invoke(app, ["test", str(tmp_path / "missing.scenarios.yaml")])
    assert missing.exit_code == 2
    assert "cannot be read" in missing.stderr
    (tmp_path / "folder").mkdir()
    empty = runner.invoke(app, ["test", str(tmp_path / "folder")])
    assert empty.exit_code == 2
    assert "no scenario files" in empty.stderr
    unknown = runner.invoke(app, ["test", str(smoke), "-k", "no such scenario"])
    assert unknown.exit_code == 2
    assert "no scenario named 'no such scenario'" in unknown.stderr


def test_help_of_the_group_and_of_run() -> None:
    group = runner.invoke(app, ["test", "--help"])
    assert group.exit_code == 0
    assert "run" in group.output
    run = runner.invoke(app, ["test", "run", "--help"])
    assert run.exit_code == 0
    for option in ("--repeat", "--scenario", "--junit", "--offline", "--quiet"):
        assert option in run.output


def test_the_sample_file_loads_and_is_not_collected_by_pytest() -> None:
    from tactful.scenarios import load_suite
    from tactful_pytest import is_scenario_file

    assert load_suite(SMOKE).agent_path().is_file()
    assert not is_scenario_file(SMOKE)
    assert is_scenario_file(Path("orders.scenarios.yaml"))
    assert is_scenario_file(Path("orders.scenarios.yml"))
