"""What every turn over an agent would otherwise work out again from its definitions: worked
out once per agent snapshot (``context.AgentSnapshot``) and dropped with it.

None of it depends on the conversation: which guidelines are ranked and checked at all, which
need a detailed check whatever the ranking says, what depends on what, which guidelines belong
to a journey, which carry tools. At a thousand guidelines, working it out again on each turn
cost milliseconds of every customer's wait. (The guidelines' embedded rows are kept the same
way by ``Retriever``, for the tuple ``Prepared.checkable`` gives it every turn.)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from tactful.domain import Guideline, ToolSpec
from tactful.engine.candidates import FixedTable, dependency_targets, fixed_reasons
from tactful.engine.context import AgentSnapshot, TurnContext
from tactful.engine.journeys.follow import journey_tags
from tactful.engine.journeys.plan import scoped
from tactful.engine.resolve import Roster
from tactful.engine.self_check import about_reply

HAS_TOOLS = "has tools"


class Prepared:
    """One snapshot's per-turn constants."""

    def __init__(self, snapshot: AgentSnapshot) -> None:
        self.snapshot = snapshot
        guidelines = snapshot.guidelines
        self.by_id: dict[str, Guideline] = {g.id: g for g in guidelines}
        self.conditions: dict[str, str] = {g.id: g.condition for g in guidelines}
        # Criticality and classification: the reasons for a detailed check on every turn.
        self.fixed = FixedTable({g.id: fixed_reasons(g) for g in guidelines})
        self.dependencies = dependency_targets(snapshot.relationships, guidelines)
        self.journey_of: dict[str, str] = scoped(guidelines, {j.id for j in snapshot.journeys})
        # Every journey tag, known journey or not: off scope unless that journey is live.
        self.journey_tags = journey_tags(guidelines)
        # The enabled guidelines by id and tag, as resolution needs them.
        self.roster = Roster.of(self.by_id)
        self._with_tools = tuple(g for g in guidelines if g.tools)
        # Conditions about the agent's own reply are checked against the draft instead.
        self._rankable = tuple(g for g in guidelines if not g.always and not about_reply(g))
        # Those with an action are the rules a written reply is checked against.
        self.reply_rules = tuple(g for g in guidelines if g.enabled and g.action and about_reply(g))
        self._checkable: dict[tuple[str, ...], tuple[Guideline, ...]] = {}

    def checkable(self, coded: Collection[str]) -> tuple[Guideline, ...]:
        """The guidelines ranked and checked: not always-matched, not about the agent's own
        reply, not decided by a code matcher (``coded``). The same tuple while ``coded`` is
        the same, so that what is kept for it is found again."""
        key = tuple(sorted(coded))
        found = self._checkable.get(key)
        if found is None:
            skip = set(key)
            found = tuple(g for g in self._rankable if g.id not in skip) if skip else self._rankable
            # Matchers registered one after another: a handful of keys at most.
            if len(self._checkable) > 8:
                self._checkable.clear()
            self._checkable[key] = found
        return found

    def forced(self, specs: Mapping[str, ToolSpec]) -> dict[str, str]:
        """Guidelines carrying a registered tool: their arguments are inferred in the match
        wave, which needs a detailed check."""
        return {g.id: HAS_TOOLS for g in self._with_tools if any(t in specs for t in g.tools)}


class PreparedSnapshots:
    """The ``Prepared`` of each agent's current snapshot."""

    def __init__(self) -> None:
        self._by_agent: dict[str, Prepared] = {}
        self.builds = 0

    def get(self, ctx: TurnContext) -> Prepared:
        snapshot = ctx.snapshot
        if snapshot is None:
            # A context built by hand: worked out for this turn only.
            return Prepared(_snapshot_of(ctx))
        return self.of(snapshot)

    def of(self, snapshot: AgentSnapshot) -> Prepared:
        """The snapshot's constants (kept while it is the agent's latest)."""
        found = self._by_agent.get(snapshot.agent.id)
        if found is None or found.snapshot is not snapshot:
            found = self._by_agent[snapshot.agent.id] = Prepared(snapshot)
            self.builds += 1
        return found


def _snapshot_of(ctx: TurnContext) -> AgentSnapshot:
    return AgentSnapshot(
        revision=-1,
        agent=ctx.agent,
        guidelines=tuple(ctx.guidelines),
        canned_responses=tuple(ctx.canned_responses),
        terms=tuple(ctx.terms),
        relationships=tuple(ctx.relationships),
        journeys=tuple(ctx.journeys),
        capabilities=tuple(ctx.capabilities),
    )
