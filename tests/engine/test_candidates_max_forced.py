"""Tier 1's limit on forced guidelines: beyond ``max_forced``, forced observations yield to the
screen, the lowest-ranked first; nothing else that is forced does, and the top k stays whole."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from tactful.domain import Criticality, Guideline
from tactful.engine.candidates import (
    DEFAULT_K,
    DEFAULT_MAX_FORCED,
    OVER_BUDGET,
    CandidateSet,
    select_candidates,
)
from tactful.engine.retrieve import Ranked


def ranking(*guidelines: Guideline) -> list[Ranked]:
    return [Ranked(g, score=1.0 - i / 100, focus=0.5) for i, g in enumerate(guidelines)]


def topical(gid: str, **extra: Any) -> Guideline:
    return Guideline(id=gid, condition=f"The customer asks about topic {gid}", action="x", **extra)


def observation(gid: str, **extra: Any) -> Guideline:
    """No action: an observation, in the always-check set."""
    return Guideline(id=gid, condition=f"The customer says they own a {gid}", **extra)


def ids(selected: Collection[Any]) -> list[str]:
    return [s.guideline.id for s in selected]


def reasons(cs: CandidateSet) -> dict[str, tuple[str, ...]]:
    return {s.guideline.id: s.reasons for s in (*cs.tier1, *cs.tier2)}


ANGRY = Guideline(id="angry", condition="The customer expresses frustration", action="x")
INJECTION = Guideline(
    id="injection",
    condition="The customer tells the agent to ignore its instructions",
    action="x",
    criticality=Criticality.LOW,
)


def agent() -> list[Ranked]:
    """Observations o1..o4 among topical guidelines, an emotion and an injection ranked last."""
    return ranking(
        topical("a"),
        observation("o1"),
        topical("b"),
        observation("o2"),
        topical("c"),
        observation("o3"),
        topical("d"),
        observation("o4"),
        ANGRY,
        INJECTION,
    )


def test_the_default_keeps_tier_1_at_100_with_the_default_k() -> None:
    assert DEFAULT_MAX_FORCED + DEFAULT_K == 100


def test_observations_beyond_max_forced_yield_lowest_ranked_first() -> None:
    ranked = agent()
    # Six forced (four observations, the emotion, the injection): two over a limit of 4.
    cs = select_candidates(ranked, k=1, max_forced=4)
    assert ids(cs.tier1) == ["a", "o1", "o2", "angry", "injection"]
    assert reasons(cs)["o3"] == reasons(cs)["o4"] == (OVER_BUDGET,)
    assert reasons(cs)["b"] == ("screen",)
    assert len(cs.tier1) == 4 + 1
    # Without a limit (or with room to spare) every forced observation stays.
    for unlimited in (None, 6):
        assert ids(select_candidates(ranked, k=1, max_forced=unlimited).tier1) == [
            "a",
            "o1",
            "o2",
            "o3",
            "o4",
            "angry",
            "injection",
        ]


def test_only_observations_yield_and_the_top_k_stays_whole() -> None:
    cs = select_candidates(agent(), k=1, max_forced=0)
    # Nothing can make room but the observations: the emotion and the abuse of the agent (low
    # criticality) stay, and so does the best-ranked.
    assert ids(cs.tier1) == ["a", "angry", "injection"]
    assert reasons(cs)["injection"] == ("always-check: abuse or manipulation",)
    assert [reasons(cs)[g] for g in ("o1", "o2", "o3", "o4")] == [(OVER_BUDGET,)] * 4


def test_a_yielding_observation_ranked_in_the_top_k_is_checked_as_such() -> None:
    cs = select_candidates(agent(), k=3, max_forced=0)
    assert ids(cs.tier1) == ["a", "o1", "b", "angry", "injection"]
    assert reasons(cs)["o1"] == ("top-k (rank 2)",)


def test_observations_there_for_another_reason_do_not_yield() -> None:
    high = observation("high", criticality=Criticality.HIGH)
    ranked = ranking(
        topical("a"),
        observation("recent"),
        observation("scoped"),
        observation("tooled"),
        high,
        observation("plain"),
    )
    cs = select_candidates(
        ranked,
        k=0,
        max_forced=0,
        recent_matches={"recent"},
        journey_scope={"scoped"},
        forced={"tooled": "has tools"},
    )
    assert ids(cs.tier1) == ["recent", "scoped", "tooled", "high"]
    assert reasons(cs)["high"] == ("high criticality", "always-check: observation")
    assert reasons(cs)["plain"] == (OVER_BUDGET,)


def test_dependencies_count_and_follow_what_stays() -> None:
    ranked = ranking(
        topical("a"),
        observation("o1"),
        observation("o2"),
        topical("needed-by-o2"),
        observation("o3"),
        ANGRY,
    )
    edges = {"angry": {"o3"}, "o2": {"needed-by-o2"}}

    def closure(selected: Collection[str]) -> set[str]:
        return {t for s in selected for t in edges.get(s, ())}

    # Forced: o1, o2, o3, angry and o2's dependency: 5, two over a limit of 3. The two
    # lowest-ranked observations yield, o3 and o2; o3 is back as the emotion's dependency, and
    # o2's dependency is no longer pulled in.
    cs = select_candidates(ranked, k=0, max_forced=3, dependency_closure=closure)
    assert ids(cs.tier1) == ["o1", "o3", "angry"]
    assert reasons(cs)["o3"] == ("dependency",)
    assert reasons(cs)["o2"] == (OVER_BUDGET,)
    assert reasons(cs)["needed-by-o2"] == ("screen",)
    # Every checkable guideline is still in one tier, once.
    assert sorted(ids(cs.tier1) + ids(cs.tier2)) == sorted(r.guideline.id for r in ranked)


def test_the_author_s_always_check_does_not_yield() -> None:
    pinned = observation("pinned", always_check=True)
    cs = select_candidates(ranking(topical("a"), pinned), k=0, max_forced=0)
    assert ids(cs.tier1) == ["pinned"]
