"""Recording a stored session as a scenario file (``tactful test record``): a real conversation
becomes a regression test.

Pure functions from what the REST API answers (the session, its events, its traces, its flags,
its customer) to a scenario document: the customer fixture, a tool stub for every call the
session made (its recorded result), and one scenario with a step per customer message whose
``expect`` is what the agent did in that turn. A reply that staff flagged is expected NOT to
come back, with the flag's note as a criterion: the step fails until the agent is fixed.

``record_session`` builds the document (``Recording``); ``render`` writes it as YAML with the
comments a reader needs (what to edit, which steps are flagged, what was left out and why).
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tactful.client import CustomerInfo, EventInfo, SessionInfo, TraceInfo
from tactful.definitions.files import dump_document
from tactful.domain import GUEST_CUSTOMER_ID, Flag, JourneyStep, SessionControl, ToolCallRecord
from tactful.errors import ValidationError

# What a file gets when no agent path is given: a path no file has, so a run says to edit it.
AGENT_PLACEHOLDER = "EDIT-ME/path/to/agent.py"
COMMENT_WIDTH = 100
CUSTOMER_SOURCES = ("customer", "customer_ui")
# People's messages on the timeline: not replayed (a test has no person), noted in the file.
HUMAN_SOURCES = ("human_agent", "human_agent_on_behalf_of_ai_agent")
# An id the server made (``tactful.domain.common.new_id``: 10 letters and digits, mixed case),
# not the agent file: a fresh server makes another one, so a test cannot name it.
_GENERATED = re.compile(r"(?=.*[A-Z])[A-Za-z0-9]{10}")
# Tokens that tell one reply from another: they carry a digit (order numbers, amounts, dates).
_MARKED = re.compile(r"[$€£]?\w*\d[\w.,:/-]*\w|\d")
_WORD = re.compile(r"[^\W\d_]{5,}")


# A state as traces label it: "5 (Explain the return policy)".
_LABEL = re.compile(r"^(?P<number>\w+) \((?P<what>.+)\)$", re.DOTALL)


def generated(identifier: str) -> bool:
    """Whether ``identifier`` looks made by the server rather than given by the agent's file."""
    return _GENERATED.fullmatch(identifier) is not None


@dataclass
class Recording:
    """A scenario document and the comments that go with it.

    ``header`` are the file's opening comment lines; ``notes[i]`` the lines written above step
    ``i`` of the (only) scenario; ``agent_placeholder`` says the ``agent`` path must be edited.
    """

    document: dict[str, Any]
    header: list[str] = field(default_factory=list)
    notes: dict[int, list[str]] = field(default_factory=dict)
    agent_placeholder: bool = False


@dataclass
class _Turn:
    """A customer message or custom event, and the events that followed it."""

    posted: EventInfo
    events: list[EventInfo] = field(default_factory=list)

    @property
    def replies(self) -> list[EventInfo]:
        return [e for e in self.events if e.source == "ai_agent" and e.message is not None]

    @property
    def tool_calls(self) -> list[ToolCallRecord]:
        calls = []
        for event in self.events:
            if event.kind == "tool" and isinstance(event.data, dict):
                raw: list[Any] = event.data.get("tool_calls") or []
                calls += [ToolCallRecord.model_validate(c) for c in raw]
        return calls


def _turns(events: Sequence[EventInfo]) -> tuple[list[EventInfo], list[_Turn]]:
    """The events before the first customer step, and each customer step with what followed."""
    before: list[EventInfo] = []
    turns: list[_Turn] = []
    for event in sorted(events, key=lambda e: e.offset):
        starts = event.source in CUSTOMER_SOURCES and (
            event.message is not None or event.kind == "custom"
        )
        if starts:
            turns.append(_Turn(event))
        elif turns:
            turns[-1].events.append(event)
        else:
            before.append(event)
    return before, turns


