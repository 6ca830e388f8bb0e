"""Stage 5's outcome as the later stages take it: the guidelines resolution made active and the
journeys followed, as matches in the resolution's order (``resolved_matches``)."""

from __future__ import annotations

from collections.abc import Sequence

from tactful.domain import MatchMethod, MatchVerdict, Trace
from tactful.engine.context import TurnContext
from tactful.engine.journeys import JourneyOutcome
from tactful.engine.match import Match
from tactful.engine.resolve import Resolution
from tactful.engine.retrieve import Ranked


def resolved_matches(
    ctx: TurnContext,
    resolution: Resolution,
    ranked: list[Ranked],
    verdicts: list[MatchVerdict],
    moved: JourneyOutcome,
    trace: Trace,
    *,
    journeys: set[str],
) -> list[Match]:
    """The active guidelines and followed journeys, as matches, in the resolution's order; a
    guideline a relationship activated gets a verdict saying so (and it goes in the trace).
    ``journeys``: the synthetic guidelines resolution saw (some may have been suppressed)."""
    projected = {m.ranked.guideline.id: m for m in moved.projected.values()}
    ranked_by_id = _ranked_of(ranked, set(resolution.active) - journeys)
    verdict_by_id = {v.guideline_id: v for v in verdicts}
    matched = []
    for gid in resolution.active:
        if gid in journeys:
            if gid in projected:
                matched.append(projected[gid])
                trace.matches.append(projected[gid].verdict)
            continue
        g = ctx.guideline(gid)
        score = resolution.scores.get(gid, 0.0)
        verdict = verdict_by_id.get(gid) or MatchVerdict(
            guideline_id=gid,
            condition=g.condition,
            action=g.action,
            applies=True,
            score=score,
            rationale="activated by a relationship (see resolution)",
            method=MatchMethod.RESOLUTION,
        )
        if gid not in verdict_by_id:
            trace.matches.append(verdict)  # so the trace names what a relationship added
        matched.append(Match(ranked_by_id.get(gid) or Ranked(g, score, score), verdict))
    return matched


def _ranked_of(ranked: Sequence[Ranked], wanted: set[str]) -> dict[str, Ranked]:
    """The rankings of the ``wanted`` guidelines (those ranked): a turn activates a few of a
    thousand, most of them ranked near the top, so the look stops once all are found."""
    found: dict[str, Ranked] = {}
    if not wanted:
        return found
    for r in ranked:
        gid = r.guideline.id
        if gid in wanted and gid not in found:
            found[gid] = r
            if len(found) == len(wanted):
                break
    return found
