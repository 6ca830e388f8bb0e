"""Stage 3, retrieve: rank guideline conditions against the situation (no model call).

Embeddings of conditions are cached in memory and in the store, keyed by model and content, so a
restart with unchanged guidelines embeds nothing. Retrieval ranks; matching decides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tactful.domain import Guideline
from tactful.engine.context import TurnContext
from tactful.llm.base import Embedder, Vectors
from tactful.store.base import Store


def content_key(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()


@dataclass(frozen=True)
class Ranked:
    guideline: Guideline
    score: float


class EmbeddingCache:
    """Embeds texts once per content: memory first, then the store, then the embedder."""

    def __init__(self, embedder: Embedder, store: Store) -> None:
        self.embedder = embedder
        self.store = store
        self._memory: dict[str, Vectors] = {}

    async def embed(self, texts: Sequence[str]) -> Vectors:
        model = self.embedder.model_name
        keys = [content_key(model, t) for t in texts]
        missing = [k for k in dict.fromkeys(keys) if k not in self._memory]
        if missing:
            self._memory.update(await self.store.load_embeddings(model, missing))
        to_embed = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._memory}
        if to_embed:
            vectors = await self.embedder.embed(list(to_embed.values()))
            fresh = dict(zip(to_embed, vectors, strict=True))
            self._memory.update(fresh)
            await self.store.save_embeddings(model, fresh)
        if not keys:
            return np.zeros((0, self.embedder.dimensions), dtype=np.float32)
        return np.stack([self._memory[k] for k in keys])


def guideline_text(g: Guideline) -> str:
    return g.condition


class Retriever:
    """Scores every guideline against the latest customer messages and the recent window."""

    def __init__(self, cache: EmbeddingCache) -> None:
        self.cache = cache

    async def situation(self, ctx: TurnContext) -> Vectors:
        recent = ctx.recent_customer_messages(3)
        window = " \n".join(u.text for u in ctx.window(6))
        return await self.cache.embed([*recent, window] if recent else [window])

    async def rank(self, ctx: TurnContext, guidelines: Sequence[Guideline]) -> list[Ranked]:
        if not guidelines:
            return []
        queries = await self.situation(ctx)
        conditions = await self.cache.embed([guideline_text(g) for g in guidelines])
        sims = conditions @ queries.T  # (guidelines, queries)
        # The latest message counts fully; earlier ones and the window slightly less.
        weights = np.full(queries.shape[0], 0.9, dtype=np.float32)
        if len(ctx.recent_customer_messages(3)) > 0:
            weights[len(ctx.recent_customer_messages(3)) - 1] = 1.0
        scores = (sims * weights).max(axis=1)
        for i, g in enumerate(guidelines):
            if g.examples:
                examples = await self.cache.embed(g.examples)
                scores[i] = max(float(scores[i]), float((examples @ queries.T).max()))
        order = np.argsort(-scores, kind="stable")
        return [Ranked(guidelines[i], float(scores[i])) for i in order]
