"""The definitions commands (export, plan, apply, history, rollback) against a live
``tactful serve`` of the shop agent, through Typer's runner; definition files are real YAML
files in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
import yaml
from cli_process import Served, free_port
from click.testing import Result
from typer.testing import CliRunner

from tactful.cli.files import resolve_agent
from tactful.cli.main import app
from tactful.client import AgentInfo
from tactful.definitions.files import dump_document, load_documents

runner = CliRunner()
SHIPPING = (
    "- delete guideline shipping  the customer asks how long shipping or delivery takes"
    " -> give the standard shipping time"
)


def tactful(served: Served, *args: str) -> Result:
    result = runner.invoke(app, [*args, "--url", served.url], env={"COLUMNS": "200"})
    assert "Traceback" not in result.output + result.stderr
    return result


def read(path: Path) -> dict[str, Any]:
    [(_, document)] = load_documents([path])
    return document


def test_export_plan_apply_history_and_rollback(served_shop: Served, tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    exported = tactful(served_shop, "export", "Shopbot", "-o", str(path))
    assert exported.exit_code == 0, exported.stderr
    assert (exported.stdout, exported.stderr.strip()) == ("", f"wrote {path}")
    original = path.read_text()
    assert original.startswith("agent:\n  id: shopbot\n  name: Shopbot\n")

    planned = tactful(served_shop, "plan", str(path), "--check")
    assert (planned.exit_code, planned.stdout) == (0, "Shopbot (shopbot): No changes.\n")

    document = read(path)
    document["guidelines"] = [g for g in document["guidelines"] if g["id"] != "shipping"]
    path.write_text(dump_document(document))
    planned = tactful(served_shop, "plan", str(path), "--check")
    assert planned.exit_code == 1
    assert planned.stdout.splitlines() == [
        "Shopbot (shopbot): 0 to create, 0 to update, 1 to delete",
        SHIPPING,
    ]
    assert tactful(served_shop, "plan", str(path)).exit_code == 0

    applied = tactful(served_shop, "apply", str(path), "--summary", "no shipping talk")
    assert applied.exit_code == 0, applied.stderr
    *shown, last = applied.stdout.splitlines()
    assert shown == planned.stdout.splitlines()
    revision = int(last.removeprefix("revision "))
    assert httpx.get(f"{served_shop.url}/guidelines/shipping").status_code == 404
    assert httpx.get(f"{served_shop.url}/guidelines/returns").status_code == 200

    listed = tactful(served_shop, "history", "--agent", "Shopbot", "--limit", "1")
    assert listed.exit_code == 0
    [header, newest, count] = listed.stdout.splitlines()
    assert header.split() == ["Revision", "When", "Who", "Summary", "Agents"]
    assert newest.split()[0] == str(revision)
    assert "no shipping talk" in newest and newest.endswith("shopbot")
    assert count == "1 revision(s)"
    revisions = json.loads(tactful(served_shop, "history", "--json").stdout)
    assert revisions[0]["id"] == revision
    assert revisions[0]["changes"] == [
        {"action": "deleted", "kind": "guidelines", "id": "shipping"}
    ]
    before = revisions[1]["id"]

    rolled = tactful(served_shop, "rollback", str(before), "--agent", "Shopbot")
    assert rolled.exit_code == 0, rolled.stderr
    lines = rolled.stdout.splitlines()
    assert lines[0] == "Shopbot (shopbot): 1 to create, 0 to update, 0 to delete"
    assert lines[1].startswith("+ create guideline shipping  the customer asks how long")
    assert int(lines[-1].removeprefix("revision ")) > revision
    assert httpx.get(f"{served_shop.url}/guidelines/shipping").status_code == 200
    assert tactful(served_shop, "export", "shopbot").stdout == original
    # As of the revision of the apply, the guideline is not there.
    as_of = tactful(served_shop, "export", "shopbot", "--revision", str(revision)).stdout
    assert "id: shipping\n" not in as_of and "id: returns\n" in as_of


def test_a_folder_export_plans_no_changes_and_holds_the_file_export(
    served_shop: Served, tmp_path: Path
) -> None:
    folder = tmp_path / "shop"
    exported = tactful(served_shop, "export", "shopbot", "--folder", str(folder))
    assert exported.exit_code == 0, exported.stderr
    assert exported.stderr.strip().endswith(f"files in {folder}")
    assert {p.name for p in folder.iterdir()} >= {
        "agent.yaml",
        "canned_responses.yaml",
        "guidelines.yaml",
    }
    printed = tactful(served_shop, "export", "shopbot").stdout
    assert read(folder) == yaml.safe_load(printed)

    planned = tactful(served_shop, "plan", str(folder), "--check", "--json")
    assert planned.exit_code == 0
    assert json.loads(planned.stdout) == [
        {"agent_id": "shopbot", "agent_name": "Shopbot", "changes": []}
    ]


def test_an_export_over_definitions_keeps_their_code_section(
    served_shop: Served, tmp_path: Path
) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text("code: [tools.py]\nagent: {id: shopbot, name: Shopbot}\n")
    assert tactful(served_shop, "export", "shopbot", "-o", str(path)).exit_code == 0
    assert path.read_text().startswith("code:\n  - tools.py\nagent:\n  id: shopbot\n")
    assert read(path)["guidelines"]

    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "agent.yaml").write_text("agent: {name: Shopbot}\ncode: [a.py, b.py]\n")
    assert tactful(served_shop, "export", "shopbot", "--folder", str(folder)).exit_code == 0
    assert read(folder)["code"] == ["a.py", "b.py"]
    assert (folder / "code.yaml").is_file()
    assert "code" not in yaml.safe_load((folder / "agent.yaml").read_text())


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text("agent:\n  name: Shop\nguidelines:\n  - condition: 'open\n")
    # The files are read before anything is sent: no server needed.
    result = runner.invoke(app, ["plan", str(path), "--url", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{path}:5:1: not valid YAML: found unexpected end of stream")
    assert result.stdout == ""


def test_every_problem_of_a_document_is_a_line_and_nothing_is_applied(
    served_shop: Served, tmp_path: Path
) -> None:
    desk = tmp_path / "desk.yaml"
    desk.write_text("agent: {id: desk, name: Help desk}\nguidelines:\n  - condition: hi\n")
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "agent.yaml").write_text("agent:\n  id: broken\n  name: Broken\n")
    (folder / "guidelines.yaml").write_text(
        "guidelines:\n  - action: no condition\n\n  - condition: 3\n    action: x\n"
    )
    (folder / "tools.yaml").write_text(
        "guidelines:\n  - condition: c\n    action: a\n    tools: [nowhere:nothing]\n"
    )

    for command in ("plan", "apply"):
        result = tactful(served_shop, command, str(desk), str(folder))
        assert result.exit_code == 2
        assert result.stderr.splitlines() == [
            f"{folder / 'guidelines.yaml'}:2: guidelines[0].condition: Field required",
            f"{folder / 'guidelines.yaml'}:4: guidelines[1].condition: Input should be a valid"
            " string",
        ]
    assert httpx.get(f"{served_shop.url}/agents/desk").status_code == 404

    (folder / "guidelines.yaml").unlink()
    result = tactful(served_shop, "apply", str(folder))
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{folder}: ") and "nowhere:nothing" in line
    assert httpx.get(f"{served_shop.url}/agents/broken").status_code == 404


def test_failures_are_one_line(served_shop: Served, tmp_path: Path) -> None:
    result = tactful(served_shop, "export", "nope")
    assert (result.exit_code, result.stderr.strip()) == (1, "Agent 'nope' was not found")
    result = tactful(served_shop, "export", "shopbot", "-o", "a.yaml", "--folder", "a")
    assert result.exit_code == 2 and "use either -o FILE or --folder DIR" in result.stderr
    result = tactful(served_shop, "export", "shopbot", "-o", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.strip() == f"{tmp_path} is a folder: write it with --folder {tmp_path}"
    result = tactful(served_shop, "plan", str(tmp_path / "missing.yaml"))
    assert (result.exit_code, result.stderr.strip()) == (
        2,
        f"{tmp_path}/missing.yaml does not exist",
    )
    unreachable = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "a.yaml").write_text("agent: {name: A}\n")
    for check, code in ((False, 1), (True, 2)):
        args = ["plan", str(tmp_path / "a.yaml"), "--url", unreachable]
        result = runner.invoke(app, args + ["--check"] * check)
        assert result.exit_code == code
        assert (
            result.stderr.strip()
            == f"cannot reach tactful at {unreachable}: is `tactful serve` running?"
        )


def test_an_agent_is_named_by_its_id_or_its_name(capsys: pytest.CaptureFixture[str]) -> None:
    agents = [
        AgentInfo(id="a1", name="Support"),
        AgentInfo(id="a2", name="Sales"),
        AgentInfo(id="a3", name="sales"),
        AgentInfo(id="Support", name="Other"),
    ]
    assert resolve_agent(agents, "a2") == "a2"
    assert resolve_agent(agents, "Support") == "Support"  # an id first
    assert resolve_agent(agents, "sales") == "a3"  # exactly, before case aside
    assert resolve_agent(agents, "gone") == "gone"  # the server may know it
    with pytest.raises(typer.Exit):
        resolve_agent(agents, "SALES")
    assert (
        capsys.readouterr().err.strip() == "2 agents are named 'SALES' (a2, a3): give the id of one"
    )
