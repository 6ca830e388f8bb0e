"""What ``tactful chat`` prints under a reply, from the turn's trace: each guideline that
matched, whether it shaped the reply and, when it did not, why; the relationship steps no
matched line explains; the journeys' steps; where the turn degraded; what the turn cost."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from tactful.client import TraceInfo
from tactful.domain import (
    MatchMethod,
    MatchVerdict,
    ReplyMethod,
    ResolutionEffect,
    ResolutionRule,
    ResolutionStep,
    TemplateConsidered,
)

SHAPED, UNUSED, WHY = "✓", "○", "↳"
SIGNS = {ResolutionEffect.ADDED: "+", ResolutionEffect.REMOVED: "-", ResolutionEffect.CLARIFY: "?"}

# Printed once, when the chat starts.
LEGEND = (
    f"legend: {SHAPED} matched and shaped the reply   {UNUSED} matched, did not ({WHY} why)   "
    "[score] then why it matched\n"
    "        (id) when guidelines share a condition   + - ? a relationship added, removed, "
    "asks which   ↪ journey step [what decided]   ! degraded"
)


def summary(trace: TraceInfo, applied: Collection[str]) -> list[str]:
    """The lines under a reply whose message applied the guidelines ``applied``."""
    labels = _Labels(trace)
    shown = _matched(trace)
    repeated = _repeated(shown.values())
    used = set(applied) | set(trace.composition.applied_guideline_ids)
    lines = [] if shown else ["  no guideline matched"]
    for gid, v in shown.items():
        condition = f"{v.condition} ({gid})" if v.condition.casefold() in repeated else v.condition
        score = f"{v.score:.2f}" if v.score is not None else "-"
        rationale = _added(trace, gid, labels) if v.method is MatchMethod.RESOLUTION else None
        mark = SHAPED if gid in used else UNUSED
        lines.append(f"  {mark} {condition}  [{score}] {rationale or v.rationale}".rstrip())
        if mark == UNUSED:
            lines.append(f"      {WHY} {_why(trace, v, labels)}")
    # Steps about guidelines no line above explains (a guideline a relationship added and
    # removed again, a journey it suppressed), once each.
    steps = []
    for step in trace.resolution:
        if step.guideline_id not in shown:
            because = f" because of {labels.all(step.because)}" if step.because else ""
            what = labels.condition(step.guideline_id)
            sign = SIGNS.get(step.effect, "·")
            steps.append(f"  {sign} {step.effect} by {step.rule}{because}: {what}")
    lines += dict.fromkeys(steps)
    for j in trace.journeys:
        moved = j.label_before != j.label_after and j.label_before
        where = f"{j.label_before} → {j.label_after}" if moved else (j.label_after or "")
        status = f" ({j.status_after})" if j.status_after != "active" else ""
        method = f" [{j.method}]" if j.method else ""
        why = f": {j.rationale}" if j.rationale else ""
        lines.append(f"  ↪ journey {j.title!r} {j.kind} {where}{status}{method}{why}")
    lines += [f"  ! {reason}" for reason in trace.degraded]
    lines.append(f"  {trace.cost()} · trace {trace.id}")
    return lines


class _Labels:
    """Names for ids as a reader knows them: journeys by title, guidelines by condition."""

    def __init__(self, trace: TraceInfo) -> None:
        self.titles = {f"journey:{j.journey_id}": j.title for j in trace.journeys}
        self.conditions = {v.guideline_id: v.condition for v in trace.matches}

    def name(self, gid: str) -> str:
        title = self.titles.get(gid)
        return f"journey {title!r}" if title is not None else gid

    def all(self, ids: Collection[str]) -> str:
        return ", ".join(self.name(i) for i in ids)

    def condition(self, gid: str) -> str:
        return self.conditions.get(gid) or self.name(gid)


def _matched(trace: TraceInfo) -> dict[str, MatchVerdict]:
    """The guidelines that matched, once each, with their latest verdict (a guideline checked
    again after a tool ran keeps its place and shows the later verdict)."""
    latest: dict[str, MatchVerdict] = {}
    ever: set[str] = set()
    for v in trace.matches:
        latest[v.guideline_id] = v
        if v.applies:
            ever.add(v.guideline_id)
    return {gid: v for gid, v in latest.items() if gid in ever}


def _repeated(verdicts: Collection[MatchVerdict]) -> set[str]:
    """Conditions (casefolded) that more than one matched guideline shares."""
    counts = Counter(v.condition.casefold() for v in verdicts)
    return {c for c, n in counts.items() if n > 1}


def _added(trace: TraceInfo, gid: str, labels: _Labels) -> str | None:
    steps = [
        s for s in trace.resolution if s.guideline_id == gid and s.effect is ResolutionEffect.ADDED
    ]
    if not steps:
        return None
    step = steps[-1]
    because = f" because of {labels.all(step.because)}" if step.because else ""
    return f"added by {step.rule}{because}"


def _why(trace: TraceInfo, v: MatchVerdict, labels: _Labels) -> str:
    """Why a guideline that matched did not shape the reply."""
    gid = v.guideline_id
    removed = [
        s
        for s in trace.resolution
        if s.guideline_id == gid and s.effect is not ResolutionEffect.ADDED
    ]
    if removed and gid not in trace.final_guideline_ids:
        return _removal(removed[-1], labels)
    if not v.applies or any(gid in r.no_longer_active for r in trace.composition.reevaluations):
        return "no longer applies once the tool results were in"
    if not v.action:
        return "an observation: it has no action of its own (it can start journeys)"
    if gid not in trace.final_guideline_ids:
        return "not active: it is scoped to a journey that is not under way"
    return _not_applied(trace, gid)


def _removal(step: ResolutionStep, labels: _Labels) -> str:
    who = labels.all(step.because)
    match step.rule:
        case ResolutionRule.PRIORITY:
            return f"suppressed by priority: {who} take(s) priority over it"
        case ResolutionRule.EXCLUSION:
            return f"excluded by {who}"
        case ResolutionRule.NUMERIC_PRIORITY:
            return f"suppressed by numeric priority: {step.detail}"
        case ResolutionRule.DEPENDENCY | ResolutionRule.DEPENDENCY_ANY:
            return f"a dependency is not met: {step.detail}"
        case ResolutionRule.DISAMBIGUATION:
            return f"held back to ask which one is meant: {step.detail}"
        case _:
            return f"{step.effect} by {step.rule}: {step.detail}".rstrip(": ")


def _not_applied(trace: TraceInfo, gid: str) -> str:
    """Active, yet the reply did not apply it: its templates could not be sent, or the reply
    went another way."""
    c = trace.composition
    own = [t for t in [*c.templates, *c.disqualified] if t.guideline_id == gid]
    for t in own:
        if not t.qualified:
            return f"its template {t.id} was disqualified: {_unsendable(t)}"
    ids = {t.id for t in own}
    for d in c.dropped:
        if d.id in ids:
            why = f"missing {', '.join(d.missing_fields)}" if d.missing_fields else d.reason
            return f"its template {d.id} was chosen, then dropped: {why or d.why}"
    if c.method is ReplyMethod.CLARIFICATION:
        return "the reply asks which intent the customer means first"
    if c.method is ReplyMethod.NO_MATCH:
        return f"no template could be sent: the no-match reply went out ({c.reason or 'none fits'})"
    if c.method is ReplyMethod.CANNED and c.canned_response_ids:
        return f"the reply is another guideline's template ({', '.join(c.canned_response_ids)})"
    return "active, but the reply does not say it applied it"


def _unsendable(t: TemplateConsidered) -> str:
    if t.missing_fields:
        return f"missing {', '.join(t.missing_fields)}"
    return t.reason or "it cannot be sent"
