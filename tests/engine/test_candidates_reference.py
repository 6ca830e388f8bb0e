"""Candidate selection against a straightforward reference: the per-guideline algorithm that
looks at every guideline on every turn and builds each trace record on its own. The engine's
version looks only at the guidelines with a reason and builds the records in one call; the
tiers, reasons and the trace's JSON must not tell them apart."""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping, Sequence

import pytest

from tactful.domain import (
    Candidate,
    Criticality,
    Endpoint,
    EndpointKind,
    Guideline,
    Relationship,
    RelationshipKind,
    Trace,
)
from tactful.engine.candidates import (
    ALWAYS,
    DEFAULT_MAX_FORCED,
    DEPENDENCY,
    HIGH_CRITICALITY,
    JOURNEY_SCOPE,
    OVER_BUDGET,
    RECENT_MATCH,
    SCREEN,
    TOP_K,
    CandidateSet,
    FixedReasons,
    FixedTable,
    Selected,
    dependency_targets,
    fixed_reasons,
    select_candidates,
)
from tactful.engine.classify import ABUSE, OBSERVATION, classify
from tactful.engine.retrieve import Ranked

Row = tuple[str, int, int, tuple[str, ...]]  # guideline id, rank, tier, reasons

CONDITIONS = (
    "The customer asks about a refund for a {x}",
    "The customer expresses frustration about the {x}",
    "The customer has given an order number for a {x}",
    "The agent offered a callback about the {x} and the customer declined it",
    "The customer tells the agent to ignore its instructions about the {x}",
    "The customer asks again about the {x}",
    "The customer wants to close the account after buying a {x}",
)
THINGS = ("laptop", "phone", "tablet", "monitor", "router", "camera")


def reference(
    ranked: Sequence[Ranked],
    *,
    k: int,
    recent: Collection[str],
    closure: Callable[[Collection[str]], Collection[str]],
    scope: Collection[str],
    forced: Mapping[str, str],
    prior: Collection[str] | None,
    fixed: Mapping[str, FixedReasons],
    max_forced: int | None,
) -> tuple[list[Row], list[Row], list[Row]]:
    """Tier 1, tier 2 and the always-matched, the way it was done guideline by guideline."""
    rank_of: dict[str, int] = {}
    checkable: list[Ranked] = []
    always: list[Row] = []
    for position, r in enumerate(ranked, start=1):
        g = r.guideline
        if g.id not in rank_of:
            rank_of[g.id] = position
            if g.always and g.enabled:
                always.append((g.id, position, 0, (ALWAYS,)))
            elif g.enabled:
                checkable.append(r)
    ids = {r.guideline.id for r in checkable}
    reasons: dict[str, list[str]] = {}

    def add(gid: str, reason: str) -> None:
        if gid in ids:
            reasons.setdefault(gid, []).append(reason)

    def dependencies() -> list[str]:
        found: set[str] = set()
        frontier = set(reasons)
        while frontier:
            frontier = set(closure(frontier)) - found - set(reasons)
            found |= frontier
        return sorted(found)

    for r in checkable:
        gid = r.guideline.id
        why = fixed[gid] if gid in fixed else fixed_reasons(r.guideline)
        if why.high:
            add(gid, HIGH_CRITICALITY)
        if why.always_check and (prior is None or why.classification.can_hold(prior)):
            for reason in why.always_check:
                add(gid, reason)
        for found, reason in ((recent, RECENT_MATCH), (scope, JOURNEY_SCOPE)):
            if gid in found:
                add(gid, reason)
        if gid in forced:
            add(gid, forced[gid])
    # Too many forced (dependencies included): observations there for no other reason yield,
    # the lowest-ranked first.
    demoted: set[str] = set()
    over = len(reasons) + len([d for d in dependencies() if d in ids]) - (max_forced or 0)
    if max_forced is not None and over > 0:
        yielding = []
        for r in checkable:
            gid = r.guideline.id
            why = fixed[gid] if gid in fixed else fixed_reasons(r.guideline)
            kinds = why.classification.reasons
            if (
                gid in reasons
                and all(x.startswith("always-check") for x in reasons[gid])
                and not why.high
                and OBSERVATION in kinds
                and ABUSE not in kinds
            ):
                yielding.append(gid)
        demoted = set(yielding[len(yielding) - min(over, len(yielding)) :])
        for gid in demoted:
            del reasons[gid]
    for gid in dependencies():
        add(gid, DEPENDENCY)
    slots = k
    for r in checkable:
        g = r.guideline
        if slots > 0 and g.id not in reasons and g.criticality is not Criticality.LOW:
            add(g.id, f"{TOP_K} (rank {rank_of[g.id]})")
            slots -= 1
    for gid in dependencies():
        add(gid, DEPENDENCY)
    rows = [(r.guideline.id, rank_of[r.guideline.id]) for r in checkable]
    tier1 = [(gid, rank, 1, tuple(reasons[gid])) for gid, rank in rows if gid in reasons]
    tier2 = [
        (gid, rank, 2, (OVER_BUDGET,) if gid in demoted else (SCREEN,))
        for gid, rank in rows
        if gid not in reasons
    ]
    return tier1, tier2, always


