"""Guidelines checked against each other (engine/evaluation.py): offline with the real embedder,
and with the scripted model deciding the closest pairs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tactful.domain import Guideline
from tactful.domain.evaluations import DecidedBy, FindingKind, ProposedGuideline
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.evaluation import EVALUATION_STAGE, Evaluator, PairVerdict
from tactful.errors import ModelError
from tactful.llm.minilm import MiniLMEmbedder
from tactful.llm.scripted import ScriptedCall, ScriptedGenerator
from tactful.store.base import Store

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "matching"

REFUND = Guideline(
    id="refund",
    condition="The customer asks for a refund",
    action="Offer a refund to the original payment method",
)
SHIPPING = Guideline(
    id="shipping",
    condition="The customer asks how long delivery takes",
    action="Give the delivery estimate for their address",
)
# The same rule, in other words.
PARAPHRASE = ProposedGuideline(
    condition="A customer requests their money back",
    action="Refund the purchase to the card they paid with",
)
# The same situation, and it forbids what REFUND does.
NO_REFUND = ProposedGuideline(
    condition="The customer asks for a refund",
    action="Do not offer a refund; offer store credit instead",
)


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest_asyncio.fixture
async def cache(minilm: MiniLMEmbedder, store: Store) -> AsyncIterator[EmbeddingCache]:
    found = EmbeddingCache(minilm, store)
    yield found
    await found.close()


def kinds(findings: list) -> list[tuple[str, str | int | None, str | int | None]]:  # type: ignore[type-arg]
    def side(ref) -> str | int | None:  # type: ignore[no-untyped-def]
        return ref.guideline_id if ref.guideline_id is not None else ref.payload

    return [(f.kind.value, side(f.first), side(f.second)) for f in findings]


async def test_a_paraphrase_of_a_stored_guideline_is_found(cache: EmbeddingCache) -> None:
    found = await Evaluator(cache).evaluate([REFUND, SHIPPING], [PARAPHRASE])
    assert kinds(found) == [("similar", "refund", 0)]
    [finding] = found
    assert finding.decided_by is DecidedBy.EMBEDDINGS
    assert finding.condition_similarity >= 0.75
    assert finding.action_similarity is not None and finding.action_similarity >= 0.65
    assert "check they are meant to differ" in finding.reason


async def test_an_action_that_forbids_what_another_does_is_a_possible_contradiction(
    cache: EmbeddingCache,
) -> None:
    found = await Evaluator(cache).evaluate([REFUND, SHIPPING], [NO_REFUND])
    assert kinds(found) == [("possible_contradiction", "refund", 0)]
    assert found[0].decided_by is DecidedBy.TEXT


async def test_the_same_words_are_a_duplicate(cache: EmbeddingCache) -> None:
    same = ProposedGuideline(condition=REFUND.condition.upper(), action=f"{REFUND.action}.")
    found = await Evaluator(cache).evaluate([REFUND, SHIPPING], [same])
    assert kinds(found) == [("duplicate", "refund", 0)]
    assert found[0].reason == "the same words"


async def test_a_guideline_being_updated_is_not_compared_with_itself(
    cache: EmbeddingCache,
) -> None:
    update = ProposedGuideline(
        condition=REFUND.condition, action="Offer a refund or an exchange", updated_id="refund"
    )
    assert await Evaluator(cache).evaluate([REFUND, SHIPPING], [update]) == []


async def test_proposed_guidelines_are_compared_with_each_other(cache: EmbeddingCache) -> None:
    found = await Evaluator(cache).evaluate([SHIPPING], [PARAPHRASE, NO_REFUND])
    assert ("possible_contradiction", 0, 1) in kinds(found)


async def test_an_observation_is_not_paired_with_a_guideline(cache: EmbeddingCache) -> None:
    observation = ProposedGuideline(condition=REFUND.condition)
    assert await Evaluator(cache).evaluate([REFUND], [observation]) == []


async def test_with_nothing_proposed_the_stored_guidelines_are_checked_among_themselves(
    cache: EmbeddingCache,
) -> None:
    twin = Guideline(id="twin", condition=PARAPHRASE.condition, action=PARAPHRASE.action)
    found = await Evaluator(cache).evaluate([REFUND, SHIPPING, twin])
    assert kinds(found) == [("similar", "refund", "twin")]


async def test_the_labeled_set_gives_few_findings(cache: EmbeddingCache) -> None:
    """320 curated guidelines, each distinct: the offline check reports only variants of one
    situation (close conditions and actions), not every pair that shares a condition like
    "Always"."""
    if not (DATASET / "guidelines.json").exists():
        reason = f"labeled matching set not found at {DATASET}"
        print(reason)
        pytest.skip(reason)
    raw = json.loads((DATASET / "guidelines.json").read_text("utf-8"))
    guidelines = [
        Guideline(id=g["id"], condition=g["condition"], action=g.get("action")) for g in raw
    ]
    found = await Evaluator(cache).evaluate(guidelines)
    assert 0 < len(found) <= 15
    assert all(f.kind is not FindingKind.DUPLICATE for f in found)
    assert all(f.first.condition != "Always" for f in found)


# -- with a model --------------------------------------------------------------------------------


def judge(relation: str) -> object:
    def answer(call: ScriptedCall) -> PairVerdict:
        return PairVerdict(relation=relation, explanation=f"judged {relation}")  # type: ignore[arg-type]

    return answer


async def test_the_model_decides_the_close_pairs(cache: EmbeddingCache) -> None:
    model = ScriptedGenerator({EVALUATION_STAGE: judge("contradiction")})  # type: ignore[dict-item]
    found = await Evaluator(cache, model).evaluate([REFUND, SHIPPING], [PARAPHRASE])
    assert kinds(found) == [("contradiction", "refund", 0)]
    assert found[0].decided_by is DecidedBy.MODEL
    assert found[0].reason == "judged contradiction"
    [call] = model.calls
    assert REFUND.condition in call.prompt.user and PARAPHRASE.condition in call.prompt.user


async def test_a_pair_the_model_calls_distinct_is_not_reported(cache: EmbeddingCache) -> None:
    model = ScriptedGenerator({EVALUATION_STAGE: judge("distinct")})  # type: ignore[dict-item]
    assert await Evaluator(cache, model).evaluate([REFUND, SHIPPING], [PARAPHRASE]) == []


async def test_a_model_failure_keeps_the_offline_finding_and_says_so(
    cache: EmbeddingCache,
) -> None:
    def fail(call: ScriptedCall) -> PairVerdict:
        raise ModelError("provider down")

    model = ScriptedGenerator({EVALUATION_STAGE: fail})  # type: ignore[dict-item]
    found = await Evaluator(cache, model).evaluate([REFUND, SHIPPING], [PARAPHRASE])
    assert kinds(found) == [("similar", "refund", 0)]
    assert "the model check failed: provider down" in found[0].reason


async def test_the_model_is_asked_about_at_most_max_model_pairs(cache: EmbeddingCache) -> None:
    rules = [
        Guideline(id=f"a{i}", condition="Always", action=action)
        for i, action in enumerate(
            ["Be brief", "Use the customer's name", "Never use emojis", "Offer help at the end"]
        )
    ]
    model = ScriptedGenerator({EVALUATION_STAGE: judge("distinct")})  # type: ignore[dict-item]
    await Evaluator(cache, model, max_model_pairs=2).evaluate(rules)
    assert len(model.calls) == 2  # of 6 pairs with the same condition
