"""Checking a turn against a step's ``expect``: one ``Check`` per expectation, each failure
saying what was expected, what happened and, from the trace, why."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tactful.domain import Trace
from tactful.scenarios.spec import Expect, JourneyExpected, ToolCalled
from tactful.scenarios.turns import TurnRecord


@dataclass(frozen=True)
class Check:
    """One expectation's outcome: ``ok`` None means it was skipped (``detail`` says why)."""

    what: str
    ok: bool | None
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.ok is False


def _quote(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def check_turn(expect: Expect, turn: TurnRecord) -> list[Check]:
    """Every expectation of ``expect`` but ``criteria`` (the judge's), checked on ``turn``."""
    checks: list[Check] = []
    checks += [_matched(gid, turn.trace) for gid in expect.matched]
    checks += [_not_matched(gid, turn.trace) for gid in expect.not_matched]
    if expect.journey is not None:
        checks.append(_journey(expect.journey, turn))
    checks += [_called(call, turn) for call in expect.tools]
    if expect.no_tools is True:
        made = [c.tool_id for c in turn.tool_calls]
        checks.append(Check("no tool called", not made, f"called: {', '.join(made)}"))
    elif isinstance(expect.no_tools, list):
        checks += [_not_called(tool, turn) for tool in expect.no_tools]
    checks += [_canned(cid, turn) for cid in expect.canned]
    checks += _reply(expect, turn)
    if expect.handoff is not None:
        done = turn.handed_off
        what = "handed to a person" if expect.handoff else "not handed to a person"
        detail = f"the session is in {turn.mode} mode" + (
            f" (handoff by {turn.trace.composition.handoff})"
            if turn.trace is not None and turn.trace.composition.handoff
            else ""
        )
        checks.append(Check(what, done == expect.handoff, detail))
    if expect.status is not None:
        checks.append(
            Check(f"status {expect.status}", turn.status == expect.status, f"was {turn.status}")
        )
    offered = [c.capability_id for c in turn.trace.composition.capabilities] if turn.trace else []
    shown = f"offered: {', '.join(offered) or 'none'}"
    checks += [Check(f"capability {c} offered", c in offered, shown) for c in expect.offered]
    checks += [
        Check(f"capability {c} not offered", c not in offered, shown) for c in expect.not_offered
    ]
    return checks


# -- guidelines ---------------------------------------------------------------------------------


def _active(trace: Trace | None) -> list[str]:
    return list(trace.final_guideline_ids) if trace is not None else []


def _why_not(gid: str, trace: Trace | None) -> str:
    """Why ``gid`` is not active, as the trace tells it."""
    if trace is None:
        return "the turn left no trace (no turn ran)"
    removed = [s for s in trace.resolution if s.guideline_id == gid and s.effect != "added"]
    if removed:
        step = removed[-1]
        because = f" because of {', '.join(step.because)}" if step.because else ""
        return f"{step.effect} by the {step.rule} rule{because}"
    verdict = next((v for v in trace.matches if v.guideline_id == gid), None)
    if verdict is not None:
        score = f" (score {verdict.score:.2f})" if verdict.score is not None else ""
        said = "applies" if verdict.applies else "does not apply"
        return f"checked{score}: {said}; {verdict.rationale or 'no rationale'}"
    if any(c.guideline_id == gid for c in trace.candidates):
        return "a candidate, but never checked"
    return "not a candidate: retrieval did not put it forward"


def _matched(gid: str, trace: Trace | None) -> Check:
    active = _active(trace)
    detail = (
        "" if gid in active else f"{_why_not(gid, trace)}; active: {', '.join(active) or 'none'}"
    )
    return Check(f"matched {gid}", gid in active, detail)


def _not_matched(gid: str, trace: Trace | None) -> Check:
    active = _active(trace)
    verdict = next((v for v in trace.matches if v.guideline_id == gid), None) if trace else None
    why = f": {verdict.rationale}" if verdict is not None and verdict.rationale else ""
    return Check(f"did not match {gid}", gid not in active, f"it was active{why}")


# -- journeys -----------------------------------------------------------------------------------


def _journey(expected: JourneyExpected, turn: TurnRecord) -> Check:
    what = f"journey {expected.id}" + (f" at {expected.state}" if expected.state else "")
    what += f" ({expected.status})" if expected.status else ""
    run = turn.journeys.get(expected.id)
    if run is None:
        started = ", ".join(turn.journeys) or "none"
        return Check(what, False, f"the journey never started; journeys of the session: {started}")
    problems = []
    name = turn.states.get(expected.id)
    at_state = expected.state is None or expected.state == run.current
    if not at_state and name is not None and expected.state is not None:
        at_state = name.named_by(expected.state)
    if not at_state:
        where = f"{name} [{run.current}]" if name is not None else str(run.current)
        problems.append(f"it is at {where} (path {' → '.join(run.path)})")
    if expected.status is not None and run.status != expected.status:
        problems.append(f"its status is {run.status}")
    step = (
        next((j for j in turn.trace.journeys if j.journey_id == expected.id), None)
        if turn.trace is not None
        else None
    )
    if problems and step is not None:
        problems.append(f"this turn: {step.kind} [{step.method}] {step.rationale}".rstrip())
    return Check(what, not problems, "; ".join(problems))


# -- tools --------------------------------------------------------------------------------------


def _names(tool: str, tool_id: str) -> bool:
    return tool in (tool_id, tool_id.partition(":")[2])


def _plan_note(tool: str, turn: TurnRecord) -> str:
    """What the turn's tool plan says of ``tool`` (blocked, missing arguments, guesses)."""
    if turn.trace is None:
        return ""
    notes = []
    for planned in turn.trace.composition.tool_plan:
        if _names(tool, planned.tool_id):
            if planned.blocked:
                notes.append(f"planned but blocked: {planned.blocked}")
            elif planned.missing:
                notes.append(f"planned, missing {', '.join(planned.missing)}")
    return "; ".join(notes)


def _called(expected: ToolCalled, turn: TurnRecord) -> Check:
    args = ", ".join(f"{k}={v!r}" for k, v in expected.arguments.items())
    what = f"called {expected.tool}({args})"
    calls = [c for c in turn.tool_calls if _names(expected.tool, c.tool_id)]
    fits = [c for c in calls if all(c.arguments.get(k) == v for k, v in expected.arguments.items())]
    if fits:
        return Check(what, True)
    made = "; ".join(f"{c.tool_id}({c.arguments})" for c in turn.tool_calls) or "no tool call"
    note = _plan_note(expected.tool, turn)
    return Check(what, False, f"made: {made}" + (f"; {note}" if note else ""))


def _not_called(tool: str, turn: TurnRecord) -> Check:
    calls = [c for c in turn.tool_calls if _names(tool, c.tool_id)]
    return Check(f"did not call {tool}", not calls, f"called with {[c.arguments for c in calls]}")


# -- the reply ----------------------------------------------------------------------------------


def _canned(cid: str, turn: TurnRecord) -> Check:
    trace = turn.trace
    sent = trace.composition.canned_response_ids if trace is not None else []
    method = trace.composition.method if trace is not None else None
    detail = f"sent: {', '.join(sent) or 'none'} (reply written {method})"
    if cid not in sent and trace is not None:
        out = next((t for t in trace.composition.disqualified if t.id == cid), None)
        if out is not None:
            detail += f"; {cid} was disqualified: {out.reason}"
    return Check(f"canned response {cid}", cid in sent, detail)


def _reply(expect: Expect, turn: TurnRecord) -> list[Check]:
    reply = turn.reply
    said = f"the reply: {_quote(reply)}" if turn.replies else "there was no reply"
    checks = [
        Check(
            f"reply contains {text!r}",
            bool(turn.replies) and text.casefold() in reply.casefold(),
            said,
        )
        for text in expect.reply_contains
    ]
    checks += [
        Check(f"reply matches /{p}/", bool(turn.replies) and re.search(p, reply) is not None, said)
        for p in expect.reply_matches
    ]
    checks += [
        Check(f"reply does not contain {text!r}", text.casefold() not in reply.casefold(), said)
        for text in expect.reply_not_contains
    ]
    if expect.no_reply:
        checks.append(Check("no reply", not turn.replies, said))
    return checks
