"""Tier-1 recall on the public split of the labeled set, with the real embedder.

The full table (several k, dense-only vs hybrid, per type and tag) is printed by
``bench/candidate_recall.py``; docs/matching.md has the figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tactful.domain import Agent, Customer, Guideline, Session
from tactful.engine.candidates import DEFAULT_K, DEFAULT_MAX_FORCED, select_candidates
from tactful.engine.context import TurnContext, Utterance
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.retrieve import Retriever
from tactful.llm.minilm import MiniLMEmbedder
from tactful.store.sql import open_store

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "matching"
# Measured at DEFAULT_K = 52 with bench/candidate_recall.py: 0.954 (226 of 237 labels), with a
# tier 1 of 96.8 guidelines on average and 100 at most (forced ones plus k; the forced ones vary
# by turn, and forced observations beyond DEFAULT_MAX_FORCED give way).
MIN_RECALL = 0.94
MAX_MEAN_TIER1 = 100
MAX_TIER1 = DEFAULT_MAX_FORCED + DEFAULT_K


def _context(conversation: dict[str, Any], guidelines: list[Guideline]) -> TurnContext:
    agent = Agent(name="Voltmart")
    profile = conversation.get("customer")
    customer = Customer(name=profile["name"] if profile else "Guest")
    return TurnContext(
        agent=agent,
        session=Session(agent_id=agent.id, customer_id=customer.id),
        customer=customer,
        messages=[
            Utterance(role=m["role"], text=m["text"], offset=i)
            for i, m in enumerate(conversation["messages"])
        ],
        guidelines=guidelines,
        canned_responses=[],
        terms=[],
    )


@pytest.mark.embedder
async def test_tier1_recall_at_the_default_k_on_the_public_split() -> None:
    if not (DATASET / "conversations.json").exists():
        reason = f"labeled matching set not found at {DATASET}"
        print(reason)
        pytest.skip(reason)
    raw = json.loads((DATASET / "guidelines.json").read_text("utf-8"))
    guidelines = [
        Guideline(
            id=g["id"], condition=g["condition"], action=g["action"], always=g["kind"] == "always"
        )
        for g in raw
    ]
    conversations = json.loads((DATASET / "conversations.json").read_text("utf-8"))
    checkable = {g.id for g in guidelines if not g.always}

    store = await open_store("sqlite+aiosqlite:///:memory:")
    try:
        retriever = Retriever(EmbeddingCache(MiniLMEmbedder(), store))
        hits = labels = 0
        sizes: list[int] = []
        for conversation in conversations:
            ctx = _context(conversation, guidelines)
            ranked = await retriever.rank(ctx, guidelines)
            chosen = select_candidates(ranked, k=DEFAULT_K, prior=ctx.prior_roles())
            tier1 = [s.guideline.id for s in chosen.tier1]
            tier2 = [s.guideline.id for s in chosen.tier2]
            # Every guideline without the always marker is checked or screened, exactly once.
            assert sorted(tier1 + tier2) == sorted(checkable), conversation["id"]
            assert {s.guideline.id for s in chosen.always} == {g.id for g in guidelines if g.always}
            relevant = set(conversation["relevant"])
            hits += len(relevant & set(tier1))
            labels += len(relevant)
            sizes.append(len(tier1))
    finally:
        await store.close()

    recall = hits / labels
    mean_size = sum(sizes) / len(sizes)
    print(
        f"\ntier-1 recall at k={DEFAULT_K}: {recall:.3f} ({hits}/{labels}),"
        f" tier 1 mean {mean_size:.1f} / max {max(sizes)}"
    )
    assert recall >= MIN_RECALL
    assert mean_size <= MAX_MEAN_TIER1
    assert max(sizes) <= MAX_TIER1