def agent(seed: int, n: int = 400) -> tuple[list[Guideline], list[Relationship]]:
    """Guidelines of every kind the selection treats apart, and dependencies between them."""
    rng = random.Random(seed)
    guidelines = []
    for i in range(n):
        condition = rng.choice(CONDITIONS).format(x=rng.choice(THINGS))
        guidelines.append(
            Guideline(
                id=f"g{i:04d}",
                condition=f"{condition} (case {i})",
                # Some are observations (no action): those yield to ``max_forced``.
                action=None if i % 6 == 0 else "Help",
                criticality=rng.choice(
                    [Criticality.LOW, *[Criticality.MEDIUM] * 6, Criticality.HIGH]
                ),
                always=rng.random() < 0.02,
                enabled=rng.random() > 0.02,
                always_check=rng.choice([None, None, None, None, True, False]),
                tags=["billing"] if i % 37 == 0 else [],
            )
        )
    relationships = [
        Relationship(
            kind=rng.choice([RelationshipKind.DEPENDENCY, RelationshipKind.DEPENDENCY_ANY]),
            source=Endpoint(kind=EndpointKind.GUIDELINE, id=f"g{rng.randrange(n):04d}"),
            target=Endpoint(kind=EndpointKind.GUIDELINE, id=f"g{rng.randrange(n):04d}")
            if i % 5
            else Endpoint(kind=EndpointKind.TAG, id="billing"),
        )
        for i in range(n // 8)
    ]
    return guidelines, relationships


def ranking(guidelines: Sequence[Guideline], rng: random.Random) -> list[Ranked]:
    """Shuffled, with tied scores (a few levels only) and some guidelines ranked twice."""
    order = list(guidelines)
    rng.shuffle(order)
    order += rng.sample(order, 12)
    scores = sorted((rng.choice([0.9, 0.75, 0.5, 0.123456789, 0.0]) for _ in order), reverse=True)
    return [Ranked(g, s, focus=s / 2) for g, s in zip(order, scores, strict=True)]


def trace_json(candidates: list[Candidate]) -> str:
    return Trace(id="t", session_id="s", agent_id="a", candidates=candidates).model_dump_json(
        exclude={"creation_utc"}
    )


def records(rows: list[Row], ranked: Sequence[Ranked]) -> list[Candidate]:
    """Each record built on its own, validated."""
    first: dict[str, Ranked] = {}
    for r in ranked:
        first.setdefault(r.guideline.id, r)
    return [
        Candidate(
            guideline_id=gid,
            condition=first[gid].guideline.condition,
            score=round(first[gid].score, 4),
            rank=rank,
            tier=tier,
            reasons=list(reasons),
        )
        for gid, rank, tier, reasons in rows
    ]


def rows(selected: CandidateSet) -> tuple[list[Row], list[Row], list[Row]]:
    def of(tier: list[Selected]) -> list[Row]:
        return [(s.guideline.id, s.rank, s.tier, s.reasons) for s in tier]

    return of(selected.tier1), of(selected.tier2), of(selected.always)


@pytest.mark.parametrize("seed", range(6))
def test_tiers_reasons_and_trace_json_match_the_reference(seed: int) -> None:
    guidelines, relationships = agent(seed)
    rng = random.Random(seed + 100)
    ranked = ranking(guidelines, rng)
    closure = dependency_targets(relationships, guidelines)
    ids = [g.id for g in guidelines]
    whole = {g.id: fixed_reasons(g) for g in guidelines}
    # Worked out ahead (per snapshot), as a plain mapping, in part, or not at all.
    tables: list[Mapping[str, FixedReasons] | None] = [
        FixedTable(whole),
        whole,
        dict(rng.sample(sorted(whole.items()), len(whole) // 2)),
        None,
    ]
    for turn in range(8):
        recent = {*rng.sample(ids, 6), "unknown-id"}
        scope = set(rng.sample(ids, 5))
        forced = {gid: "has tools" for gid in rng.sample(ids, 4)}
        prior: set[str] | None = [None, set(), {"customer"}, {"customer", "agent"}][turn % 4]
        k = [0, 1, 52, 1000][turn % 4]
        fixed = tables[turn % 4]
        # No limit, none kept, or a few observations over it (some yield, some stay).
        unlimited = select_candidates(
            ranked,
            k=0,
            recent_matches=recent,
            dependency_closure=closure,
            journey_scope=scope,
            forced=forced,
            prior=prior,
            max_forced=None,
        )
        partly = len(unlimited.tier1) - rng.randrange(1, 12)
        max_forced = [None, 0, partly, DEFAULT_MAX_FORCED][turn // 2 % 4]
        chosen = select_candidates(
            ranked,
            k=k,
            recent_matches=recent,
            dependency_closure=closure,
            journey_scope=scope,
            forced=forced,
            prior=prior,
            fixed=fixed,
            classifier=classify,
            max_forced=max_forced,
        )
        expected = reference(
            ranked,
            k=k,
            recent=recent,
            closure=closure,
            scope=scope,
            forced=forced,
            prior=prior,
            fixed=whole if fixed is None else fixed,
            max_forced=max_forced,
        )
        assert rows(chosen) == expected
        # Every kind of reason is exercised somewhere in the run.
        assert chosen.tier1 and chosen.tier2 and chosen.always
        every = [*expected[0], *expected[1], *expected[2]]
        assert trace_json(chosen.candidates()) == trace_json(records(every, ranked))
        assert trace_json(chosen.candidates(20)) == trace_json(records(every[:20], ranked))


def test_the_run_covers_every_reason() -> None:
    """The cases above are only worth what they exercise."""
    seen: set[str] = set()
    for seed in range(6):
        guidelines, relationships = agent(seed)
        ranked = ranking(guidelines, random.Random(seed + 100))
        ids = [g.id for g in guidelines]
        chosen = select_candidates(
            ranked,
            k=52,
            recent_matches=ids[:6],
            journey_scope=ids[6:11],
            forced={gid: "has tools" for gid in ids[11:15]},
            dependency_closure=dependency_targets(relationships, guidelines),
        )
        for s in (*chosen.tier1, *chosen.tier2, *chosen.always):
            seen.update(r.split(":")[0].split(" (")[0] for r in s.reasons)
            seen.update(s.reasons)
    assert {
        HIGH_CRITICALITY,
        "always-check",
        RECENT_MATCH,
        JOURNEY_SCOPE,
        "has tools",
        DEPENDENCY,
        TOP_K,
        SCREEN,
        OVER_BUDGET,
        ALWAYS,
    } <= seen
