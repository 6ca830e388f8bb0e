"""Stage 5, resolve: apply relationships to the matched guidelines. Pure and deterministic: no
I/O, no model; the same inputs give the same result whatever their order.

``resolve(matched, guidelines, relationships)`` takes the ids the matcher said apply, each with
a score (used for tie-breaks and ordering), every guideline in scope, and the relationships. It
returns the final active ids, one ``ResolutionStep`` per guideline added or removed, and at most
one ``Clarification``.

Semantics, precisely:

- Ends. A guideline end is that guideline; a tag end stands for every enabled guideline in
  ``guidelines`` whose ``tags`` carry the tag (``agent:<id>`` tags too); tool ends, and the
  kinds ``overlap`` and ``reevaluation``, play no part here. A relationship between a tag and a
  guideline carrying it never relates that guideline to itself. Ids in ``matched`` that are not
  enabled guidelines of ``guidelines`` are ignored; disabled guidelines are never active.
- Scores. A matched guideline has its matched score; an entailed one the highest score of the
  guidelines that entailed it; an always-match one that was not matched 0.0.
- The rules run in this order:

  1. always: guidelines with ``always=True`` are active whatever ``matched`` says (step
     "added").
  2. entailment (source active => target active): added in breadth-first rounds until nothing
     more is added, so entailment is transitive (step "added", because = the entailing ids).
  3. dependencies, to a fixpoint. A guideline with ``dependency`` relationships stays active
     only if ALL their targets are active (a tag target: all its guidelines; an unknown or
     disabled target is never active). A guideline with ``dependency_any`` relationships stays
     active only if ANY of their targets is active (all of a guideline's ``dependency_any``
     targets form one any-of group; with no target at all it fails). Observations count as
     active like any guideline. Removals cascade until stable (step "removed", because = the
     missing dependencies). In the same fixpoint a guideline that is active only through
     entailment is removed once no active matched or always guideline entails it, directly
     or through active guidelines (rule "entailment", effect "removed"): suppressing a match
     also withdraws what it entailed.
  4. priority (source over target): a guideline is removed when an active guideline takes
     priority over it, directly or through a chain of priority relationships (whose middle
     guidelines need not be active), unless it takes priority back (a cycle: neither is
     removed). Evaluated on the active set as the rule starts, so removals are simultaneous.
  5. exclusion (source and target never both active): of two active guidelines that exclude
     each other the one with the higher numeric ``priority`` stays, then the higher score,
     then the source of the relationship (when relationships go both ways, the smaller id).
     Pairs are settled in rounds: in each round every winner that no other active guideline
     defeats removes its losers; a cycle of defeats is broken at its strongest winner.
  6. numeric priority: among active guidelines with an action, those whose ``priority`` is
     below the highest such priority are removed (with everyone at the default 0, none is).
     Observations are never suppressed and do not count towards the highest priority.
  7. dependencies again (and entailment withdrawal), as in 3: removals can break them.
  8. disambiguation (source = a guideline or observation describing the ambiguity, targets =
     the candidate intents): when the source is active and two or more of its targets are
     active, those targets are removed (effect "clarify") and a ``Clarification`` names the
     source and the options; with one target active it stays. When several sources call for
     a clarification, all their targets are removed and the clarification is the one whose
     source has the highest score (then the smallest id).
  9. dependencies again, as in 3 (a removed option may have been a dependency).

- The final set is ordered by score, highest first, then by id.

What a relationship must pass before it is stored (no cycles of entailment, priority or
dependency, no tool end on these kinds) is a rule of the model: ``domain.relationships.admit``.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tactful.domain import (
    Clarification,
    Endpoint,
    EndpointKind,
    Guideline,
    Relationship,
    RelationshipKind,
    ResolutionEffect,
    ResolutionRule,
    ResolutionStep,
)
from tactful.domain.relationships import guidelines_by_tag

K = RelationshipKind
R = ResolutionRule


@dataclass
class Resolution:
    """The outcome of resolving relationships over one turn's matches."""

    active: list[str]
    steps: list[ResolutionStep] = field(default_factory=list)
    clarification: Clarification | None = None
    # The score of every active guideline (matched, inherited through entailment, or 0.0).
    scores: dict[str, float] = field(default_factory=dict)


