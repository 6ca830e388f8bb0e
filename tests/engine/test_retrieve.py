"""Retrieval: the embedding cache, condition and message views, BM25, and the hybrid fusion."""

from __future__ import annotations

import numpy as np
import pytest

from tactful.domain import Agent, Customer, Guideline, Session
from tactful.engine import retrieve
from tactful.engine.context import TurnContext, Utterance
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.lexical import LexicalIndex, LexicalIndexCache, stem, tokenize
from tactful.engine.retrieve import (
    Ranked,
    Retriever,
    condition_views,
    core,
    first_person,
    sentences,
)
from tactful.llm.scripted import HashingEmbedder
from tactful.store.base import Store


def context(*messages: str, roles: tuple[str, ...] = ()) -> TurnContext:
    agent = Agent(name="Shop")
    utterances = [
        Utterance(role=roles[i] if i < len(roles) else "customer", text=t, offset=i)
        for i, t in enumerate(messages)
    ]
    return TurnContext(
        agent=agent,
        session=Session(agent_id=agent.id, customer_id="c"),
        customer=Customer(name="c"),
        messages=utterances,
        guidelines=[],
        canned_responses=[],
        terms=[],
    )


GUIDELINES = [
    Guideline(id="refund", condition="The customer asks for a refund of their purchase"),
    Guideline(id="ship", condition="The customer asks how much shipping costs"),
    Guideline(id="paypal", condition="The customer paid with PayPal and asks about it"),
    Guideline(id="greet", condition="The customer only greets the agent"),
    Guideline(id="stolen", condition="The customer says a delivered package was stolen"),
]


# --- views ----------------------------------------------------------------------------------


def test_first_person_rewrites_a_condition_in_the_customers_voice() -> None:
    assert first_person("The customer wants to cancel their order") == "I want to cancel my order"
    assert first_person("The customer's card was declined") == "My card was declined"
    assert (
        first_person("The customer says they are confused by the agent's explanation")
        == "I am confused by your explanation"
    )
    assert first_person("A premium member asks about shipping") == (
        "I am a premium member and I ask about shipping"
    )
    assert first_person("A customer who is not a premium member asks about fees") == (
        "I am not a premium member and I ask about fees"
    )
    assert first_person("The agent has already asked twice") == "You have already asked twice"


def test_core_drops_the_frame_and_trailing_qualifiers() -> None:
    assert core("The customer asks whether Voltmart delivers on weekends") == (
        "Voltmart delivers on weekends"
    )
    assert core("The customer asks how much shipping costs") == "how much shipping costs"
    assert core("The customer wants to return an item, and has given an order number") == (
        "return an item"
    )
    assert core("The customer wants to update the address (not on a specific order)") == (
        "update the address"
    )
    # Nothing to drop: the condition itself.
    assert core("Always") == "Always"


def test_condition_views_start_with_the_condition_and_do_not_repeat() -> None:
    g = Guideline(condition="The customer wants a refund")
    views = condition_views(g)
    assert views[0] == g.condition
    assert len(views) == len(set(views)) == 3
    assert condition_views(Guideline(condition="Always")) == ["Always"]


def test_sentences_split_only_messages_with_several() -> None:
    assert sentences("My TV is broken. Also, can I change my address?") == [
        "My TV is broken.",
        "Also, can I change my address?",
    ]
    assert sentences("my order is late and I am annoyed") == []
    # Fragments under three words are noise, not requests.
    assert sentences("Hi. Where is my order please?") == []


# --- lexical --------------------------------------------------------------------------------


def test_tokenize_drops_stop_words_and_stems() -> None:
    assert tokenize("The customer asks for refunds") == ["refun"]
    assert stem("refunded") == stem("refunds") == stem("refunding") == "refun"
    assert stem("delivered") == stem("delivery")[:5] == stem("deliver")
    assert tokenize("I can't log in!!") == ["log"]


def test_bm25_prefers_the_rare_shared_term() -> None:
    index = LexicalIndex([g.condition for g in GUIDELINES])
    scores = index.scores("I paid with paypal, where is my money?")
    assert int(np.argmax(scores)) == 2
    assert index.scores("zebra crossing").sum() == 0.0
    assert len(index) == len(GUIDELINES)
    assert LexicalIndex([]).scores("anything").shape == (0,)


def test_lexical_index_is_built_once_per_content() -> None:
    cache = LexicalIndexCache(size=2)
    first = cache.index(GUIDELINES)
    assert cache.index(list(GUIDELINES)) is first  # same content, another list
    assert cache.builds == 1
    changed = [*GUIDELINES[:-1], Guideline(id="stolen", condition="Something else")]
    assert cache.index(changed) is not first
    with_examples = [*GUIDELINES[:-1], GUIDELINES[-1].model_copy(update={"examples": ["gone"]})]
    cache.index(with_examples)
    assert cache.builds == 3
    cache.index(GUIDELINES)  # evicted (size 2): built again
    assert cache.builds == 4


# --- ranking --------------------------------------------------------------------------------


