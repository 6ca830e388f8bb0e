"""The journey stage of a turn.

Each session keeps one ``JourneyRun`` per journey it entered (``JourneyProgress``): the path of
states taken and a status (active, paused, waiting for a sub-journey, ended). A turn:

1. ``plan.plan``: the journeys in play. Live runs (active, paused) and the few
   not-yet-started journeys whose conditions rank best are *listed* for the matcher, which
   decides their next step in the same model wave as guideline matching (``plan.render``
   writes a journey for the prompt). Guidelines scoped to a journey (tagged
   ``journey:<id>``) are checked only while that journey is live.
2. ``follow.Follower.decide``: applies the matcher's answers (or, offline and where the engine
   walks on its own, ``walk.Walker``'s rules) to the runs; ``progress`` writes each decided
   step into them.
3. ``projection.project``: each journey followed this turn becomes a synthetic guideline (id
   ``journey:<id>``), so relationships, tools and composition treat it like any guideline.
4. ``follow.Follower.after_tools``: a journey at a tool state whose tools ran continues from
   there, with the results in view (a second, small model call when the way on is
   conditional); ``follow.journeys_after_tools`` repeats it while journeys reach further
   tool states, within the agent's iteration bound.

The updated progress is saved with the agent's message: a cancelled turn changes nothing.
``graph`` holds what is true of a journey's graph whatever the turn (its Mermaid drawing among
it); what makes a graph valid is a rule of the model, ``domain.journeys.validate``.

``plan`` is the module here (``journeys.plan.plan(ctx, ranked)``): its function is not
re-exported, so that the name keeps meaning the module.
"""

from tactful.engine.journeys.follow import Follower, journeys_after_tools, off_scope, off_scope_of
from tactful.engine.journeys.graph import JourneyGraph, blank, mermaid
from tactful.engine.journeys.plan import JourneyPlan, Listed, render
from tactful.engine.journeys.progress import JourneyOutcome
from tactful.engine.journeys.projection import journey_relationships, synthetic, synthetic_id
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
    "journeys_after_tools",
    "mermaid",
    "off_scope",
    "off_scope_of",
    "render",
    "synthetic",
    "synthetic_id",
]