def _trace_of(turn: _Turn, traces: Sequence[TraceInfo]) -> TraceInfo | None:
    ids = [turn.posted.trace_id, *(e.trace_id for e in turn.events)]
    by_id = {t.id: t for t in traces}
    found = next((by_id[i] for i in ids if i and i in by_id), None)
    if found is not None:
        return found
    return next((t for t in traces if t.customer_event_offset == turn.posted.offset), None)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _stub(call: ToolCallRecord) -> dict[str, Any]:
    stub: dict[str, Any] = {"tool": call.tool_id, "when": dict(call.arguments)}
    if call.timed_out:
        stub["timeout"] = True
    elif call.error is not None:
        stub["error"] = call.error
    elif call.result is not None:
        stub["result"] = call.result.data
        if call.result.fields:
            stub["fields"] = dict(call.result.fields)
        if call.result.control is SessionControl.HANDOFF:
            stub["handoff"] = True
    return stub


def _strings(value: Any) -> Iterable[str]:
    """The text and numbers inside a tool result, as the reply could repeat them."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        yield str(value)


def distinctive(reply: str, calls: Sequence[ToolCallRecord] = ()) -> str:
    """A piece of a reply a model-written reply of the same meaning would likely repeat: a
    value the turn's tools returned, else a token with a digit, else its longest word, else the
    whole reply."""
    values = {
        s
        for c in calls
        if c.result is not None
        for s in _strings([c.result.data, c.result.fields])
        if len(s) >= 3
    }
    said = sorted((v for v in values if v in reply), key=lambda v: (-len(v), v))
    if said:
        return said[0]
    marked = [m.group(0) for m in _MARKED.finditer(reply) if len(m.group(0)) >= 3]
    if marked:
        return max(marked, key=len)
    words = _WORD.findall(reply)
    return max(words, key=len) if words else reply


def _journey(steps: Sequence[JourneyStep], notes: list[str]) -> dict[str, Any] | None:
    """Where the turn left the last journey it moved: its id, state and status."""
    if not steps:
        return None
    last = steps[-1]
    expected: dict[str, Any] = {"id": last.journey_id}
    state = last.state_after
    if state is not None and not generated(state):
        expected["state"] = state
    elif state is not None:
        # A fresh server makes another id: the state is named by what it does instead.
        label = _LABEL.match(last.label_after or "")
        if label is not None:
            expected["state"] = label["what"]
        else:
            notes.append(
                f"journey {last.journey_id}: its state {state} is not checked (its id was "
                "made by the server; a fresh server makes another)"
            )
    expected["status"] = str(last.status_after)
    return expected


def _flag_notes(flags: Sequence[Flag]) -> list[str]:
    lines = []
    for flag in flags:
        said = f": {flag.note}" if flag.note else " (no note)"
        lines.append(f"FLAGGED reply (flag {flag.id}){said}")
    lines.append(
        "This step fails until the agent changes: the flagged reply must not come back, and "
        "the note is judged as a criterion when a model is configured. Its other expectations "
        "are what the agent did then: delete those the fix changes."
    )
    return lines


def _expect(
    turn: _Turn, trace: TraceInfo | None, flags: Sequence[Flag], notes: list[str]
) -> dict[str, Any]:
    """What the agent did in ``turn``, as expectations."""
    expect: dict[str, Any] = {}
    left_out: list[str] = []
    if trace is not None:
        matched = list(trace.final_guideline_ids)
        left_out += [g for g in matched if generated(g)]
        kept = [g for g in matched if not generated(g)]
        if kept:
            expect["matched"] = kept
        journey = _journey(trace.journeys, notes)
        if journey is not None:
            expect["journey"] = journey
    calls = turn.tool_calls
    if calls:
        expect["tools"] = [{"tool": c.tool_id, "arguments": dict(c.arguments)} for c in calls]
    else:
        expect["no_tools"] = True
    replies = turn.replies
    flagged_ids = {f.event_id for f in flags}
    if flags:
        notes[:0] = _flag_notes(flags)  # first: the reason the step fails
        expect["reply_not_contains"] = [r.message for r in replies if r.id in flagged_ids]
        criteria = [f.note for f in flags if f.note.strip()]
        if criteria:
            expect["criteria"] = criteria
    elif replies:
        method = trace.composition.method if trace is not None else None
        if method == "canned" and trace is not None:
            canned = trace.composition.canned_response_ids
            left_out += [c for c in canned if generated(c)]
            kept = [c for c in canned if not generated(c)]
            if kept:
                expect["canned"] = kept
        if method in ("canned", "no-match"):
            # Sent as written: the whole text is what the agent says again.
            expect["reply_contains"] = [r.message for r in replies if r.message]
        else:
            expect["reply_contains"] = [distinctive(r.message or "", calls) for r in replies]
    if trace is not None and trace.composition.handoff:
        expect["handoff"] = True
    if not replies:
        expect["no_reply"] = True
    if left_out:
        notes.append(
            "not checked, their ids were made by the server (a fresh server makes others): "
            + ", ".join(left_out)
        )
    return expect


def _customer(customer: CustomerInfo | None, tag_names: dict[str, str]) -> dict[str, Any]:
    if customer is None or customer.id == GUEST_CUSTOMER_ID:
        return {}  # the guest: the fixture's default
    fixture: dict[str, Any] = {"name": customer.name}
    if customer.metadata:
        fixture["metadata"] = dict(customer.metadata)
    if customer.tags:
        fixture["tags"] = [tag_names.get(t, t) for t in customer.tags]
    return fixture


def _variables(traces: Sequence[TraceInfo], customer_id: str) -> dict[str, Any]:
    """The customer's own context variable values the turns read (not those a tool refreshed:
    its tool is stubbed in a test)."""
    values: dict[str, Any] = {}
    for trace in traces:
        for used in trace.composition.variables:
            if used.key == customer_id and not used.refreshed and used.error is None:
                values.setdefault(used.name, used.value)
    return values


def _steps(
    turns: Sequence[_Turn],
    traces: Sequence[TraceInfo],
    by_event: dict[str, list[Flag]],
    recording: Recording,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The scenario's steps, and a stub per distinct tool call (its first answer); notes on
    what a step cannot replay go to ``recording``."""
    stubs: dict[tuple[str, str], dict[str, Any]] = {}
    steps: list[dict[str, Any]] = []
    for index, turn in enumerate(turns):
        notes: list[str] = []
        people = [e for e in turn.events if e.source in HUMAN_SOURCES and e.message is not None]
        if turn.posted.kind == "custom":
            steps.append({"event": {"data": turn.posted.data}})
        else:
            trace = _trace_of(turn, traces)
            flagged = [f for r in turn.replies for f in by_event.get(r.id, [])]
            expect = _expect(turn, trace, flagged, notes)
            steps.append({"customer": turn.posted.message, "expect": expect})
            for call in turn.tool_calls:
                key = (call.tool_id, _canonical(call.arguments))
                if key not in stubs:
                    stubs[key] = _stub(call)
                elif _canonical(stubs[key]) != _canonical(_stub(call)):
                    notes.append(
                        f"{call.tool_id}{call.arguments} answered differently here than "
                        "before; its first answer is the stub"
                    )
        if people:
            notes.append(
                f"{len(people)} message(s) of a person followed this step; a test does not "
                "replay them"
            )
        if notes:
            recording.notes[index] = notes

    return steps, list(stubs.values())