async def test_hybrid_ranking_is_sorted_by_a_normalised_fused_score(store: Store) -> None:
    retriever = Retriever(EmbeddingCache(HashingEmbedder(), store))
    ranked = await retriever.rank(context("Can I get a refund of my purchase?"), GUIDELINES)
    assert ranked[0].guideline.id == "refund"
    scores = [r.score for r in ranked]
    assert scores == sorted(scores, reverse=True)
    # First in both the dense and the lexical ranking: exactly 1.
    assert ranked[0].score == pytest.approx(1.0)
    assert all(0 < s <= 1.0 for s in scores)
    assert ranked[0].lexical > 0 and ranked[0].similarity > 0


async def test_focus_is_the_same_with_or_without_hybrid_ranking(store: Store) -> None:
    cache = EmbeddingCache(HashingEmbedder(), store)
    ctx = context("hello", "my parcel was stolen from the porch", "and shipping costs?")
    hybrid = {r.guideline.id: r for r in await Retriever(cache).rank(ctx, GUIDELINES)}
    dense = {r.guideline.id: r for r in await Retriever(cache, hybrid=False).rank(ctx, GUIDELINES)}
    for gid, r in dense.items():
        assert hybrid[gid].focus == pytest.approx(r.focus)
        # Dense-only keeps the engine's previous meaning: score is the similarity.
        assert r.score == r.similarity
    # Focus weighs the latest message only.
    assert max(dense.values(), key=lambda r: r.focus).guideline.id == "ship"


