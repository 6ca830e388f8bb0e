"""Which guidelines the matcher checks in detail (tier 1) and which it screens (tier 2).

Retrieval ranks; it does not decide, and similarity misses conditions about the conversation's
state, the customer's mood or attributes, and observations. So every enabled guideline reaches
the matcher, in one of two tiers of the same model wave:

1. **Detailed checks** for the guidelines that need one whatever the ranking says: high
   criticality, the always-check set (``engine/classify.py``; at low criticality only its
   abuse-or-manipulation part), guidelines matched in recent
   turns, the active journeys' scope, the dependency closure of all of these; then the ``k``
   best-ranked guidelines not already there. The guidelines there for another reason have a
   budget (``DEFAULT_MAX_FORCED``): beyond it, the forced *observations* ranked lowest yield
   their place to the screen (they state what the customer said, which the ranking sees; mood,
   form and the conversation's course it does not). Nothing else yields.
2. **A compact screen** (id and condition, about 20 prompt tokens each) of every other enabled
   guideline, in the same batched calls.

Guidelines with the always-match marker need no check: they are reported apart, in neither
tier. Every candidate records why it is where it is. docs/matching.md has the measured recall
and the reasoning behind ``DEFAULT_K``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from typing import NamedTuple, overload

from pydantic import TypeAdapter

from tactful.domain import (
    Candidate,
    Criticality,
    EndpointKind,
    Guideline,
    Relationship,
    RelationshipKind,
)
from tactful.domain.relationships import guidelines_by_tag
from tactful.engine.classify import ABUSE, OBSERVATION, Classification, classify
from tactful.engine.retrieve import Ranked, Ranking

# How many best-ranked guidelines join tier 1 beyond those there for another reason. Measured
# on the public split of the labeled set with the real embedder (docs/matching.md): tier-1
# recall 0.954 (226 of 237 labels) at k=52 with a tier 1 of 96.8 guidelines on average (max 100,
# with DEFAULT_MAX_FORCED) out of 310; 0.941 at k=50. Each guideline moved from the screen to a
# detailed check costs ~10 prompt and ~60 answer tokens.
DEFAULT_K = 52
# How many guidelines tier 1 takes for reasons other than the ranking before forced
# observations yield, the lowest-ranked first, to the screen: with DEFAULT_K, a tier 1 of at
# most 100 (docs/matching.md; 58 are forced on this set once the agent and the customer have both
# written). Every other forced guideline stays, so it is exceeded only when they alone do.
DEFAULT_MAX_FORCED = 100 - DEFAULT_K

HIGH_CRITICALITY = "high criticality"
ALWAYS_CHECK = "always-check"
RECENT_MATCH = "recent match"
JOURNEY_SCOPE = "journey scope"
DEPENDENCY = "dependency"
TOP_K = "top-k"
SCREEN = "screen"
# A forced observation moved to the screen by ``max_forced``.
OVER_BUDGET = "screen: observation over the forced budget"
ALWAYS = "always"

# Given the ids selected so far, the ids they depend on (directly or transitively).
DependencyClosure = Callable[[Collection[str]], Collection[str]]


class Selected(NamedTuple):
    """One guideline's place in the candidate set: its ranking, tier and reasons. (A named
    tuple: a turn makes one per guideline, a thousand of them at a time.)"""

    ranked: Ranked
    rank: int  # 1-based position in the retrieval ranking
    tier: int  # 1: detailed check, 2: compact screen, 0: always-match (no check)
    reasons: tuple[str, ...]

    @property
    def guideline(self) -> Guideline:
        return self.ranked.guideline

    def candidate(self) -> Candidate:
        """The trace record."""
        return CandidateSet([self], []).candidates()[0]


# Trace records are validated from plain rows in one call (in pydantic's core): a thousand of
# them per turn cost a fraction of building each model in Python.
_RECORDS = TypeAdapter(list[Candidate])
_SCREENED = (SCREEN,)
_YIELDED = (OVER_BUDGET,)


@dataclass(frozen=True)
class CandidateSet:
    """Tier 1 and tier 2 in ranking order; together they hold every enabled guideline that is
    not always-matched."""

    tier1: list[Selected]
    # A list, or a ``Screen`` (kept as runs of the ranking until its records are read).
    tier2: Sequence[Selected]
    # Always-match marker: applied on every turn with no check (in neither tier).
    always: list[Selected] = field(default_factory=list)
    # Disabled guidelines that were passed in anyway (never checked).
    disabled: list[Selected] = field(default_factory=list)
    k: int = DEFAULT_K

    @property
    def detailed(self) -> list[Ranked]:
        """Tier 1 as the matcher takes it."""
        return [s.ranked for s in self.tier1]

    @property
    def screened(self) -> list[Ranked]:
        """Tier 2 as the matcher takes it."""
        if isinstance(self.tier2, Screen):
            return self.tier2.ranked()
        return [s.ranked for s in self.tier2]

    def candidates(self, limit: int | None = None) -> list[Candidate]:
        """Trace records: tier 1, then tier 2, then the always-matched ones (the first
        ``limit`` of them; ``None``: all)."""
        chosen = islice(chain(self.tier1, self.tier2, self.always), limit)
        return _RECORDS.validate_python(
            [
                {
                    "guideline_id": (g := s.ranked.guideline).id,
                    "condition": g.condition,
                    "score": round(s.ranked.score, 4),
                    "rank": s.rank,
                    "tier": s.tier,
                    "reasons": s.reasons,
                }
                for s in chosen
            ]
        )

    def get(self, guideline_id: str) -> Selected | None:
        for s in (*self.tier1, *self.tier2, *self.always, *self.disabled):
            if s.guideline.id == guideline_id:
                return s
        return None


def _closure(
    dependency_closure: DependencyClosure | Collection[str], selected: Collection[str]
) -> set[str]:
    if not callable(dependency_closure):
        return set(dependency_closure)
    found: set[str] = set()
    frontier = set(selected)
    # Iterate to a fixed point, in case the callable gives direct dependencies only.
    while frontier:
        fresh = set(dependency_closure(frontier)) - found - set(selected)
        found |= fresh
        frontier = fresh
    return found


@dataclass(frozen=True)
class FixedReasons:
    """What decides a guideline's detailed check whatever the ranking: its criticality and its
    classification (worked out once per agent snapshot by ``engine/prepared.py``)."""

    high: bool
    # The always-check reasons as a candidate records them (empty: not in the set).
    always_check: tuple[str, ...]
    classification: Classification

    @property
    def yields(self) -> bool:
        """Whether it leaves tier 1 for the screen when too many are forced: an observation
        (a fact the customer stated, which the ranking sees), unless it is of high criticality
        or about abuse of the agent."""
        reasons = self.classification.reasons
        return not self.high and OBSERVATION in reasons and ABUSE not in reasons


def fixed_reasons(
    guideline: Guideline, classifier: Callable[[Guideline], Classification] = classify
) -> FixedReasons:
    """The guideline's ``FixedReasons`` (``classifier`` decides the always-check set)."""
    classification = classifier(guideline)
    # Low criticality: screened only, unless recent matches or relationships pull it in; but
    # abuse of the agent is always checked.
    checked = classification.always_check and (
        guideline.criticality is not Criticality.LOW or ABUSE in classification.reasons
    )
    whys = (classification.reasons or ("",)) if checked else ()
    return FixedReasons(
        high=guideline.criticality is Criticality.HIGH,
        always_check=tuple(f"{ALWAYS_CHECK}: {w}" if w else ALWAYS_CHECK for w in whys),
        classification=classification,
    )


