"""How a turn's match work is spread over its parallel calls: few batches, even ones, the
screen cut into consecutive runs."""

from __future__ import annotations

from test_match import ranked

from tactful.domain import Guideline
from tactful.engine.match import ModelMatcher
from tactful.engine.match_batches import DETAILED_COST, SCREEN_COST, ScreenListing, plan_batches
from tactful.engine.retrieve import Ranked
from tactful.llm.base import count_tokens
from tactful.llm.scripted import ScriptedGenerator


def test_plan_spreads_work_over_at_most_three_batches() -> None:
    matcher = ModelMatcher(ScriptedGenerator(), batch_tokens=300)
    small = matcher.plan(ranked(3), ranked(5))
    assert len(small) == 1
    big = matcher.plan(ranked(30), ranked(1000))
    assert len(big) == 3
    assert sum(len(b.detailed) for b in big) == 30
    assert sum(len(b.screened) for b in big) == 1000
    loads = [b.cost for b in big]
    assert max(loads) - min(loads) < 40  # balanced within about one entry
    assert matcher.plan([], []) == []


class Wordy(ScriptedGenerator):
    """A model whose tokenizer makes every text long."""

    def count_tokens(self, text: str) -> int:
        return 100


def test_plan_sizes_batches_with_the_models_token_count() -> None:
    assert len(ModelMatcher(ScriptedGenerator(), batch_tokens=100).plan(ranked(3), [])) == 1
    assert len(ModelMatcher(Wordy(), batch_tokens=100).plan(ranked(3), [])) == 3


def test_the_screen_is_cut_in_consecutive_runs_in_ranking_order() -> None:
    screened = ranked(900)
    batches = ModelMatcher(ScriptedGenerator(), batch_tokens=3000).plan(ranked(60), screened)
    assert len(batches) == 3
    # Each batch holds one run of the screen; one after the other they are the screen itself.
    assert [r for b in batches for r in b.screened] == screened
    # Each batch's cost is what its listings cost.
    for b in batches:
        listed = [count_tokens(r.guideline.condition) for r in b.detailed]
        screen = [count_tokens(r.guideline.condition) for r in b.screened]
        assert b.cost == sum(listed) + DETAILED_COST * len(listed) + sum(
            screen
        ) + SCREEN_COST * len(screen)
    loads = [b.cost for b in batches]
    assert max(loads) - min(loads) < 30


def test_uneven_conditions_still_make_even_batches() -> None:
    # Long and short conditions mixed, the long ones first: a cut by count would be uneven.
    long = [
        Ranked(Guideline(id=f"l{i}", condition="the customer asks " + "about things " * 20), 1.0)
        for i in range(100)
    ]
    short = [Ranked(Guideline(id=f"s{i}", condition="hello there"), 0.5) for i in range(600)]
    batches = plan_batches(
        long[:10], long[10:] + short, count_tokens, batch_tokens=3000, max_batches=3
    )
    assert len(batches) == 3
    assert [r for b in batches for r in b.screened] == long[10:] + short
    loads = [b.cost for b in batches]
    assert max(loads) - min(loads) <= count_tokens(long[0].guideline.condition) + SCREEN_COST
    # The batch with the long ones takes fewer of them.
    assert len(batches[0].screened) < len(batches[-1].screened)


def test_a_batch_heavy_with_detailed_checks_takes_no_screen() -> None:
    heavy = [Ranked(Guideline(id="h", condition="word " * 400), 1.0)]
    light = ranked(2)
    screened = ranked(20, words=2)
    batches = plan_batches(heavy + light, screened, count_tokens, batch_tokens=200, max_batches=3)
    assert batches[0].detailed == heavy
    assert batches[0].screened == []
    assert [r for b in batches for r in b.screened] == screened


def test_no_screen_and_no_checks_plan_nothing() -> None:
    assert plan_batches([], [], count_tokens, batch_tokens=3000, max_batches=3) == []
    five = ranked(5)
    only = plan_batches([], five, count_tokens, batch_tokens=3000, max_batches=3)
    assert len(only) == 1
    assert only[0].screened == five


def test_the_screen_listing_counts_each_guideline_once_and_forgets_past_its_limit() -> None:
    counted: list[str] = []

    def tokens(text: str) -> int:
        counted.append(text)
        return count_tokens(text)

    listing = ScreenListing(tokens)
    screened = ranked(50)
    expected = [count_tokens(r.guideline.condition) + SCREEN_COST for r in screened]
    assert listing.costs(screened) == expected
    assert listing.costs(list(reversed(screened))) == expected[::-1]
    assert listing.conditions(screened[:2]) == [r.guideline.condition for r in screened[:2]]
    assert len(counted) == 50
    # Another guideline object with the same id is another definition: listed on its own.
    changed = Ranked(Guideline(id="g0", condition="a much longer condition than before"), 1.0)
    assert listing.conditions([changed]) == ["a much longer condition than before"]
    assert listing.costs([changed]) == [count_tokens(changed.guideline.condition) + SCREEN_COST]
    assert len(counted) == 51
    # Past the limit, what was kept is forgotten and counted again when it comes back.
    listing.LIMIT = 60
    fresh = ranked(20)
    assert listing.costs(fresh) == [
        count_tokens(r.guideline.condition) + SCREEN_COST for r in fresh
    ]
    assert len(listing._kept) == 20
    assert listing.costs(screened[:3]) == expected[:3]
    assert len(counted) == 51 + 20 + 3
