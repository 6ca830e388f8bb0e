"""The journey stage: journey graphs (``graph``), which journeys the matcher sees each turn
(``plan``), walking a graph by rules (``walk``) and following each journey turn by turn
(``follow``).

``plan`` is the module here (``journeys.plan.plan(ctx, ranked)``): its function is not
re-exported, so that the name keeps meaning the module.
"""

from tactful.engine.journeys.follow import (
    Follower,
    JourneyOutcome,
    journey_relationships,
    synthetic,
    synthetic_id,
)
from tactful.engine.journeys.graph import JourneyGraph, blank, mermaid, validate
from tactful.engine.journeys.plan import JourneyPlan, Listed, render
from tactful.engine.journeys.walk import Walk, Walker

__all__ = [
    "Follower",
    "JourneyGraph",
    "JourneyOutcome",
    "JourneyPlan",
    "Listed",
    "Walk",
    "Walker",
    "blank",
    "journey_relationships",
    "mermaid",
    "render",
    "synthetic",
    "synthetic_id",
    "validate",
]
