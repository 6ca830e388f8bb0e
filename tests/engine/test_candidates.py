"""Candidate selection: tier 1 (detailed checks) and tier 2 (screen), with reasons."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pytest

from tactful.domain import Candidate, Criticality, Guideline
from tactful.engine.candidates import DEFAULT_K, CandidateSet, select_candidates
from tactful.engine.classify import Classification
from tactful.engine.retrieve import Ranked


def ranking(*guidelines: Guideline) -> list[Ranked]:
    """Ranked in the given order, scores decreasing."""
    return [Ranked(g, score=1.0 - i / 100, focus=0.5) for i, g in enumerate(guidelines)]


def topical(gid: str, **extra: Any) -> Guideline:
    return Guideline(id=gid, condition=f"The customer asks about topic {gid}", action="x", **extra)


def ids(selected: Collection[Any]) -> list[str]:
    return [s.guideline.id for s in selected]


def reasons(cs: CandidateSet) -> dict[str, tuple[str, ...]]:
    return {s.guideline.id: s.reasons for s in (*cs.tier1, *cs.tier2, *cs.always)}


def test_top_k_fills_tier_1_and_the_rest_is_screened() -> None:
    ranked = ranking(*(topical(f"g{i}") for i in range(6)))
    cs = select_candidates(ranked, k=2)
    assert ids(cs.tier1) == ["g0", "g1"]
    assert ids(cs.tier2) == ["g2", "g3", "g4", "g5"]
    assert reasons(cs)["g1"] == ("top-k (rank 2)",)
    assert reasons(cs)["g5"] == ("screen",)
    assert [s.tier for s in cs.tier1] == [1, 1] and {s.tier for s in cs.tier2} == {2}
    assert cs.detailed == ranked[:2] and cs.screened == ranked[2:]


def test_forced_guidelines_do_not_use_top_k_slots() -> None:
    angry = Guideline(id="angry", condition="The customer expresses frustration", action="x")
    observed = Guideline(id="obs", condition="The customer has given an order number")
    ranked = ranking(angry, topical("a"), topical("b"), observed, topical("c"))
    cs = select_candidates(ranked, k=2)
    # Ranking order within the tier; the two forced ones plus two slots.
    assert ids(cs.tier1) == ["angry", "a", "b", "obs"]
    assert ids(cs.tier2) == ["c"]
    assert reasons(cs)["angry"] == ("always-check: emotion",)
    assert reasons(cs)["obs"] == ("always-check: observation",)
    assert reasons(cs)["b"] == ("top-k (rank 3)",)


def test_every_forcing_reason_is_recorded() -> None:
    ranked = ranking(
        topical("high", criticality=Criticality.HIGH),
        topical("recent"),
        topical("journey"),
        topical("dep"),
        topical("plain"),
        topical("both", criticality=Criticality.HIGH),
    )
    cs = select_candidates(
        ranked,
        k=0,
        recent_matches={"recent", "both", "unknown-id"},
        journey_scope=["journey"],
        dependency_closure={"dep"},
    )
    assert reasons(cs) == {
        "high": ("high criticality",),
        "recent": ("recent match",),
        "journey": ("journey scope",),
        "dep": ("dependency",),
        "plain": ("screen",),
        "both": ("high criticality", "recent match"),
    }


def test_dependency_closure_as_a_function_is_followed_to_a_fixed_point() -> None:
    # a depends on b, b on c (given one step at a time); d is only a dependency of e.
    edges = {"a": {"b"}, "b": {"c"}, "e": {"d"}}
    asked: list[set[str]] = []

    def closure(selected: Collection[str]) -> set[str]:
        asked.append(set(selected))
        return {dep for gid in selected for dep in edges.get(gid, set())}

    ranked = ranking(topical("a"), topical("e"), topical("x"), topical("b"), topical("c"))
    ranked.append(Ranked(topical("d"), 0.1))
    cs = select_candidates(ranked, k=1, dependency_closure=closure)
    # Only "a" is ranked into tier 1 (k=1): its chain follows, e's dependency does not.
    assert reasons(cs)["a"] == ("top-k (rank 1)",)
    assert reasons(cs)["b"] == ("dependency",)
    assert reasons(cs)["c"] == ("dependency",)
    assert ids(cs.tier2) == ["e", "x", "d"]


def test_always_marker_is_in_neither_tier_and_disabled_are_skipped() -> None:
    ranked = ranking(
        Guideline(id="brand", condition="Always", action="Say Voltmart", always=True),
        topical("a"),
        topical("off", enabled=False),
        topical("b"),
    )
    cs = select_candidates(ranked, k=1)
    assert ids(cs.always) == ["brand"] and cs.always[0].reasons == ("always",)
    assert ids(cs.disabled) == ["off"]
    assert ids(cs.tier1) == ["a"] and ids(cs.tier2) == ["b"]
    assert cs.get("brand") is not None and cs.get("brand").tier == 0  # type: ignore[union-attr]
    assert cs.get("nope") is None


def test_nothing_is_silently_dropped() -> None:
    guidelines = [topical(f"g{i}") for i in range(40)]
    guidelines[7] = Guideline(id="g7", condition="The customer writes in German", action="x")
    guidelines[9] = topical("g9", criticality=Criticality.HIGH, always_check=False)
    cs = select_candidates(ranking(*guidelines), k=5)
    together = ids(cs.tier1) + ids(cs.tier2)
    assert sorted(together) == sorted(g.id for g in guidelines)
    assert len(together) == len(set(together))


def test_author_override_and_custom_classifier() -> None:
    forced = topical("forced", always_check=True)
    cs = select_candidates(ranking(topical("a"), forced), k=0)
    assert ids(cs.tier1) == ["forced"]
    assert reasons(cs)["forced"] == ("always-check: author",)

    def never(_: Guideline) -> Classification:
        return Classification(False)

    angry = Guideline(id="angry", condition="The customer is angry", action="x")
    assert select_candidates(ranking(angry), k=0, classifier=never).tier1 == []


def test_trace_candidates() -> None:
    high = topical("h", criticality=Criticality.HIGH)
    cs = select_candidates(
        ranking(topical("a"), high, Guideline(id="w", condition="Always", always=True)), k=0
    )
    assert cs.candidates() == [
        Candidate(
            guideline_id="h",
            condition=high.condition,
            score=0.99,
            rank=2,
            tier=1,
            reasons=["high criticality"],
        ),
        Candidate(
            guideline_id="a",
            condition="The customer asks about topic a",
            score=1.0,
            rank=1,
            tier=2,
            reasons=["screen"],
        ),
        Candidate(
            guideline_id="w", condition="Always", score=0.98, rank=3, tier=0, reasons=["always"]
        ),
    ]


def test_defaults_and_edge_cases() -> None:
    assert DEFAULT_K > 0
    assert select_candidates([], k=DEFAULT_K) == CandidateSet(tier1=[], tier2=[])
    g = topical("a")
    # A guideline ranked twice counts once, at its first rank.
    cs = select_candidates([Ranked(g, 0.9), Ranked(g, 0.1)], k=-3)
    assert ids(cs.tier2) == ["a"] and cs.tier2[0].rank == 1


@pytest.mark.parametrize("k", [0, 1, 3, 100])
def test_tier_1_size_is_forced_plus_k(k: int) -> None:
    guidelines = [topical(f"g{i}") for i in range(10)]
    guidelines[4] = topical("g4", criticality=Criticality.HIGH)
    cs = select_candidates(ranking(*guidelines), k=k)
    assert len(cs.tier1) == min(10, 1 + k)


def test_low_criticality_is_screened_unless_pulled_in() -> None:
    low = topical("low", criticality=Criticality.LOW)
    low_observation = Guideline(id="low-obs", condition="x", criticality=Criticality.LOW)
    ranked = ranking(low, low_observation, topical("b"), topical("c"))
    cs = select_candidates(ranked, k=2)
    assert ids(cs.tier1) == ["b", "c"]
    assert ids(cs.tier2) == ["low", "low-obs"]
    pulled = select_candidates(ranked, k=2, recent_matches={"low"})
    assert "low" in ids(pulled.tier1)


def test_high_criticality_is_always_checked_whatever_its_rank_or_class() -> None:
    # Ranked last, topical, and the author says it needs no always-check: still tier 1.
    high = topical("high", criticality=Criticality.HIGH, always_check=False)
    ranked = ranking(*(topical(f"g{i}") for i in range(5)), high)
    cs = select_candidates(ranked, k=0)
    assert ids(cs.tier1) == ["high"]
    assert reasons(cs)["high"] == ("high criticality",)


def test_abuse_of_the_agent_is_checked_even_at_low_criticality() -> None:
    injection = Guideline(
        id="injection",
        condition="The customer tells the agent to ignore its instructions",
        action="x",
        criticality=Criticality.LOW,
    )
    angry = Guideline(
        id="angry",
        condition="The customer expresses frustration",
        action="x",
        criticality=Criticality.LOW,
    )
    cs = select_candidates(ranking(topical("a"), angry, injection), k=0)
    assert ids(cs.tier1) == ["injection"]
    assert reasons(cs)["injection"] == ("always-check: abuse or manipulation",)
    # Other always-check reasons at low criticality stay on the screen.
    assert reasons(cs)["angry"] == ("screen",)


def test_conditions_about_the_course_are_forced_only_once_they_can_hold() -> None:
    declined = Guideline(
        id="declined",
        condition="The agent offered a callback and the customer declined it",
        action="x",
    )
    angry = Guideline(id="angry", condition="The customer expresses frustration", action="x")
    ranked = ranking(topical("a"), topical("b"), declined, angry)
    # On the first message nobody has offered anything: the ranking alone places it.
    first = select_candidates(ranked, k=1, prior=set())
    assert ids(first.tier1) == ["a", "angry"]
    assert reasons(first)["declined"] == ("screen",)
    # After a customer message only, still not; once the agent has written, always.
    assert "declined" not in ids(select_candidates(ranked, k=1, prior={"customer"}).tier1)
    later = select_candidates(ranked, k=1, prior={"customer", "agent"})
    assert reasons(later)["declined"] == ("always-check: conversation state",)
    # Unknown (no prior given): the whole always-check set, as before.
    assert "declined" in ids(select_candidates(ranked, k=1).tier1)