class Roster:
    """The enabled guidelines resolution sees, by id and by tag (each tag's ids sorted), and the
    always-match ones (sorted). Worked out once per agent snapshot (``engine/prepared.py``);
    a turn adds its few synthetic guidelines with ``plus``."""

    def __init__(
        self,
        known: dict[str, Guideline],
        members: dict[str, list[str]],
        always: list[str],
    ) -> None:
        # Read-only once built: ``plus`` copies what it changes.
        self.known = known
        self.members = members
        self.always = always

    @staticmethod
    def of(guidelines: Mapping[str, Guideline]) -> Roster:
        known = {gid: g for gid, g in guidelines.items() if g.enabled}
        members = guidelines_by_tag(known[gid] for gid in sorted(known))
        always = sorted(gid for gid, g in known.items() if g.always)
        return Roster(known, {tag: sorted(ids) for tag, ids in members.items()}, always)

    def plus(self, guidelines: Mapping[str, Guideline]) -> Roster:
        """This roster with ``guidelines`` added, or replacing those with the same ids: as
        ``Roster.of`` would work it out for the merged mapping."""
        if not guidelines:
            return self
        known = dict(self.known)
        members = dict(self.members)
        changed: set[str] = set()
        for gid, g in guidelines.items():
            old = known.pop(gid, None)
            for tag in dict.fromkeys(old.tags if old is not None else ()):
                members[tag] = [m for m in members[tag] if m != gid]
                changed.add(tag)
            if g.enabled:
                known[gid] = g
                for tag in dict.fromkeys(g.tags):
                    members[tag] = [*members.get(tag, ()), gid]
                    changed.add(tag)
        for tag in changed:
            if members[tag]:
                members[tag].sort()
            else:
                del members[tag]
        always = sorted(
            gid for gid in {*self.always, *guidelines} if gid in known and known[gid].always
        )
        return Roster(known, members, always)


def resolve(
    matched: Mapping[str, float],
    guidelines: Mapping[str, Guideline] | Roster,
    relationships: Sequence[Relationship],
) -> Resolution:
    """Apply the relationships to the matched guidelines (see the module docstring).

    ``guidelines``: every guideline in scope, by id, or their ``Roster`` worked out ahead."""
    roster = guidelines if isinstance(guidelines, Roster) else Roster.of(guidelines)
    return _Resolver(roster, relationships).run(matched)