def record_session(
    session: SessionInfo,
    events: Sequence[EventInfo],
    traces: Sequence[TraceInfo],
    flags: Sequence[Flag] = (),
    customer: CustomerInfo | None = None,
    tag_names: dict[str, str] | None = None,
    agent: str | None = None,
    now: datetime | None = None,
) -> Recording:
    """The scenario of ``session``: a step per customer message (custom events as ``event``
    steps), each expecting what the agent did then; flagged replies expected to change.

    Raises ``ValidationError`` for a session without a customer message or event.
    """
    before, turns = _turns(events)
    if not turns:
        raise ValidationError(f"session {session.id} has no customer message to record")
    recording = Recording({}, agent_placeholder=agent is None)
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    recording.header = [
        f"Recorded by `tactful test record` from session {session.id} (agent "
        f"{session.agent_id}) on {when}. The expectations are what the agent did then: keep "
        "those that matter, edit or delete the rest. Tools answer from the stubs under "
        "`tools` (the results recorded) and any other call fails; the run starts at the time "
        "of the first message (`time`)."
    ]
    by_event: dict[str, list[Flag]] = {}
    for flag in sorted(flags, key=lambda f: f.creation_utc):
        by_event.setdefault(flag.event_id, []).append(flag)
    unplaced = [f for e in before for f in by_event.get(e.id, [])]
    if unplaced:
        recording.header.append(
            "Flags on replies before the first customer message are not in a step: "
            + ", ".join(f.id for f in unplaced)
        )

    steps, stubs = _steps(turns, traces, by_event, recording)
    document: dict[str, Any] = {"agent": agent or AGENT_PLACEHOLDER, "agent_id": session.agent_id}
    fixture = _customer(customer, tag_names or {})
    if fixture:
        document["customer"] = fixture
    variables = _variables(traces, session.customer_id)
    if variables:
        document["variables"] = variables
    first = turns[0].posted.creation_utc
    if first is not None:
        document["time"] = first.astimezone(UTC).isoformat()
    document["real_tools"] = []
    document["tools"] = stubs
    scenario: dict[str, Any] = {
        "name": session.title or f"session {session.id}",
        "description": f"Recorded from session {session.id}.",
        "steps": steps,
    }
    document["scenarios"] = [scenario]
    recording.document = document
    return recording


