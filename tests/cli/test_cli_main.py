"""Flags, version and start-up failures, in-process through Typer's runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_process import SHOP_AGENT, free_port
from typer.testing import CliRunner

import tactful
from tactful.cli.main import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"tactful {tactful.__version__}"


def test_no_command_shows_help() -> None:
    result = runner.invoke(app, [])
    for command in ("serve", "chat", "version"):
        assert command in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--port", "0"], "Invalid value"),
        (["serve", "--port", "eighty"], "Invalid value"),
        (["serve", "--bogus"], "No such option"),
        (["chat", "--example"], "only applies with --in-process"),
        (["chat", "--transient"], "only applies with --in-process"),
        (["chat", "--in-process", "--url", "http://x"], "either --url or --in-process"),
    ],
)
def test_bad_flags_are_one_usage_error(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def _fails_with_one_line(args: list[str], expected: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    line = result.stderr.strip()
    assert "\n" not in line
    assert expected in line
    return line


def test_missing_agent_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    _fails_with_one_line(
        ["serve", "--transient", "--port", str(free_port()), "--agent", str(missing)],
        f"agent file {missing} does not exist",
    )


def test_missing_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # As if installed somewhere without the examples folder and without the bundled copy.
    monkeypatch.setattr(tactful, "__file__", str(tmp_path / "a" / "b" / "tactful" / "__init__.py"))
    _fails_with_one_line(
        ["serve", "--transient", "--port", str(free_port()), "--example"],
        "the bundled Voltmart example is missing",
    )


def test_data_folder_that_cannot_be_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TACTFUL_MODEL_PROVIDER", "offline")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    _fails_with_one_line(
        ["serve", "--port", str(free_port()), "--data-dir", str(blocker / "data")],
        f"cannot create the data folder {blocker / 'data'}",
    )


def test_invalid_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TACTFUL_OFFLINE_MATCH_THRESHOLD", "2")
    _fails_with_one_line(["serve", "--port", str(free_port())], "invalid settings")


def test_agent_file_without_define(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TACTFUL_MODEL_PROVIDER", "offline")
    path = tmp_path / "agent.py"
    path.write_text("X = 1\n")
    _fails_with_one_line(
        ["serve", "--transient", "--port", str(free_port()), "--agent", str(path)],
        "defines no `async def define(server) -> tactful.Agent`",
    )


def test_agent_file_whose_define_fails_points_at_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TACTFUL_MODEL_PROVIDER", "offline")
    path = tmp_path / "agent.py"
    path.write_text("async def define(server):\n    raise KeyError('oops')\n")
    line = _fails_with_one_line(
        ["serve", "--transient", "--port", str(free_port()), "--agent", str(path)],
        f"define() in {path}:2 failed: KeyError",
    )
    assert "oops" in line


def test_agent_file_that_does_not_import(tmp_path: Path) -> None:
    path = tmp_path / "agent.py"
    path.write_text("def define(server:\n")
    _fails_with_one_line(
        ["chat", "--in-process", "--transient", "--agent-file", str(path)],
        f"cannot import {path}:1: SyntaxError",
    )


def test_in_process_chat_picks_the_agent_by_name_or_says_which_exist(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TACTFUL_MODEL_PROVIDER", "offline")
    base = ["chat", "--in-process", "--transient", "--agent-file", str(SHOP_AGENT)]
    _fails_with_one_line([*base, "--agent", "nobody"], "no agent named or identified 'nobody'")
    result = runner.invoke(app, [*base, "--agent", "shopbot"], input="/quit\n")
    assert result.exit_code == 0, result.output
    assert "chatting with Shopbot" in result.output


def test_in_process_chat_without_agents_says_how_to_add_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TACTFUL_MODEL_PROVIDER", "offline")
    _fails_with_one_line(
        ["chat", "--in-process", "--transient"],
        "there are no agents: add --example or --agent-file FILE",
    )


def test_several_agents_need_a_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TACTFUL_MODEL_PROVIDER", "offline")
    path = tmp_path / "two.py"
    path.write_text(
        "async def define(server):\n"
        "    return [await server.create_agent('Ann'), await server.create_agent('Bob')]\n"
    )
    base = ["chat", "--in-process", "--transient", "--agent-file", str(path)]
    _fails_with_one_line(base, "there are 2 agents: choose one with --agent")
    result = runner.invoke(app, [*base, "--agent", "bob"], input="")
    assert result.exit_code == 0, result.output
    assert "chatting with Bob" in result.output
