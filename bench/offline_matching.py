"""Offline-tier matching measured on the labeled Voltmart set with the real embedder.

    .venv/bin/python bench/offline_matching.py [--dataset ../shared/datasets/matching]

Prints retrieval recall@k and the offline matcher's precision/recall over a threshold sweep,
using the engine's own Retriever and OfflineMatcher (the numbers in docs/offline-tier.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from tactful.domain import Agent, Customer, Guideline, Session
from tactful.engine.context import TurnContext, Utterance
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.match import OfflineMatcher
from tactful.engine.retrieve import Ranked, Retriever
from tactful.llm.minilm import MiniLMEmbedder
from tactful.store.sql import open_store

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "matching"


def context(conversation: dict[str, object], guidelines: list[Guideline]) -> TurnContext:
    messages = [
        Utterance(role=m["role"], text=m["text"], offset=i)  # type: ignore[index]
        for i, m in enumerate(conversation["messages"])  # type: ignore[arg-type]
    ]
    agent = Agent(name="Voltmart")
    return TurnContext(
        agent=agent,
        session=Session(agent_id=agent.id, customer_id="c"),
        customer=Customer(name="c"),
        messages=messages,
        guidelines=guidelines,
        canned_responses=[],
        terms=[],
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    args = parser.parse_args()
    raw_guidelines = json.loads((args.dataset / "guidelines.json").read_text())
    conversations = json.loads((args.dataset / "conversations.json").read_text())
    guidelines = [
        Guideline(id=g["id"], condition=g["condition"], action=g["action"])
        for g in raw_guidelines
        if g["kind"] != "always"
    ]
    store = await open_store("sqlite+aiosqlite:///:memory:")
    retriever = Retriever(EmbeddingCache(MiniLMEmbedder(), store))
    started = time.perf_counter()
    rankings: list[tuple[list[Ranked], set[str]]] = []
    for conv in conversations:
        ranked = await retriever.rank(context(conv, guidelines), guidelines)
        rankings.append((ranked, set(conv["relevant"])))
    elapsed = time.perf_counter() - started
    await store.close()

    total = sum(len(rel) for _, rel in rankings)
    print(f"{len(conversations)} conversations, {len(guidelines)} guidelines, {total} labels")
    print(f"ranking time: {elapsed:.1f}s (including embedding every condition once)\n")
    print("retrieval recall@k (micro):")
    for k in (5, 10, 20, 30, 50, 100):
        hit = sum(len({r.guideline.id for r in ranked[:k]} & rel) for ranked, rel in rankings)
        print(f"  k={k:<4d} {hit / total:.3f}")

    print("\noffline matcher (threshold, margin, max matches): precision recall F1")
    for margin, max_matches in ((0.12, 4), (1.0, 10)):
        for threshold in (0.30, 0.35, 0.40, 0.42, 0.45, 0.50, 0.55):
            matcher = OfflineMatcher(threshold, margin=margin, max_matches=max_matches)
            tp = fp = 0
            for ranked, rel in rankings:
                chosen = {v.guideline_id for v in matcher.match(ranked) if v.applies}
                tp += len(chosen & rel)
                fp += len(chosen - rel)
            p = tp / (tp + fp) if tp + fp else 0.0
            r = tp / total
            f1 = 2 * p * r / (p + r) if p + r else 0.0
            print(f"  {threshold:.2f} {margin:.2f} {max_matches:>2d}   {p:.3f} {r:.3f} {f1:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
