"""What the matcher sees of journeys each turn: which are listed, how each is written.

Live runs (active, paused) and the few not-started journeys whose conditions rank near the top
are *listed* in the match prompt with their steps numbered, so the model chooses each one's
next step in the same wave as guideline matching. Guidelines scoped to a journey are checked
only while it is live.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from tactful.domain import Guideline, JourneyRun, RunStatus, StateKind, ToolSpec, journey_tag
from tactful.engine.context import TurnContext
from tactful.engine.journeys.graph import JourneyGraph
from tactful.engine.match import describe_tool
from tactful.engine.retrieve import Ranked

# Not-yet-started journeys listed for the matcher each turn (best-ranked conditions first).
MAX_NEW_LISTED = 3
# ... among those whose best condition ranks in the top FRESH_RANK. A journey whose condition
# matches without being listed starts at its first step.
FRESH_RANK = 20

_KINDS = {
    StateKind.CHAT: "ask",
    StateKind.TOOL: "tool",
    StateKind.FORK: "fork",
    StateKind.END: "end",
    StateKind.JOURNEY: "journey",
}


@dataclass
class Listed:
    """A journey put before the matcher this turn."""

    number: int
    graph: JourneyGraph
    run: JourneyRun | None


@dataclass
class JourneyPlan:
    graphs: dict[str, JourneyGraph]
    listed: list[Listed]
    # Guidelines scoped to live journeys (checked in detail) ...
    scope: set[str]
    # ... and those scoped to other journeys (not checked this turn).
    hidden: set[str]

    def by_number(self, number: int) -> Listed | None:
        for item in self.listed:
            if item.number == number:
                return item
        return None


def scoped(guidelines: Sequence[Guideline], journey_ids: Collection[str]) -> dict[str, str]:
    """Guideline id -> the journey it is scoped to (by tag)."""
    tags = {journey_tag(j): j for j in journey_ids}
    return {g.id: tags[t] for g in guidelines for t in g.tags if t in tags}


def plan(
    ctx: TurnContext, ranked: Sequence[Ranked], *, journey_of: Mapping[str, str] | None = None
) -> JourneyPlan:
    """Which journeys the matcher sees this turn, and which scoped guidelines it checks.

    ``journey_of``: ``scoped(ctx.guidelines, journeys)``, when worked out ahead."""
    graphs = {j.id: JourneyGraph(j) for j in ctx.journeys}
    runs = ctx.progress.runs
    live = [runs[j] for j in graphs if j in runs and runs[j].status is not RunStatus.ENDED]
    # Best rank of each journey's conditions (observations are ranked like any guideline);
    # only those near the top are worth listing with their steps.
    best: dict[str, int] = {}
    rank = {r.guideline.id: i for i, r in enumerate(ranked[:FRESH_RANK])}
    for jid, g in graphs.items():
        values = [rank[c] for c in g.journey.conditions if c in rank]
        if values and min(values) < FRESH_RANK:
            best[jid] = min(values)
    fresh = sorted(
        (j for j in best if j not in {r.journey_id for r in live}),
        key=lambda j: (best[j], j),
    )[:MAX_NEW_LISTED]
    listed: list[Listed] = []
    for run in live:
        if run.status is RunStatus.WAITING:
            continue  # it continues when its sub-journey ends; nothing to decide meanwhile
        listed.append(Listed(len(listed) + 1, graphs[run.journey_id], run))
    for jid in fresh:
        listed.append(Listed(len(listed) + 1, graphs[jid], runs.get(jid)))
    # Scoped guidelines are checked while their journey is live (from the turn after it starts).
    in_play = {r.journey_id for r in live}
    if journey_of is None:
        journey_of = scoped(ctx.guidelines, graphs)
    return JourneyPlan(
        graphs=graphs,
        listed=listed,
        scope={gid for gid, jid in journey_of.items() if jid in in_play},
        hidden={gid for gid, jid in journey_of.items() if jid not in in_play},
    )


def render(
    item: Listed,
    tools: Mapping[str, ToolSpec],
    conditions: Mapping[str, str],
    titles: Mapping[str, str],
) -> str:
    """One journey as the match prompt lists it: title, status, start conditions and steps."""
    g, run = item.graph, item.run
    if run is None or run.status is RunStatus.ENDED:
        status = "not started" if run is None else "completed earlier; not started again"
    else:
        done = [g.numbers[s] for s in run.path[:-1] if s in g.numbers]
        now = g.numbers.get(run.current or "")
        status = f"at step {now}" if now is not None else "at its start"
        if run.status is RunStatus.PAUSED:
            status = "paused " + status
        if done:
            status += f"; steps taken: {', '.join(map(str, dict.fromkeys(done)))}"
    lines = [f'J{item.number}. "{g.journey.title}" [{status}]']
    starts = "; or ".join(_flat(conditions[c]) for c in g.journey.conditions if c in conditions)
    if starts:
        lines.append(f"   starts when: {starts}")
    if g.initial not in g.numbers and (begin := _edges(g, g.initial)):
        lines.append(f"   begins: {begin}")
    for sid, n in g.numbers.items():
        state = g.states[sid]
        if state.kind is StateKind.TOOL:
            text = "; ".join(describe_tool(tools[t]) if t in tools else t for t in state.tools)
        elif state.kind is StateKind.JOURNEY:
            sub = state.sub_journey_id or ""
            text = f'run the journey "{titles.get(sub, sub)}", then go on'
        else:
            text = _flat(state.action or "")
        edges = _edges(g, sid)
        head = f"   {n}. {_KINDS[state.kind]}" + (f": {text}" if text.strip() else "")
        lines.append(head + (f" | {edges}" if edges else ""))
    for n, t in g.exits.items():
        other = titles.get(t.target_journey_id or "", t.target_journey_id or "")
        lines.append(f'   {n}. continue in the journey "{other}"')
    return "\n".join(lines)


def _edges(g: JourneyGraph, sid: str) -> str:
    parts = []
    for t in g.out.get(sid, []):
        to = g.exit_number(t) if t.target_journey_id else g.numbers.get(t.target, "start")
        parts.append(f"-> {to}" + (f" when {_flat(t.condition)}" if t.condition else ""))
    return "; ".join(parts)


def _flat(text: str) -> str:
    """Text that keeps a listing line whole: one line, and no " | " (it separates the edges)."""
    return " ".join(text.split()).replace(" | ", " / ")