class FixedTable(Mapping[str, FixedReasons]):
    """``fixed_reasons`` by guideline id, with the ids whose reasons force a detailed check
    (high criticality or the always-check set): a turn looks at those few, not at every
    guideline. Built once per agent snapshot (``engine/prepared.py``)."""

    def __init__(self, by_id: Mapping[str, FixedReasons]) -> None:
        self.by_id: dict[str, FixedReasons] = dict(by_id)
        self.forcing = frozenset(g for g, f in self.by_id.items() if f.high or f.always_check)
        # The last frozen id set asked about, and which of its ids are not here.
        self._asked: tuple[frozenset[str], frozenset[str]] | None = None

    def missing(self, ids: AbstractSet[str]) -> AbstractSet[str]:
        """The ``ids`` not in the table (remembered for a frozen set: a retriever's ranking
        brings the same one on every turn)."""
        if not isinstance(ids, frozenset):
            return ids - self.by_id.keys()
        asked = self._asked
        if asked is None or asked[0] is not ids:
            asked = self._asked = (ids, frozenset(ids - self.by_id.keys()))
        return asked[1]

    def __getitem__(self, guideline_id: str) -> FixedReasons:
        return self.by_id[guideline_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_id)

    def __len__(self) -> int:
        return len(self.by_id)