async def test_sentences_of_a_long_message_find_a_second_request(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    retriever = Retriever(EmbeddingCache(HashingEmbedder(), store), lexical_weight=0.0)
    message = (
        "I bought a lamp last month and it flickers and the store was closed and my "
        "neighbour said it is normal for lamps to flicker sometimes. Also my package was stolen."
    )
    ranked = await retriever.rank(context(message), GUIDELINES)
    assert ranked[0].guideline.id == "stolen"
    with_sentences = ranked[0].similarity

    monkeypatch.setattr(retrieve, "sentences", lambda text, min_words=3: [])
    ranked = await retriever.rank(context(message), GUIDELINES)
    stolen = next(r for r in ranked if r.guideline.id == "stolen")
    assert stolen.similarity < with_sentences


async def test_examples_stand_in_for_the_condition(store: Store) -> None:
    guidelines = [
        *GUIDELINES,
        Guideline(
            id="human",
            condition="The customer asks for a person",
            examples=["let me talk to a real human being"],
        ),
    ]
    ranked = await Retriever(EmbeddingCache(HashingEmbedder(), store)).rank(
        context("can I talk to a real human being"), guidelines
    )
    assert ranked[0].guideline.id == "human"
    assert ranked[0].focus > 0.5


async def test_a_restart_with_unchanged_guidelines_embeds_only_the_messages(
    store: Store,
) -> None:
    first = HashingEmbedder()
    await Retriever(EmbeddingCache(first, store)).rank(context("a refund please"), GUIDELINES)
    assert sum(len(c) for c in first.calls) > len(GUIDELINES)

    restarted = HashingEmbedder()  # a new process: empty memory, same store
    await Retriever(EmbeddingCache(restarted, store)).rank(
        context("where is my parcel"), GUIDELINES
    )
    # The message (which is also the whole window): conditions and their views come from the
    # store.
    assert restarted.calls == [["where is my parcel"]]


async def test_no_guidelines_and_no_messages(store: Store) -> None:
    retriever = Retriever(EmbeddingCache(HashingEmbedder(), store))
    assert await retriever.rank(context("hi"), []) == []
    ranked = await retriever.rank(context(), GUIDELINES)
    assert {r.guideline.id for r in ranked} == {g.id for g in GUIDELINES}


# --- earlier questions ----------------------------------------------------------------------

POINTS_CONVERSATION = (
    "How do I redeem my VoltPoints? Is there a minimum to spend them?",
    "You can apply VoltPoints at checkout.",
    "ok. Separately, my order VM12345678 has not shipped yet",
    "It ships tomorrow.",
    "can I change the delivery address then",
    "Yes, in Orders > Change address.",
    "and what's your return window",
    "30 days from delivery.",
    "going back to points: is it a 500 minimum?",
)
POINTS_ROLES = ("customer", "agent") * 4 + ("customer",)
POINTS_GUIDELINES = [
    *GUIDELINES,
    Guideline(id="redeem", condition="The customer asks how to redeem or spend VoltPoints"),
    Guideline(id="address", condition="The customer wants to change the delivery address"),
    Guideline(id="window", condition="The customer asks how long the return window is"),
    Guideline(id="late", condition="The customer says their order has not shipped yet"),
    Guideline(id="tv", condition="The customer asks which TV sizes are in stock"),
    Guideline(id="price", condition="The customer asks whether a price will go down soon"),
]


def test_earlier_customer_questions_reach_back_beyond_the_latest_three() -> None:
    ctx = context(*POINTS_CONVERSATION, roles=POINTS_ROLES)
    assert POINTS_CONVERSATION[0] not in ctx.recent_customer_messages(3)
    # The first message asks; the second only states (it is no question).
    assert ctx.earlier_customer_questions(after=3) == [POINTS_CONVERSATION[0]]
    assert ctx.earlier_customer_questions(after=3, count=0) == []
    assert ctx.earlier_customer_questions(after=3, within=3) == []
    assert context("how do I pay?", "ok").earlier_customer_questions(after=3) == []


async def test_a_customer_going_back_to_an_earlier_question_keeps_it_ranked(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    retriever = Retriever(EmbeddingCache(HashingEmbedder(), store))
    ctx = context(*POINTS_CONVERSATION, roles=POINTS_ROLES)

    def rank_of(ranked: list[retrieve.Ranked]) -> int:
        return [r.guideline.id for r in ranked].index("redeem")

    with_questions = rank_of(await retriever.rank(ctx, POINTS_GUIDELINES))
    monkeypatch.setattr(TurnContext, "earlier_customer_questions", lambda self, **_: [])
    latest_three_only = rank_of(await retriever.rank(ctx, POINTS_GUIDELINES))
    # Among the first five of eleven (after the best of each later message), instead of the
    # last two.
    assert with_questions <= 4 < 9 <= latest_three_only


def test_prior_roles_are_who_wrote_before_the_latest_customer_message() -> None:
    assert context("hi").prior_roles() == set()
    assert context("Welcome!", "hi", roles=("agent", "customer")).prior_roles() == {"agent"}
    assert context("hi", "anyone there?").prior_roles() == {"customer"}
    ctx = context("hi", "Hello!", "refund?", "Sure.", roles=("customer", "agent") * 2)
    assert ctx.prior_roles() == {"customer", "agent"}
    assert context().prior_roles() == set()


async def test_a_clear_match_for_the_latest_message_is_not_buried_by_an_earlier_one(
    store: Store,
) -> None:
    # The earlier message shares many words with several conditions; the latest matches one
    # condition less closely. Each message ranks on its own, so the latest one's best match
    # comes first, not after every near match of the wordier message.
    guidelines = [
        Guideline(id=f"tv{i}", condition=f"The customer asks about television {word} settings")
        for i, word in enumerate(("picture", "sound", "colour", "brightness"))
    ]
    guidelines.append(Guideline(id="gift", condition="The customer wants gift wrapping"))
    ctx = context(
        "my television picture sound colour brightness settings are all wrong",
        "Let me help with that.",
        "also can you do gift wrapping for a parcel",
        roles=("customer", "agent", "customer"),
    )
    ranked = await Retriever(EmbeddingCache(HashingEmbedder(), store)).rank(ctx, guidelines)
    assert ranked[0].guideline.id == "gift"
    assert ranked[0].score == pytest.approx(1.0)


def test_rankings_built_many_at_once_are_those_the_constructor_builds() -> None:
    order = [3, 0, 2, 1]
    score, focus, similarity = [0.1, 0.9, 0.5, 0.3], [0.2, 0.8, 0.4, 0.6], [0.7, 0.1, 0.2, 0.3]
    lexical = [1.5, 0.0, 2.5, 0.25]
    many = Ranked.many(GUIDELINES, order, score, focus, similarity, lexical)
    built = [Ranked(GUIDELINES[i], score[i], focus[i], similarity[i], lexical[i]) for i in order]
    assert many == built
    assert [repr(r) for r in many] == [repr(r) for r in built]
    assert [r._asdict() for r in many] == [r._asdict() for r in built]
    assert all(type(r) is Ranked for r in many)
    assert [hash((r.score, r.lexical)) for r in many] == [hash((r.score, r.lexical)) for r in built]
    assert Ranked.many(GUIDELINES, [2], score, focus, similarity) == [
        Ranked(GUIDELINES[2], 0.5, 0.4, 0.2)
    ]
    assert Ranked.many(GUIDELINES, [], score, focus, similarity) == []
    with pytest.raises(AttributeError):
        many[0].score = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("density", [0.005, 0.1, 1.0])
def test_a_guidelines_best_row_is_the_full_products_whichever_dimensions_queries_use(
    density: float,
) -> None:
    # The reference: every row against every query over every dimension, the best of each
    # guideline's rows. Sparse queries (a hashed-words embedder's) read only their dimensions.
    rng = np.random.default_rng(7)
    rows = np.array([0, 0, 1, 3, 3, 3, 4], dtype=np.intp)  # guideline 2 has no rows
    matrix = rng.standard_normal((len(rows), 1536)).astype(np.float32)
    queries = rng.standard_normal((5, 1536)).astype(np.float32)
    queries[rng.random(queries.shape) > density] = 0.0
    queries[:, 0] = 0.5  # a dimension every query uses
    full = matrix @ queries.T
    expected = np.full((5, 5), -np.inf, dtype=np.float32)
    for guideline in range(5):
        mine = full[rows == guideline]
        if len(mine):
            expected[guideline] = mine.max(axis=0)
    got = retrieve._Rows(matrix, rows, count=5).best(queries)
    assert got.shape == (5, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    one_each = retrieve._Rows(matrix[:5], np.arange(5, dtype=np.intp), count=5)
    np.testing.assert_allclose(one_each.best(queries), full[:5], rtol=1e-5, atol=1e-5)
