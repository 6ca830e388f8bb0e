"""Candidate selection over the retriever's ``Ranking``: the ids it carries stand in for the
guidelines' own, and the candidate set is the one a plain list of the same rankings gives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from tactful.domain import Agent, Criticality, Customer, Guideline, Session
from tactful.engine.candidates import (
    SCREEN,
    CandidateSet,
    FixedTable,
    Screen,
    Selected,
    fixed_reasons,
    select_candidates,
)
from tactful.engine.context import TurnContext, Utterance
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.retrieve import Ranked, Ranking, Retriever
from tactful.llm.scripted import HashingEmbedder
from tactful.store.base import Store


def context(*messages: str) -> TurnContext:
    agent = Agent(name="Shop")
    return TurnContext(
        agent=agent,
        session=Session(agent_id=agent.id, customer_id="c"),
        customer=Customer(name="c"),
        messages=[Utterance(role="customer", text=t, offset=i) for i, t in enumerate(messages)],
        guidelines=[],
        canned_responses=[],
        terms=[],
    )


TOPICS = ["refund", "shipping", "paypal", "stolen", "warranty", "points", "invoice", "address"]


def guidelines(prefix: str = "") -> tuple[Guideline, ...]:
    out: list[Guideline] = []
    for i in range(60):
        topic = TOPICS[i % len(TOPICS)]
        extra: dict[str, Any] = {}
        if i % 11 == 0:
            extra["criticality"] = Criticality.HIGH
        if i % 13 == 0:
            extra["criticality"] = Criticality.LOW
        # No action: an observation (in the always-check set).
        action = None if i % 7 == 0 else f"help with {topic} ({i})"
        condition = f"The customer asks about {topic} case {i}"
        out.append(Guideline(id=f"{prefix}g{i}", condition=condition, action=action, **extra))
    return tuple(out)


def described(cs: CandidateSet) -> list[tuple[str, int, int, tuple[str, ...], float]]:
    return [
        (s.guideline.id, s.rank, s.tier, s.reasons, s.ranked.score)
        for s in (*cs.tier1, *cs.tier2, *cs.always, *cs.disabled)
    ]


SELECTIONS: list[dict[str, Any]] = [
    {},
    {"k": 5},
    {"k": 0, "recent_matches": {"g3", "g40"}},
    {"k": 8, "journey_scope": {"g59", "g1"}, "forced": {"g20": "tool"}},
    {"k": 3, "dependency_closure": {"g12", "g30"}, "max_forced": 2},
    {"k": 10, "prior": ()},
    {"k": 60},
]


@pytest.mark.parametrize("selection", SELECTIONS)
async def test_a_rankings_candidates_are_those_of_the_same_rankings_in_a_list(
    store: Store, selection: dict[str, Any]
) -> None:
    guides = guidelines()
    retriever = Retriever(EmbeddingCache(HashingEmbedder(), store))
    ranking = await retriever.rank(context("I want a refund for the stolen parcel"), guides)
    assert isinstance(ranking, Ranking) and ranking.plain
    assert ranking.ids == [r.guideline.id for r in ranking]
    assert ranking.members == {g.id for g in guides}
    fixed = FixedTable({g.id: fixed_reasons(g) for g in guides})
    fast = select_candidates(ranking, fixed=fixed, **selection)
    slow = select_candidates(list(ranking), fixed=dict(fixed.by_id), **selection)
    assert described(fast) == described(slow)
    # Tier 1 is not empty for every selection, and tier 2 holds everything else.
    assert len(fast.tier1) + len(fast.tier2) == len(guides)
    assert [s.rank for s in fast.tier2] == sorted(s.rank for s in fast.tier2)


async def test_a_ranking_carries_its_own_guidelines_ids_not_those_of_the_same_conditions(
    store: Store,
) -> None:
    """Layouts are kept by content (conditions): two agents with the same conditions share
    one, and each ranking still carries its own guidelines' ids."""
    retriever = Retriever(EmbeddingCache(HashingEmbedder(), store))
    ctx = context("where is my refund")
    first = await retriever.rank(ctx, guidelines("a-"))
    second = await retriever.rank(ctx, guidelines("b-"))
    assert first.ids == [f"a-{gid[2:]}" for gid in second.ids]
    assert second.ids == [r.guideline.id for r in second]
    assert all(gid.startswith("b-") for gid in second.members)