def select_candidates(
    ranked: Sequence[Ranked],
    *,
    k: int = DEFAULT_K,
    recent_matches: Collection[str] = (),
    dependency_closure: DependencyClosure | Collection[str] = (),
    journey_scope: Collection[str] = (),
    classifier: Callable[[Guideline], Classification] = classify,
    forced: Mapping[str, str] | None = None,
    prior: Collection[str] | None = None,
    fixed: Mapping[str, FixedReasons] | None = None,
    max_forced: int | None = DEFAULT_MAX_FORCED,
) -> CandidateSet:
    """Split a ranking into detailed checks (tier 1) and the compact screen (tier 2).

    ``ranked`` is ``Retriever.rank``'s output (best first). ``k`` is how many best-ranked
    guidelines join tier 1 beyond those there for another reason. ``recent_matches`` are ids
    matched in recent turns, ``journey_scope`` the ids in the scope of active journeys, and
    ``dependency_closure`` either the ids to add or a function from the ids selected so far to
    the ids they depend on (called until nothing new comes back), and ``forced`` more ids for
    tier 1 with the reason to record (e.g. guidelines carrying tools). ``prior`` is who wrote
    before the latest customer message (``TurnContext.prior_roles()``): a condition about the
    conversation's course that cannot hold yet ("the agent has already offered…" before any
    agent message) is left to the ranking. ``None`` (unknown) forces the whole always-check
    set. Ids that are not in ``ranked`` are ignored. ``fixed``: ``fixed_reasons`` by guideline
    id, worked out ahead (a guideline missing from it is classified here with ``classifier``);
    a ``FixedTable`` spares the turn a look at every guideline.

    ``max_forced``: when more guidelines than this are in tier 1 for a reason other than the
    ranking (their dependencies included), forced observations (``FixedReasons.yields``) leave
    it for the screen, the lowest-ranked first (recorded as ``OVER_BUDGET``), until they fit or
    none is left; so tier 1 holds at most ``max_forced + k`` unless the guidelines that do not
    yield are more. One that ranks among the ``k`` best, or that a kept guideline depends on,
    is still checked, for that reason. ``None``: no limit.
    """
    split = _Split.of(ranked)
    table = fixed if isinstance(fixed, FixedTable) else FixedTable(fixed or {})
    reasons, yielding = _forced_reasons(
        split,
        table,
        classifier,
        prior,
        recent=set(recent_matches),
        scope=set(journey_scope),
        forced=forced or {},
    )
    dependencies = _closure(dependency_closure, set(reasons))
    over = len(reasons) + len(dependencies & split.ids) - (max_forced or 0)
    demoted: set[str] = set()
    if max_forced is not None and over > 0 and yielding:
        # Too many: the lowest-ranked forced observations make room, then the dependencies are
        # those of what stays.
        demoted = set(yielding[-over:])
        for gid in demoted:
            del reasons[gid]
        dependencies = _closure(dependency_closure, set(reasons))

    def add(gid: str, reason: str) -> None:
        if gid in split.ids:
            reasons.setdefault(gid, []).append(reason)

    for gid in sorted(dependencies):
        add(gid, DEPENDENCY)
    slots = max(0, k)
    for r in split.checkable:
        if slots == 0:
            break
        g = r.guideline
        if g.id not in reasons and g.criticality is not Criticality.LOW:
            add(g.id, f"{TOP_K} (rank {split.rank_of[g.id]})")
            slots -= 1
    # The top-k rows may pull in dependencies of their own.
    for gid in sorted(_closure(dependency_closure, set(reasons)) - set(reasons)):
        add(gid, DEPENDENCY)

    tier1, tier2 = split.tiers(reasons)
    if demoted:
        tier2 = [s._replace(reasons=_YIELDED) if s.guideline.id in demoted else s for s in tier2]
    return CandidateSet(tier1=tier1, tier2=tier2, always=split.always, disabled=split.disabled, k=k)


