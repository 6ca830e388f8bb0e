"""The admin commands as real processes against one ``tactful serve --example``: tables,
the session timeline with its trace summaries, ``--json``, and one-line failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_process import Served, free_port, run, start_serve

from tactful.client import TactfulClient, TurnResult

AGENT = "voltmart-support"
QUESTION = "Where is my order?"


@dataclass
class Voltmart:
    served: Served
    session_id: str
    turn: TurnResult
    cwd: Path

    def run(self, *args: str) -> tuple[int, str, str]:
        result = run([*args, "--url", self.served.url], self.cwd)
        return result.returncode, result.stdout, result.stderr


@pytest.fixture(scope="module")
def voltmart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Voltmart]:
    """The example served, with one short conversation held over HTTP."""
    cwd = tmp_path_factory.mktemp("admin")
    served = start_serve(["--transient", "--example"], cwd)

    async def converse() -> tuple[str, TurnResult]:
        async with TactfulClient(served.url) as client:
            session = await client.create_session(AGENT, title="admin test")
            return session.id, await client.send(session.id, QUESTION, timeout=30)

    try:
        session_id, turn = asyncio.run(converse())
        yield Voltmart(served, session_id, turn, cwd)
    finally:
        served.stop()


def test_agents_list_and_show(voltmart: Voltmart) -> None:
    code, out, err = voltmart.run("agents", "list")
    assert (code, err) == (0, "")
    assert "Voltmart Support" in out and AGENT in out

    code, out, _ = voltmart.run("agents", "show", AGENT, "--json")
    assert code == 0
    agent = json.loads(out)
    assert (agent["id"], agent["name"]) == (AGENT, "Voltmart Support")
    # The API's whole object, not only what the client types.
    assert agent["no_match_reply"].startswith("Sorry")


def test_guidelines_list_and_show_with_relationships_and_tools(voltmart: Voltmart) -> None:
    code, out, err = voltmart.run("guidelines", "list", "--agent", AGENT)
    assert (code, err) == (0, "")
    assert "The customer thanks the agent" in out
    assert "vm-orders-track" in out

    code, out, _ = voltmart.run("guidelines", "show", "vm-orders-track", "--agent", AGENT)
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("action") and "live tracking" in line for line in lines)
    relationships, tools = lines.index("relationships"), lines.index("tools")
    assert "vm-orders-track-lookup (" in lines[relationships + 1]
    assert "—priority→ vm-orders-track (" in lines[relationships + 1]
    assert lines[tools + 1] == "  voltmart:order_status"

    code, out, _ = voltmart.run("guidelines", "show", "vm-orders-track", "--json")
    detail = json.loads(out)
    assert detail["guideline"]["id"] == "vm-orders-track"
    assert [a["tool_id"]["tool_name"] for a in detail["tool_associations"]] == ["order_status"]


def test_journeys_list_and_show_the_graph(voltmart: Voltmart) -> None:
    code, out, _ = voltmart.run("journeys", "list", "--agent", AGENT)
    assert code == 0
    assert "Return an item" in out and "vm-journey-return" in out

    code, out, _ = voltmart.run("journeys", "show", "vm-journey-return")
    assert code == 0
    lines = out.splitlines()
    states = lines[lines.index("states") + 1 :]
    assert states[0].startswith("  s0  ") and states[0].endswith("(initial)")
    ask = next(i for i, line in enumerate(states) if "Ask for the order number" in line)
    # Under the state, indented, the transition that leaves it.
    assert states[ask + 1] == "      → s2  when The customer gave the order number"
    assert states[ask + 2].startswith("  s2  tool voltmart:order_status  [")

    code, out, _ = voltmart.run("journeys", "show", "vm-journey-return", "--json")
    shown = json.loads(out)
    assert shown["journey"]["title"] == "Return an item"
    assert shown["graph"]["initial_state_id"] == shown["graph"]["states"][0]["id"]


def test_sessions_list_and_the_timeline_with_trace_summaries(voltmart: Voltmart) -> None:
    code, out, _ = voltmart.run("sessions", "list", "--agent", AGENT)
    assert code == 0
    assert voltmart.session_id in out and "admin test" in out
    code, out, _ = voltmart.run("sessions", "list", "--customer", "nobody")
    assert voltmart.session_id not in out and "0 session(s)" in out

    code, out, err = voltmart.run("sessions", "show", voltmart.session_id)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    asked = lines.index(f"customer > {QUESTION}")
    reply = lines.index(f"Voltmart Support > {voltmart.turn.text}")
    assert asked < reply
    # Under the reply, the chat's summary: the guideline that shaped it, then the cost line.
    assert lines[reply + 1].startswith("  ✓ The customer wants to know where their order is")
    assert any(line.endswith(f"· trace {voltmart.turn.trace_id}") for line in lines[reply + 1 :])
    assert not any("typing" in line or "ready" in line for line in lines)

    code, out, _ = voltmart.run("sessions", "show", voltmart.session_id, "--json")
    shown = json.loads(out)
    assert shown["session"]["id"] == voltmart.session_id
    assert [t["id"] for t in shown["traces"]] == [voltmart.turn.trace_id]
    assert QUESTION in [e["data"].get("message") for e in shown["events"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["agents", "show", "nope"], "Agent 'nope' was not found"),
        (["guidelines", "list", "--agent", "nope"], "Agent 'nope' was not found"),
        (["journeys", "show", "nope", "--json"], "Journey 'nope' was not found"),
        (["sessions", "show", "nope"], "Session 'nope' was not found"),
    ],
)
def test_an_unknown_id_is_one_line_and_exit_1(
    voltmart: Voltmart, args: list[str], message: str
) -> None:
    code, out, err = voltmart.run(*args)
    assert code == 1
    assert err.strip() == message
    assert out == ""


def test_unreachable_server_is_one_line_and_exit_1(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run(["agents", "list", "--json"], tmp_path, extra_env={"TACTFUL_URL": url})
    assert result.returncode == 1
    assert result.stderr.strip() == f"cannot reach tactful at {url}: is `tactful serve` running?"
    assert result.stdout == ""


def test_evaluate_reports_an_agents_duplicate_guidelines(voltmart: Voltmart) -> None:
    async def define() -> str:
        async with TactfulClient(voltmart.served.url) as client:
            agent = await client._json("POST", "/agents", json={"name": "Evaluated"})
            rule = {"condition": "The customer asks for a refund", "action": "Offer a refund"}
            for _ in range(2):
                await client._json(
                    "POST", "/guidelines", json={**rule, "tags": [f"agent:{agent['id']}"]}
                )
            return str(agent["id"])

    agent_id = asyncio.run(define())
    code, out, err = voltmart.run("evaluate", "--agent", "Evaluated")
    assert code == 3, err  # something found
    assert "duplicate" in out and "the same words" in out
    code, out, _ = voltmart.run("evaluate", "--agent", agent_id, "--json")
    assert code == 3
    evaluation = json.loads(out)
    assert evaluation["status"] == "completed" and evaluation["agent_id"] == agent_id
    assert [f["kind"] for f in evaluation["findings"]] == ["duplicate"]


def test_evaluate_of_an_unknown_agent_is_one_red_line(voltmart: Voltmart) -> None:
    code, out, err = voltmart.run("evaluate", "--agent", "nobody")
    assert code == 1 and out == ""
    assert "nobody" in err and "not found" in err