# -- YAML ---------------------------------------------------------------------------------------


def _comment(lines: Iterable[str], indent: str = "") -> str:
    """Comment lines, wrapped; a note's own line breaks are kept."""
    width = COMMENT_WIDTH - len(indent) - 2
    split = [
        wrapped
        for line in lines
        for part in (line.splitlines() or [""])
        for wrapped in (textwrap.wrap(part, width, break_on_hyphens=False) or [""])
    ]
    return "".join(f"{indent}# {line}\n" if line else f"{indent}#\n" for line in split)


def _item(value: dict[str, Any], indent: str) -> str:
    """``value`` as an item of a YAML list, at ``indent``."""
    lines = dump_document(value).splitlines()
    first, rest = lines[0], lines[1:]
    return "".join(
        [f"{indent}- {first}\n", *(f"{indent}  {line}\n" if line else "\n" for line in rest)]
    )


def render(recording: Recording) -> str:
    """The scenario file: the document as YAML, with its comments."""
    document = recording.document
    parts = [_comment(recording.header)]
    for key, value in document.items():
        if key == "scenarios":
            continue
        if key == "agent" and recording.agent_placeholder:
            parts.append(
                _comment(
                    [
                        "EDIT: the agent file or definitions folder, relative to this file",
                        "(`tactful test record --agent FILE` writes it).",
                    ]
                )
            )
        if key == "tools" and value:
            parts.append(_comment(["The tools' recorded answers: a call they do not fit fails."]))
        parts.append(dump_document({key: value}))
    parts.append("scenarios:\n")
    for scenario in document["scenarios"]:
        head = {k: v for k, v in scenario.items() if k != "steps"}
        parts.append(_item(head, ""))
        parts.append("  steps:\n")
        for index, step in enumerate(scenario["steps"]):
            parts.append(_comment(recording.notes.get(index, []), "  "))
            parts.append(_item(step, "  "))
    return "".join(parts)