class _Resolver:
    def __init__(self, roster: Roster, relationships: Sequence[Relationship]) -> None:
        self.known = roster.known
        self.members = roster.members
        self.always = roster.always
        # kind -> source guideline id -> target guideline ids (tags expanded, no self pairs).
        self.edges: dict[RelationshipKind, dict[str, set[str]]] = defaultdict(
            lambda: defaultdict(set)
        )
        # Guidelines with dependency_any relationships, even when these expand to nothing.
        self.any_of: dict[str, set[str]] = {}
        for r in relationships:
            self._add(r)
        self.entailed_by: dict[str, set[str]] = defaultdict(set)
        for s, targets in self.edges[K.ENTAILMENT].items():
            for t in targets:
                self.entailed_by[t].add(s)
        self.active: set[str] = set()
        self.roots: set[str] = set()
        self.score: dict[str, float] = {}
        self.steps: list[ResolutionStep] = []

    def _expand(self, end: Endpoint) -> list[str]:
        if end.kind is EndpointKind.GUIDELINE:
            return [end.id]
        if end.kind is EndpointKind.TAG:
            return self.members.get(end.id, [])
        return []

    def _add(self, r: Relationship) -> None:
        if r.source.kind is EndpointKind.TOOL or r.target.kind is EndpointKind.TOOL:
            return
        sources, targets = self._expand(r.source), self._expand(r.target)
        if r.kind is K.DEPENDENCY_ANY:
            for s in sources:
                self.any_of.setdefault(s, set()).update(t for t in targets if t != s)
            return
        for s in sources:
            self.edges[r.kind][s].update(t for t in targets if t != s)

    # -- steps ------------------------------------------------------------------------------------

    def _added(
        self, rule: ResolutionRule, gid: str, score: float, because: Iterable[str], detail: str
    ) -> None:
        self.active.add(gid)
        self.score[gid] = score
        self.steps.append(
            ResolutionStep(
                rule=rule,
                effect=ResolutionEffect.ADDED,
                guideline_id=gid,
                because=sorted(because),
                detail=detail,
            )
        )

    def _removed(
        self,
        rule: ResolutionRule,
        gid: str,
        because: Iterable[str],
        detail: str,
        effect: ResolutionEffect = ResolutionEffect.REMOVED,
    ) -> None:
        self.active.discard(gid)
        self.steps.append(
            ResolutionStep(
                rule=rule, effect=effect, guideline_id=gid, because=sorted(because), detail=detail
            )
        )

    # -- the rules, in order ----------------------------------------------------------------------

    def run(self, matched: Mapping[str, float]) -> Resolution:
        for gid, score in matched.items():
            if gid in self.known:
                self.active.add(gid)
                self.score[gid] = float(score)
        self.roots = set(self.active)
        self._always()
        self._entail()
        self._settle()
        self._priority()
        self._exclusion()
        self._numeric_priority()
        self._settle()
        clarification = self._disambiguate()
        self._settle()
        final = sorted(self.active, key=lambda gid: (-self.score[gid], gid))
        return Resolution(
            active=final,
            steps=self.steps,
            clarification=clarification,
            scores={gid: self.score[gid] for gid in final},
        )

    def _always(self) -> None:
        for gid in self.always:
            self.roots.add(gid)
            if gid not in self.active:
                self._added(R.ALWAYS, gid, 0.0, [], "always-match marker: applies on every turn")

    def _entail(self) -> None:
        frontier = set(self.active)
        while frontier:
            entailed: dict[str, list[str]] = defaultdict(list)
            for s in sorted(frontier):
                for t in self.edges[K.ENTAILMENT].get(s, ()):
                    if t in self.known and t not in self.active:
                        entailed[t].append(s)
            for t in sorted(entailed):
                by = entailed[t]
                score = max(self.score[s] for s in by)
                self._added(R.ENTAILMENT, t, score, by, f"entailed by {', '.join(sorted(by))}")
            frontier = set(entailed)

    def _settle(self) -> None:
        """Dependencies and entailment support, to a fixpoint (removals only)."""
        while True:
            removals: list[tuple[ResolutionRule, str, list[str], str]] = []
            for gid in sorted(self.active):
                needs = self.edges[K.DEPENDENCY].get(gid, set())
                if missing := sorted(needs - self.active):
                    detail = f"depends on all of {', '.join(sorted(needs))}; inactive: "
                    removals.append((R.DEPENDENCY, gid, missing, detail + ", ".join(missing)))
                elif gid in self.any_of and not self.any_of[gid] & self.active:
                    options = sorted(self.any_of[gid])
                    detail = (
                        f"depends on any of {', '.join(options)}; none is active"
                        if options
                        else "depends on any of an empty set of guidelines"
                    )
                    removals.append((R.DEPENDENCY_ANY, gid, options, detail))
            for rule, gid, because, detail in removals:
                self._removed(rule, gid, because, detail)
            withdrawn = sorted(self.active - self._supported())
            for gid in withdrawn:
                by = self.entailed_by.get(gid, set())
                self._removed(
                    R.ENTAILMENT, gid, by, "no active guideline entails it any more (was entailed)"
                )
            if not removals and not withdrawn:
                return

    def _supported(self) -> set[str]:
        """Active guidelines reached from active matched or always guidelines by entailment."""
        reached = self.roots & self.active
        queue = deque(sorted(reached))
        while queue:
            for t in sorted(self.edges[K.ENTAILMENT].get(queue.popleft(), ())):
                if t in self.active and t not in reached:
                    reached.add(t)
                    queue.append(t)
        return reached

    def _reach(self, start: str, kind: RelationshipKind) -> set[str]:
        seen: set[str] = set()
        queue = deque([start])
        while queue:
            for t in self.edges[kind].get(queue.popleft(), ()):
                if t not in seen:
                    seen.add(t)
                    queue.append(t)
        return seen

    def _priority(self) -> None:
        reach = {gid: self._reach(gid, K.PRIORITY) for gid in self.active}
        removals = []
        for gid in sorted(self.active):
            over = [y for y in reach if y != gid and gid in reach[y] and y not in reach[gid]]
            if over:
                removals.append((gid, over))
        for gid, over in removals:
            names = ", ".join(sorted(over))
            self._removed(R.PRIORITY, gid, over, f"{names} take(s) priority over it")

    def _strength(self, gid: str) -> tuple[int, float]:
        return self.known[gid].priority, self.score[gid]

    def _defeat_order(self, defeat: tuple[str, str]) -> tuple[int, float, str, str]:
        winner, loser = defeat
        priority, score = self._strength(winner)
        return -priority, -score, winner, loser

    def _exclusion(self) -> None:
        directions: dict[tuple[str, str], set[str]] = defaultdict(set)
        for s, targets in self.edges[K.EXCLUSION].items():
            for t in targets:
                pair = (min(s, t), max(s, t))
                directions[pair].add(s)
        # (winner, loser) for every excluding pair, decided once (strengths do not change here).
        defeats: set[tuple[str, str]] = set()
        for (a, b), sources in directions.items():
            if a not in self.active or b not in self.active:
                continue
            if self._strength(a) != self._strength(b):
                winner = a if self._strength(a) > self._strength(b) else b
            elif len(sources) == 1:
                (winner,) = sources
            else:
                winner = a  # relationships both ways and a tie: the smaller id
            defeats.add((winner, b if winner == a else a))
        while True:
            live = [(w, lo) for w, lo in defeats if w in self.active and lo in self.active]
            if not live:
                return
            losers = {lo for _, lo in live}
            settled = [(w, lo) for w, lo in live if w not in losers]
            if not settled:
                # A cycle of defeats: break it at the strongest winner.
                settled = [min(live, key=self._defeat_order)]
            beaten: dict[str, list[str]] = defaultdict(list)
            for w, lo in settled:
                beaten[lo].append(w)
            for lo in sorted(beaten):
                by = beaten[lo]
                self._removed(R.EXCLUSION, lo, by, f"excluded by {', '.join(sorted(by))}")

    def _numeric_priority(self) -> None:
        actionable = [gid for gid in self.active if not self.known[gid].is_observation]
        if not actionable:
            return
        top = max(self.known[gid].priority for gid in actionable)
        leaders = [gid for gid in actionable if self.known[gid].priority == top]
        for gid in sorted(actionable):
            p = self.known[gid].priority
            if p < top:
                self._removed(
                    R.NUMERIC_PRIORITY,
                    gid,
                    leaders,
                    f"priority {p} is below {top}, the highest among active guidelines",
                )

    def _disambiguate(self) -> Clarification | None:
        groups: list[tuple[str, list[str]]] = []
        for s in sorted(self.active):
            options = [t for t in self.edges[K.DISAMBIGUATION].get(s, ()) if t in self.active]
            if len(options) >= 2:
                groups.append((s, sorted(options, key=lambda t: (-self.score[t], t))))
        if not groups:
            return None
        source, options = min(groups, key=lambda grp: (-self.score[grp[0]], grp[0]))
        because: dict[str, set[str]] = defaultdict(set)
        for s, opts in groups:
            for t in opts:
                because[t].add(s)
        for t in sorted(because):
            others = sorted({o for s, opts in groups if s in because[t] for o in opts} - {t})
            self._removed(
                R.DISAMBIGUATION,
                t,
                because[t],
                f"ambiguous with {', '.join(others)}: ask the customer which one they mean",
                effect=ResolutionEffect.CLARIFY,
            )
        return Clarification(observation_id=source, option_ids=options)
