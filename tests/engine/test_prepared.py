"""Work done once per agent snapshot, not once per turn: reused while the definitions stand
still, and done again when they change."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest_asyncio

from tactful.domain import Agent, Customer, Guideline, Session
from tactful.engine.context import TurnContext, Utterance
from tactful.engine.retrieve import EmbeddingCache, Ranked, Retriever
from tactful.llm.base import Vectors
from tactful.llm.scripted import HashingEmbedder
from tactful.store.base import Store
from tactful.store.sql import open_store

GUIDELINES = (
    Guideline(id="refund", condition="The customer asks for a refund of their purchase"),
    Guideline(id="ship", condition="The customer asks how much shipping costs"),
    Guideline(id="greet", condition="The customer only greets the agent"),
    Guideline(id="stolen", condition="The customer says a delivered package was stolen"),
)
GIFT_CARDS = "The customer asks whether we sell gift cards"


@pytest_asyncio.fixture
async def store() -> AsyncIterator[Store]:
    s = await open_store("sqlite+aiosqlite:///:memory:")
    yield s
    await s.close()


def _context(message: str) -> TurnContext:
    agent = Agent(name="Shop")
    return TurnContext(
        agent=agent,
        session=Session(agent_id=agent.id, customer_id="c"),
        customer=Customer(name="c"),
        messages=[Utterance(role="customer", text=message, offset=0)],
        guidelines=[],
        canned_responses=[],
        terms=[],
    )


class _Recording(EmbeddingCache):
    """Remembers every list of texts looked up."""

    def __init__(self, store: Store) -> None:
        super().__init__(HashingEmbedder(), store)
        self.looked_up: list[list[str]] = []

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.looked_up.append(list(texts))
        return await super().embed(texts)


def _focus(ranked: Sequence[Ranked], guideline_id: str) -> float:
    return next(r.focus for r in ranked if r.guideline.id == guideline_id)


def _edited(guidelines: Sequence[Guideline]) -> tuple[Guideline, ...]:
    return tuple(
        g.model_copy(update={"condition": GIFT_CARDS}) if g.id == "greet" else g for g in guidelines
    )


async def test_the_same_guidelines_ranked_again_are_not_looked_up_again(store: Store) -> None:
    cache = _Recording(store)
    retriever = Retriever(cache)
    await retriever.rank(_context("I want a refund"), GUIDELINES)
    assert any(GUIDELINES[0].condition in texts for texts in cache.looked_up)

    cache.looked_up.clear()
    again = await retriever.rank(_context("how much does shipping cost?"), GUIDELINES)
    assert again[0].guideline.id == "ship"
    # Only the messages were looked up: the guidelines' rows were kept from the first turn.
    assert not any(g.condition in texts for g in GUIDELINES for texts in cache.looked_up)


async def test_an_edited_guideline_is_ranked_by_its_new_condition(store: Store) -> None:
    retriever = Retriever(EmbeddingCache(HashingEmbedder(), store))
    message = _context("do you sell gift cards?")
    assert _focus(await retriever.rank(message, GUIDELINES), "greet") < 0.1

    ranked = await retriever.rank(message, _edited(GUIDELINES))
    assert _focus(ranked, "greet") > 0.4
    assert ranked[0].guideline.condition == GIFT_CARDS


async def test_a_list_changed_in_place_is_ranked_as_it_is_now(store: Store) -> None:
    retriever = Retriever(EmbeddingCache(HashingEmbedder(), store))
    message = _context("do you sell gift cards?")
    guidelines = list(GUIDELINES)
    assert _focus(await retriever.rank(message, guidelines), "greet") < 0.1

    guidelines[:] = _edited(guidelines)
    assert _focus(await retriever.rank(message, guidelines), "greet") > 0.4
