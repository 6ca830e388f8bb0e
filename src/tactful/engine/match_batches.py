"""How a turn's match work is spread over its parallel model calls (``ModelMatcher``'s batches).

The detailed checks go one by one to the lightest batch; the compact screen, most of the
guidelines at 1,000 of them, is cut into consecutive runs that even the batches out, so that a
turn does not place a thousand guidelines one at a time. Costs are prompt tokens, as the
model's tokenizer counts them, plus each listing's own (``DETAILED_COST``, ``SCREEN_COST``).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from operator import attrgetter
from typing import TypeVar

from tactful.domain import Guideline
from tactful.engine.retrieve import Ranked

# Prompt tokens of a guideline's listing beyond its condition (number, marks; answer slots).
DETAILED_COST = 12
SCREEN_COST = 3


@dataclass
class MatchBatch:
    detailed: list[Ranked]
    screened: list[Ranked]
    cost: int = 0


class ScreenListing:
    """What the screen lists of each guideline, its condition and that line's cost, remembered
    by guideline object: its ``id``, the object kept here so that no other takes that id. A
    turn at 1,000 guidelines then looks both up in one table each instead of reading every
    guideline's fields again, scattered through memory, which cost the turn more than the
    counting and the writing did. A guideline is not changed in place once defined: a new
    definition is a new object. At most ``LIMIT`` are kept, and with them the guideline objects
    themselves (about 1.3 KB each, 11 MB at most): when an agent's definitions change, its old
    snapshots' guidelines stay here until the limit clears them all. Past it (an agent of more
    guidelines, or several large agents taking turns) a turn counts again what it lists:
    slower, the same costs."""

    LIMIT = 8192

    def __init__(self, tokens: Callable[[str], int]) -> None:
        self._tokens = tokens
        self._cost: dict[int, int] = {}
        self._condition: dict[int, str] = {}
        self._kept: list[Guideline] = []

    def costs(self, screened: Sequence[Ranked]) -> list[int]:
        """Each one's screen line cost in prompt tokens (``SCREEN_COST`` included)."""
        return self._each(self._cost, screened)

    def conditions(self, screened: Sequence[Ranked]) -> list[str]:
        return self._each(self._condition, screened)

    def _each(self, table: dict[int, _T], screened: Sequence[Ranked]) -> list[_T]:
        guidelines = list(map(_GUIDELINE, screened))
        try:
            return list(map(table.__getitem__, map(id, guidelines)))
        except KeyError:
            pass
        if len(self._kept) + len(guidelines) > self.LIMIT:
            self._cost.clear()
            self._condition.clear()
            self._kept.clear()
        for g in guidelines:
            if id(g) not in self._cost:
                self._cost[id(g)] = self._tokens(g.condition) + SCREEN_COST
                self._condition[id(g)] = g.condition
                self._kept.append(g)
        return list(map(table.__getitem__, map(id, guidelines)))


_T = TypeVar("_T")
_GUIDELINE = attrgetter("guideline")


def plan_batches(
    detailed: Sequence[Ranked],
    screened: Sequence[Ranked],
    tokens: Callable[[str], int],
    *,
    batch_tokens: int,
    max_batches: int,
    listing: ScreenListing | None = None,
) -> list[MatchBatch]:
    """As few batches as ``batch_tokens`` allows (at most ``max_batches``), as even as the
    listings' costs let them be (``tokens`` counts a condition; ``listing``, kept from turn to
    turn, gives the screen's); empty ones left out."""
    detailed_costs = [tokens(r.guideline.condition) + DETAILED_COST for r in detailed]
    screen = (listing or ScreenListing(tokens)).costs(screened)
    total = sum(detailed_costs) + sum(screen)
    if total == 0:
        return []
    count = max(1, min(max_batches, -(-total // batch_tokens)))
    batches = [MatchBatch([], []) for _ in range(count)]
    # The lightest batch takes the next guideline (the first one among equals).
    lightest = [(0, i) for i in range(count)]
    for r, cost in zip(detailed, detailed_costs, strict=True):
        _, i = lightest[0]
        batches[i].detailed.append(r)
        batches[i].cost += cost
        heapq.heapreplace(lightest, (batches[i].cost, i))
    _cut_screen(batches, screened, list(accumulate(screen)))
    return [b for b in batches if b.detailed or b.screened]


def _cut_screen(batches: list[MatchBatch], screened: Sequence[Ranked], ends: list[int]) -> None:
    """Give each batch a consecutive run of ``screened`` (``ends``: the running total of their
    costs) that brings it nearest the batches' even share; the last takes what is left."""
    left = ends[-1] if ends else 0
    start = done = 0
    for n, batch in enumerate(batches):
        stop = len(screened)
        if n < len(batches) - 1:
            rest = batches[n:]
            want = done + (left + sum(b.cost for b in rest)) / len(rest) - batch.cost
            stop = bisect_left(ends, want, lo=start)
            # The nearer of the two cuts around the even share (none: a batch already over it).
            before = ends[stop - 1] if stop > start else done
            if stop < len(ends) and ends[stop] - want < want - before:
                stop += 1
        batch.screened = list(screened[start:stop])
        taken = (ends[stop - 1] if stop else 0) - done
        batch.cost += taken
        left -= taken
        done += taken
        start = stop
