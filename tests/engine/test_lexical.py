"""The lexical side of ranking: the stemmer that BM25's terms go through."""

from __future__ import annotations

import pytest

from tactful.engine.lexical import LexicalIndex, stem, tokenize

# Words a customer and a condition use for the same thing must meet on one term.
SAME_STEM = [
    ("refer", "referral", "referred", "refers"),
    ("order", "ordered", "orders", "ordering"),
    ("cover", "covered", "covers", "coverage"),
    ("offer", "offered", "offers"),
    ("answer", "answered", "answers"),
    ("refund", "refunds", "refunded", "refunding"),
    ("deliver", "delivered", "delivery", "deliveries"),
    ("cancel", "cancelled", "canceled", "cancellation"),
    ("warranty", "warranties"),
    ("replace", "replacement", "replaced"),
    ("ship", "shipped", "shipping"),
    ("charge", "charged", "charges"),
    ("return", "returned", "returns", "returning"),
]

# ...and unrelated words must not.
DIFFERENT_STEMS = [
    ("order", "other"),
    ("refer", "refund"),
    ("offer", "office"),
    ("cover", "cancel"),
    ("store", "story"),
    ("ship", "shop"),
    ("account", "accurate"),
    ("return", "retail"),
    ("deliver", "deliberate"),
]


@pytest.mark.parametrize("words", SAME_STEM, ids=lambda w: w[0])
def test_forms_of_one_word_share_a_stem(words: tuple[str, ...]) -> None:
    assert len({stem(w) for w in words}) == 1, {w: stem(w) for w in words}


@pytest.mark.parametrize("pair", DIFFERENT_STEMS, ids="-".join)
def test_different_words_keep_different_stems(pair: tuple[str, str]) -> None:
    assert stem(pair[0]) != stem(pair[1])


def test_a_referral_question_finds_the_refer_a_friend_condition() -> None:
    index = LexicalIndex(
        [
            "The customer asks how to refer a friend",
            "The customer asks about a product review",
        ]
    )
    scores = index.scores("does the referral bonus still work?")
    assert scores[0] > 0 and scores[1] == 0
    assert tokenize("I ordered it") == tokenize("my order")
