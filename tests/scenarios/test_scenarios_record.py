"""``tactful test record``: a conversation held with the Voltmart example on a real server
(offline tier) is written as a scenario file, which then passes when run; a flagged reply makes
its step fail on exactly that reply. Plus the recorder's pure rules on hand-made sessions."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import typer
import yaml  # type: ignore[import-untyped]
from typer.testing import CliRunner

import tactful
from tactful.agent_files import load_agent_file
from tactful.cli.record import record, record_scenario
from tactful.client import EventInfo, SessionInfo, TactfulClient, TraceInfo, TurnResult
from tactful.domain import Flag
from tactful.errors import ValidationError
from tactful.scenarios import ScenarioOutcome, ScenarioRunner, load_suite
from tactful.scenarios.record import AGENT_PLACEHOLDER, distinctive, generated, record_session

REPO = Path(__file__).resolve().parents[2]
VOLTMART = REPO / "examples" / "voltmart" / "agent.py"
MESSAGES = ["Hello!", "where is my order VM10234568?", "I want to return my headphones"]
PAGE_VIEW = {"page": "/orders", "cart_items": 2}

app = typer.Typer()
app.command()(record)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class Conversation:
    """The live server and the recorded session: Dana greets, asks where an order is (a tool
    call), and asks to return headphones (the return journey starts)."""

    def __init__(self, server: tactful.Server, session_id: str, turns: list[TurnResult]):
        self.server = server
        self.session_id = session_id
        self.turns = turns


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def conversation() -> AsyncIterator[Conversation]:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("VOLTMART_ORDERS_DB", raising=False)
        for name in ("TACTFUL_URL", "TACTFUL_API_KEY"):
            mp.delenv(name, raising=False)
        async with tactful.Server(transient=True, offline=True, port=_free_port()) as server:
            [agent] = await load_agent_file(server, VOLTMART)
            await server.start_http()
            vip = await server.create_tag("vip")
            dana = await server.create_customer("Dana", metadata={"plan": "gold"}, tags=[vip.id])
            async with TactfulClient(server.url) as client:
                session = await client.create_session(agent.id, dana.id)
                turns = [await client.send(session.id, m) for m in MESSAGES[:2]]
                # A custom event from the customer's page: a step, but no turn.
                async with httpx.AsyncClient(base_url=server.url) as http:
                    body = {"kind": "custom", "source": "customer_ui", "data": PAGE_VIEW}
                    posted = await http.post(f"/sessions/{session.id}/events", json=body)
                    assert posted.status_code == 201, posted.text
                turns.append(await client.send(session.id, MESSAGES[2]))
            yield Conversation(server, session.id, turns)


async def _invoke(args: list[str]) -> Any:
    """The command in a thread of its own (it runs its own event loop; the server's goes on)."""
    return await asyncio.to_thread(CliRunner().invoke, app, args)


async def _run(path: Path) -> ScenarioOutcome:
    [outcome] = await ScenarioRunner(offline=True).run_suite(load_suite(path))
    return outcome


def _what(outcome: ScenarioOutcome) -> list[list[tuple[str, bool | None]]]:
    [run] = outcome.runs
    assert run.error is None, run.error
    return [[(c.what, c.ok) for c in step.checks] for step in run.steps]


@pytest.mark.embedder
@pytest.mark.asyncio(loop_scope="module")
async def test_a_recorded_session_replays_and_passes(
    conversation: Conversation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    greeting, status, returning = (t.text for t in conversation.turns)
    assert greeting.startswith("Hi Dana!")
    assert "VM10234568" in status and "VM10234568" in returning
    # The agent path is given from the working folder; the file says it from its own folder.
    monkeypatch.chdir(REPO)
    out = tmp_path / "recorded" / "dana.scenarios.yaml"
    args = [conversation.session_id, "-o", str(out), "--agent", "examples/voltmart/agent.py"]
    result = await _invoke([*args, "--url", conversation.server.url])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith(
        f"# Recorded by `tactful test record` from session {conversation.session_id}"
    )

    data = yaml.safe_load(text)
    assert (out.parent / data["agent"]).resolve() == VOLTMART
    assert data["agent_id"] == "voltmart-support"
    assert data["customer"] == {"name": "Dana", "metadata": {"plan": "gold"}, "tags": ["vip"]}
    assert data["real_tools"] == []
    # One stub for the two calls of order_status with the same order number.
    [stub] = data["tools"]
    assert (stub["tool"], stub["when"]) == ("voltmart:order_status", {"order_id": "VM10234568"})
    assert stub["result"]["status"] == "shipped" and stub["fields"]["status"] == "shipped"

    [scenario] = data["scenarios"]
    assert scenario["name"] == f"session {conversation.session_id}"
    hello, where, event, wants = scenario["steps"]
    assert hello == {
        "customer": "Hello!",
        "expect": {
            "matched": ["vm-greeting"],
            "no_tools": True,
            "canned": ["vm-greeting-1"],
            "reply_contains": [greeting],
        },
    }
    assert where["customer"] == MESSAGES[1]
    assert where["expect"]["tools"] == [
        {"tool": "voltmart:order_status", "arguments": {"order_id": "VM10234568"}}
    ]
    assert "vm-orders-track-lookup" in where["expect"]["matched"]
    assert where["expect"]["canned"] == ["vm-orders-track-lookup-1"]
    assert where["expect"]["reply_contains"] == [status]
    assert event == {"event": {"data": PAGE_VIEW}}
    assert wants["expect"]["journey"] == {
        "id": "vm-journey-return",
        "state": "Explain that a return can start once the order is delivered",
        "status": "active",
    }
    assert "journey:vm-journey-return" in wants["expect"]["matched"]
    assert wants["expect"]["reply_contains"] == [returning]
    # The step's reply has a stable id (Voltmart names its journeys' replies); its state has
    # an id a fresh server makes anew, so it is named by what it does instead.
    assert wants["expect"]["canned"] == ["vm-return-not-delivered-1"]
    assert "# journey vm-journey-return: its state" not in text

    checks = _what(await _run(out))
    assert [len(step) for step in checks] == [4, 6, 0, 6]
    assert all(ok for step in checks for _, ok in step), checks
    assert (
        "journey vm-journey-return at Explain that a return can start once the order is "
        "delivered (active)",
        True,
    ) in checks[3]
    assert ("called voltmart:order_status(order_id='VM10234568')", True) in checks[1]


@pytest.mark.embedder
@pytest.mark.asyncio(loop_scope="module")
async def test_a_flagged_reply_becomes_a_step_that_fails_on_that_reply(
    conversation: Conversation, tmp_path: Path
) -> None:
    flagged = conversation.turns[2].replies[0]
    note = "She wants to return headphones, not the monitor of VM10234568: ask which order."
    async with TactfulClient(conversation.server.url) as client:
        flag = await client.create_flag(conversation.session_id, flagged.id, note)
        try:
            text = await record_scenario(client, conversation.session_id, str(VOLTMART))
        finally:
            await client.delete_flag(flag.id)
    out = tmp_path / "flagged.scenarios.yaml"
    out.write_text(text)
    assert f"# FLAGGED reply (flag {flag.id}): She wants to return headphones" in text
    wants = yaml.safe_load(text)["scenarios"][0]["steps"][3]["expect"]
    assert wants["reply_not_contains"] == [flagged.message]
    assert wants["criteria"] == [note]
    assert "reply_contains" not in wants and "canned" not in wants

    outcome = await _run(out)
    assert not outcome.passed
    [run] = outcome.runs
    failed = [(step.turn.index, c.what) for step in run.steps for c in step.failed]
    assert failed == [(4, f"reply does not contain {flagged.message!r}")]
    [criterion] = [c for c in run.steps[3].checks if c.ok is None]
    assert criterion.what == f"criterion: {note}"
    assert "no model is configured" in criterion.detail
    # The steps before it still pass as recorded.
    assert all(not step.failed for step in run.steps[:3])


@pytest.mark.embedder
@pytest.mark.asyncio(loop_scope="module")
async def test_without_an_agent_path_the_file_says_to_edit_it(
    conversation: Conversation, tmp_path: Path
) -> None:
    result = await _invoke([conversation.session_id, "--url", conversation.server.url])
    assert result.exit_code == 0, result.output
    assert "# EDIT: the agent file or definitions folder, relative to this file" in result.stdout
    out = tmp_path / "todo.scenarios.yaml"
    out.write_text(result.stdout)
    suite = load_suite(out)
    assert suite.agent == AGENT_PLACEHOLDER
    assert [s.customer for s in suite.scenarios[0].steps] == [*MESSAGES[:2], None, MESSAGES[2]]


@pytest.mark.embedder
@pytest.mark.asyncio(loop_scope="module")
async def test_an_unknown_session_is_one_red_line_and_exit_1(conversation: Conversation) -> None:
    result = await _invoke(["no-such-session", "--url", conversation.server.url])
    assert result.exit_code == 1
    assert result.output == "Session 'no-such-session' was not found\n"


# -- the recorder's rules, on hand-made records -------------------------------------------------

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def _event(offset: int, kind: str, source: str, data: Any, trace: str = "t1") -> EventInfo:
    return EventInfo(
        id=f"e{offset}",
        offset=offset,
        kind=kind,
        source=source,
        trace_id=trace,
        data=data,
        creation_utc=T0,
    )


def _message(offset: int, source: str, text: str, trace: str = "t1") -> EventInfo:
    return _event(offset, "message", source, {"message": text}, trace)


def _trace(trace_id: str, offset: int, **composition: Any) -> TraceInfo:
    return TraceInfo.model_validate(
        {
            "id": trace_id,
            "session_id": "s1",
            "agent_id": "a1",
            "customer_event_offset": offset,
            "final_guideline_ids": ["refunds", "Xy12abCD90"],
            "composition": composition,
        }
    )


def test_a_model_written_reply_is_expected_to_repeat_a_distinctive_piece() -> None:
    call = {
        "tool_id": "shop:refund",
        "arguments": {"order": "A-1"},
        "result": {"data": {"tx": "TX-99812"}, "fields": {}},
        "started": T0.isoformat(),
        "ended": T0.isoformat(),
    }
    events = [
        _message(0, "customer", "where is my refund?"),
        _event(1, "tool", "ai_agent", {"tool_calls": [call]}),
        _message(2, "ai_agent", "Your refund went out today, reference TX-99812. Anything else?"),
        _message(3, "customer", "can I talk to someone?", trace="t2"),
    ]
    traces = [
        _trace("t1", 0, method="fluid"),
        _trace("t2", 3, method="fluid", handoff="shop:to_person"),
    ]
    session = SessionInfo(id="s1", agent_id="a1", customer_id="guest")
    recording = record_session(session, events, traces)
    document = recording.document
    assert "customer" not in document  # the guest
    assert document["time"] == T0.isoformat()
    assert recording.agent_placeholder and document["agent"] == AGENT_PLACEHOLDER
    refund, person = document["scenarios"][0]["steps"]
    assert refund["expect"] == {
        "matched": ["refunds"],
        "tools": [{"tool": "shop:refund", "arguments": {"order": "A-1"}}],
        "reply_contains": ["TX-99812"],
    }
    assert person["expect"] == {
        "matched": ["refunds"],
        "no_tools": True,
        "handoff": True,
        "no_reply": True,
    }
    assert recording.notes[0] == [
        "not checked, their ids were made by the server (a fresh server makes others): Xy12abCD90"
    ]
    assert document["tools"] == [
        {"tool": "shop:refund", "when": {"order": "A-1"}, "result": {"tx": "TX-99812"}}
    ]


def test_distinctive_pieces_and_generated_ids() -> None:
    assert distinctive("Your total is $42.50 today.") == "$42.50"
    assert distinctive("Certainly, happy to help with that.") == "Certainly"
    assert distinctive("Ok.") == "Ok."
    assert generated("H2iixHjjYq") and generated("QgUpFUeCTB")
    assert not generated("vm-greeting-1") and not generated("greeting01")
    assert not generated("journey-0123456789ab")


def test_a_flag_without_a_note_still_fails_its_reply_and_notes_are_comments() -> None:
    events = [
        _message(0, "customer", "hi"),
        _message(1, "ai_agent", "Hello there."),
        _message(2, "ai_agent", "How can I help?"),
    ]
    flag = Flag(session_id="s1", event_id="e2", agent_id="a1", note="")
    session = SessionInfo(id="s1", agent_id="a1", customer_id="guest")
    recording = record_session(
        session, events, [_trace("t1", 0, method="canned")], [flag], agent="agent.py"
    )
    [step] = recording.document["scenarios"][0]["steps"]
    assert step["expect"]["reply_not_contains"] == ["How can I help?"]
    assert "criteria" not in step["expect"] and "reply_contains" not in step["expect"]
    assert recording.notes[0][0] == f"FLAGGED reply (flag {flag.id}) (no note)"


def test_a_session_without_a_customer_step_is_refused() -> None:
    session = SessionInfo(id="s1", agent_id="a1", customer_id="guest")
    with pytest.raises(ValidationError, match="session s1 has no customer message to record"):
        record_session(session, [_message(0, "ai_agent", "Welcome!")], [])