@dataclass
class _Split:
    """A ranking's guidelines by what is done with them: checked (in ranking order, each with
    its 1-based rank), always-matched, disabled. A guideline ranked twice counts once, at its
    first rank."""

    rank_of: dict[str, int]
    checkable: Sequence[Ranked]
    positions: Sequence[int]
    ids: AbstractSet[str]
    always: list[Selected] = field(default_factory=list)
    disabled: list[Selected] = field(default_factory=list)
    # Every guideline checked, in ranking order: ``checkable[i]`` has rank ``i + 1``.
    plain: bool = False

    @classmethod
    def of(cls, ranked: Sequence[Ranked]) -> _Split:
        count = len(ranked)
        if isinstance(ranked, Ranking) and ranked.plain:
            # From the retriever: its ids come with it, no guideline is looked at.
            rank_of = dict(zip(ranked.ids, range(1, count + 1), strict=True))
            return cls(rank_of, ranked, range(1, count + 1), ranked.members, plain=True)
        rank_of = {r.guideline.id: p for p, r in enumerate(ranked, start=1)}
        if len(rank_of) == len(ranked):
            checkable = [r for r in ranked if r.guideline.enabled and not r.guideline.always]
            if len(checkable) == len(ranked):
                # The usual ranking: each guideline once, all of them checked.
                return cls(rank_of, checkable, range(1, count + 1), set(rank_of), plain=True)
        rank_of.clear()
        checkable, positions, always, disabled = [], [], [], []
        for position, r in enumerate(ranked, start=1):
            g = r.guideline
            if g.id in rank_of:
                continue
            rank_of[g.id] = position
            if not g.enabled:
                disabled.append(Selected(r, position, 0, ("disabled",)))
            elif g.always:
                always.append(Selected(r, position, 0, (ALWAYS,)))
            else:
                checkable.append(r)
                positions.append(position)
        ids = {r.guideline.id for r in checkable}
        return cls(rank_of, checkable, positions, ids, always, disabled)

    def tiers(self, reasons: Mapping[str, list[str]]) -> tuple[list[Selected], Sequence[Selected]]:
        """Tier 1 (the ids with ``reasons``) and tier 2 (the rest), in ranking order."""
        # ``tuple.__new__``: the named tuple's own constructor, without its call in Python.
        new = tuple.__new__
        if not self.plain:
            pairs = zip(self.positions, self.checkable, strict=True)
            screened = [
                new(Selected, (r, p, 2, _SCREENED))
                for p, r in pairs
                if r.guideline.id not in reasons
            ]
            pairs = zip(self.positions, self.checkable, strict=True)
            tier1 = [
                new(Selected, (r, p, 1, tuple(reasons[r.guideline.id])))
                for p, r in pairs
                if r.guideline.id in reasons
            ]
            return tier1, screened
        # Tier 1 by its ranks; tier 2 is the runs between them.
        ranks = sorted(self.rank_of[gid] for gid in reasons)
        checkable = self.checkable
        tier1 = [
            new(Selected, (checkable[p - 1], p, 1, tuple(reasons[checkable[p - 1].guideline.id])))
            for p in ranks
        ]
        return tier1, Screen(checkable, ranks)


