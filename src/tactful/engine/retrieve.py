"""Stage 3, retrieve: rank guideline conditions against the situation (no model call).

Embeddings of conditions are cached in memory and in the store, keyed by model and content, so a
restart with unchanged guidelines embeds nothing. Retrieval ranks; matching decides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tactful.domain import Guideline
from tactful.engine.context import TurnContext
from tactful.llm.base import Embedder, Vectors
from tactful.store.base import Store


def content_key(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()


@dataclass(frozen=True)
class Ranked:
    """A guideline's retrieval score (for ranking) and its focus on the latest message.

    ``score`` weighs earlier customer messages and the window almost like the latest one, so
    that open requests stay candidates. ``focus`` is the similarity to the latest message only,
    so that a decision made on similarity alone (the offline tier) answers that message, not
    the previous one again.
    """

    guideline: Guideline
    score: float
    focus: float = 0.0


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

    RANK_EARLIER = 0.9
    FOCUS_EARLIER = 0.0

    def __init__(self, cache: EmbeddingCache) -> None:
        self.cache = cache

    async def rank(self, ctx: TurnContext, guidelines: Sequence[Guideline]) -> list[Ranked]:
        if not guidelines:
            return []
        recent = ctx.recent_customer_messages(3)
        window = " \n".join(u.text for u in ctx.window(6))
        queries = await self.cache.embed([*recent, window])
        latest = len(recent) - 1  # -1 (the window) when there is no customer message yet
        conditions = await self.cache.embed([guideline_text(g) for g in guidelines])
        sims = conditions @ queries.T  # (guidelines, queries)
        examples = [(i, e) for i, g in enumerate(guidelines) for e in g.examples]
        if examples:
            # Example utterances stand in for their guideline's condition.
            example_sims = await self.cache.embed([e for _, e in examples]) @ queries.T
            for (i, _), row in zip(examples, example_sims, strict=True):
                np.maximum(sims[i], row, out=sims[i])
        scores = (sims * self._weights(len(queries), latest, self.RANK_EARLIER)).max(axis=1)
        focus = (sims * self._weights(len(queries), latest, self.FOCUS_EARLIER)).max(axis=1)
        order = np.argsort(-scores, kind="stable")
        return [Ranked(guidelines[i], float(scores[i]), float(focus[i])) for i in order]

    @staticmethod
    def _weights(count: int, latest: int, earlier: float) -> npt.NDArray[np.float32]:
        weights = np.full(count, earlier, dtype=np.float32)
        weights[latest] = 1.0
        return weights