async def test_a_ranking_with_disabled_or_always_matched_guidelines_is_not_plain(
    store: Store,
) -> None:
    guides: Sequence[Guideline] = (
        *guidelines()[:10],
        Guideline(id="off", condition="The customer asks about refund off", enabled=False),
        Guideline(id="all", condition="The customer asks about refund all", always=True),
    )
    retriever = Retriever(EmbeddingCache(HashingEmbedder(), store))
    ranking = await retriever.rank(context("refund please"), guides)
    assert not ranking.plain
    fast, slow = select_candidates(ranking, k=3), select_candidates(list(ranking), k=3)
    assert described(fast) == described(slow)
    assert [s.guideline.id for s in fast.disabled] == ["off"]
    assert [s.guideline.id for s in fast.always] == ["all"]


async def test_a_ranking_without_hidden_guidelines_selects_as_the_filtered_list(
    store: Store,
) -> None:
    guides = guidelines()
    retriever = Retriever(EmbeddingCache(HashingEmbedder(), store))
    ranking = await retriever.rank(context("points on my invoice"), guides)
    hidden = {"g2", "g9", "g33", "nowhere"}
    shown = ranking.without(hidden)
    assert (
        shown.ids
        == [r.guideline.id for r in shown]
        == [r.guideline.id for r in ranking if r.guideline.id not in hidden]
    )
    assert shown.members == {g.id for g in guides} - hidden
    kept = [r for r in ranking if r.guideline.id not in hidden]
    assert described(select_candidates(shown, k=7, recent_matches={"g4"})) == described(
        select_candidates(kept, k=7, recent_matches={"g4"})
    )


def test_the_fixed_table_says_which_ids_it_lacks_again_for_another_set() -> None:
    guides = guidelines()
    table = FixedTable({g.id: fixed_reasons(g) for g in guides[:50]})
    members = frozenset(g.id for g in guides)
    assert table.missing(members) == {g.id for g in guides[50:]}
    assert table.missing(members) == {g.id for g in guides[50:]}
    fewer = frozenset(g.id for g in guides[45:])
    assert table.missing(fewer) == {g.id for g in guides[50:]}
    assert table.missing({"g1", "zz"}) == {"zz"}


def test_an_empty_ranking_selects_nothing() -> None:
    cs = select_candidates(Ranking([], [], frozenset(), plain=True))
    assert (cs.tier1, cs.tier2) == ([], [])
    assert select_candidates([Ranked(guidelines()[1], 1.0)], k=1).tier1[0].rank == 1


async def test_the_screen_of_a_ranking_is_made_only_when_its_records_are_read(
    store: Store,
) -> None:
    guides = guidelines()
    retriever = Retriever(EmbeddingCache(HashingEmbedder(), store))
    ranking = await retriever.rank(context("I want a refund for the stolen parcel"), guides)
    chosen = select_candidates(ranking, k=5)
    screen = chosen.tier2
    assert isinstance(screen, Screen)
    first = {s.guideline.id for s in chosen.tier1}
    expected = [
        Selected(r, rank, 2, (SCREEN,))
        for rank, r in enumerate(ranking, start=1)
        if r.guideline.id not in first
    ]
    # The matcher's guidelines come from the ranking's runs: no record is made for them.
    assert chosen.screened == [s.ranked for s in expected]
    assert screen._made is None
    assert len(screen) == len(expected) == len(guides) - len(first)
    # Read, the records are those a list would hold, in ranking order.
    assert list(screen) == expected
    assert screen == expected and screen != expected[1:] and screen != "screen"
    assert (screen[0], screen[-1], screen[1:3]) == (expected[0], expected[-1], expected[1:3])
    assert chosen.candidates()[len(first)].guideline_id == expected[0].guideline.id