class Screen(Sequence[Selected]):
    """Tier 2 of a plain ranking (each guideline once, all checked), kept as the runs of the
    ranking between tier 1's ranks. The matcher takes its guidelines straight from the runs;
    its records (``Selected``, 900 of them at 1,000 guidelines) are made when first read,
    which is after the reply, for the trace."""

    def __init__(self, checkable: Sequence[Ranked], ranks: Sequence[int]) -> None:
        # ``checkable[i]`` has rank ``i + 1``; ``ranks``: tier 1's, ascending.
        self._checkable = checkable
        self._ranks = ranks
        self._made: list[Selected] | None = None

    def _runs(self) -> Iterator[tuple[int, int]]:
        """Each run's first rank and the rank after its last."""
        start = 1
        for stop in (*self._ranks, len(self._checkable) + 1):
            if stop > start:
                yield start, stop
            start = stop + 1

    def ranked(self) -> list[Ranked]:
        """The screened guidelines' rankings, in ranking order (no record made)."""
        out: list[Ranked] = []
        for start, stop in self._runs():
            out += self._checkable[start - 1 : stop - 1]
        return out

    def _records(self) -> list[Selected]:
        if self._made is None:
            made: list[Selected] = []
            new = tuple.__new__
            for start, stop in self._runs():
                run = zip(
                    self._checkable[start - 1 : stop - 1],
                    range(start, stop),
                    repeat(2),
                    repeat(_SCREENED),
                    strict=False,
                )
                made.extend(map(new, repeat(Selected), run))
            self._made = made
        return self._made

    def __len__(self) -> int:
        return len(self._checkable) - len(self._ranks)

    @overload
    def __getitem__(self, index: int) -> Selected: ...

    @overload
    def __getitem__(self, index: slice) -> list[Selected]: ...

    def __getitem__(self, index: int | slice) -> Selected | list[Selected]:
        return self._records()[index]

    def __iter__(self) -> Iterator[Selected]:
        return iter(self._records())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Screen | list | tuple):
            return self._records() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Screen({self._records()!r})"


def _forced_reasons(
    split: _Split,
    table: FixedTable,
    classifier: Callable[[Guideline], Classification],
    prior: Collection[str] | None,
    *,
    recent: set[str],
    scope: set[str],
    forced: Mapping[str, str],
) -> tuple[dict[str, list[str]], list[str]]:
    """The reasons for a detailed check that the ranking does not decide, by guideline id:
    criticality, the always-check set, recent matches, journey scope, ``forced``; and, in
    ranking order, the ids there only as observations that yield to a budget."""
    ids = split.ids
    known = table.by_id
    pool = {*(ids & table.forcing), *(ids & recent), *(ids & scope), *(ids & forced.keys())}
    missing = table.missing(ids)
    if missing:
        # Not worked out ahead: classified now.
        known = dict(known)
        for r in split.checkable:
            if r.guideline.id in missing:
                why = known[r.guideline.id] = fixed_reasons(r.guideline, classifier)
                if why.high or why.always_check:
                    pool.add(r.guideline.id)
    reasons: dict[str, list[str]] = {}
    yielding: list[str] = []
    # In ranking order, as if every guideline were looked at.
    for gid in sorted(pool, key=split.rank_of.__getitem__):
        why = known[gid]
        found = [HIGH_CRITICALITY] if why.high else []
        if why.always_check and (prior is None or why.classification.can_hold(prior)):
            found += why.always_check
            if why.yields and gid not in recent and gid not in scope and gid not in forced:
                yielding.append(gid)
        if gid in recent:
            found.append(RECENT_MATCH)
        if gid in scope:
            found.append(JOURNEY_SCOPE)
        if gid in forced:
            found.append(forced[gid])
        if found:
            reasons[gid] = found
    return reasons, yielding


def dependency_targets(
    relationships: Sequence[Relationship], guidelines: Sequence[Guideline]
) -> Callable[[Collection[str]], set[str]]:
    """The guidelines that the given ones depend on (tags expanded): a candidate's
    dependencies are checked with it."""
    members = guidelines_by_tag(guidelines)
    edges: dict[str, set[str]] = {}
    for r in relationships:
        if r.kind not in (RelationshipKind.DEPENDENCY, RelationshipKind.DEPENDENCY_ANY):
            continue
        if r.source.kind is not EndpointKind.GUIDELINE:
            continue
        ends = members.get(r.target.id, []) if r.target.kind is EndpointKind.TAG else [r.target.id]
        edges.setdefault(r.source.id, set()).update(ends)

    def depended_on(ids: Collection[str]) -> set[str]:
        return {t for gid in ids for t in edges.get(gid, ())}

    return depended_on
