"""The embedding cache: every text a turn compares is embedded once per content.

Definitions (conditions and their views, terms, variables, templates) are kept in memory and in
the store, so a restart with unchanged definitions embeds nothing; conversation texts (the
customer's messages and their sentences, replies, tool results) in a bounded memory only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from tactful.llm.base import Embedder, Vectors
from tactful.store.base import Store

__all__ = ["EmbeddingCache", "content_key"]


def content_key(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()


class EmbeddingCache:
    """Embeds texts once per content.

    Two kinds of text, kept apart:

    * **definitions** (conditions, their views, terms, variables, templates): memory first,
      then the store, then the embedder; what is embedded is saved, so a restart with unchanged
      definitions embeds nothing;
    * **conversation texts** (``embed_messages``: customer messages, their sentences, replies,
      tool results): memory only, the last ``MESSAGES`` of them. They are never written to the
      store: a customer's words would outlive the session that held them (deleting it does not
      reach the embeddings table), the table would grow with every message, and each turn
      would pay a read and a write on the writer's lock for a text that seldom comes again.

    The matrices of large lists (every guideline's condition, every view) are also kept as they
    are, by the list's content: a turn over an unchanged agent stacks nothing again. They are
    read-only; a caller computes on them, never in them.
    """

    # Lists this long or longer have their matrix memoized; the last MATRICES are kept.
    MATRIX_MIN = 16
    MATRICES = 32
    # Conversation texts kept in memory (a turn reads its window's last few messages).
    MESSAGES = 4096

    def __init__(self, embedder: Embedder, store: Store) -> None:
        self.embedder = embedder
        self.store = store
        self._memory: dict[str, Vectors] = {}
        self._messages: OrderedDict[str, Vectors] = OrderedDict()
        self._keys: dict[str, str] = {}
        self._matrices: OrderedDict[tuple[str, ...], Vectors] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._warming: set[asyncio.Task[None]] = set()
        # The dimensions are part of the identity: a model name served at another size (a
        # text-embedding-3 model shortened, a deployment renamed) must not meet its old vectors.
        self._model = f"{embedder.model_name}/{embedder.dimensions}"

    def _key(self, text: str) -> str:
        key = self._keys.get(text)
        if key is None:
            key = content_key(self._model, text)
            if len(self._keys) > 200_000:
                self._keys.clear()
            self._keys[text] = key
        return key

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Definition texts, as a ``(len(texts), d)`` matrix (kept in memory and the store)."""
        if len(texts) < self.MATRIX_MIN:
            return await self._embed(texts, stored=True)
        whole = tuple(texts)
        found = self._matrices.get(whole)
        if found is not None:
            self._matrices.move_to_end(whole)
            return found
        matrix = await self._embed(whole, stored=True)
        matrix.flags.writeable = False
        self._matrices[whole] = matrix
        while len(self._matrices) > self.MATRICES:
            self._matrices.popitem(last=False)
        return matrix

    async def embed_messages(self, texts: Sequence[str]) -> Vectors:
        """Conversation texts, as a ``(len(texts), d)`` matrix (kept in memory only)."""
        return await self._embed(texts, stored=False)

    def _known(self, key: str) -> Vectors | None:
        found = self._memory.get(key)
        if found is None:
            found = self._messages.get(key)
            if found is not None:
                self._messages.move_to_end(key)
        return found

    def _keep(self, fresh: dict[str, Vectors], *, stored: bool) -> None:
        if stored:
            self._memory.update(fresh)
            return
        self._messages.update(fresh)
        while len(self._messages) > self.MESSAGES:
            self._messages.popitem(last=False)

    async def _embed(self, texts: Sequence[str], *, stored: bool) -> Vectors:
        keys = [self._key(t) if stored else content_key(self._model, t) for t in texts]
        found = {k: v for k in dict.fromkeys(keys) if (v := self._known(k)) is not None}
        if stored and (missing := [k for k in dict.fromkeys(keys) if k not in found]):
            loaded = await self.store.load_embeddings(self._model, missing)
            self._memory.update(loaded)
            found.update(loaded)
        # What another task is embedding right now is awaited, not embedded twice.
        waiting = {k for k in keys if k not in found and k in self._inflight}
        to_embed = {
            k: t for k, t in zip(keys, texts, strict=True) if k not in found and k not in waiting
        }
        if to_embed:
            found.update(await self._compute(to_embed, stored=stored))
        for k in waiting:
            pending = self._inflight.get(k)
            if pending is not None:
                # Shielded: a cancelled waiter must not cancel the other task's embedding.
                await asyncio.shield(pending)
            if (vector := self._known(k)) is not None:
                found[k] = vector
        if not keys:
            return np.zeros((0, self.embedder.dimensions), dtype=np.float32)
        if any(k not in found for k in keys):
            # The other task failed (or its vectors were dropped meanwhile): embed them here.
            return await self._embed(texts, stored=stored)
        return np.stack([found[k] for k in keys])

    async def _compute(self, to_embed: dict[str, str], *, stored: bool) -> dict[str, Vectors]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for k in to_embed:
            self._inflight[k] = done
        try:
            vectors = await self.embedder.embed(list(to_embed.values()))
            fresh = dict(zip(to_embed, vectors, strict=True))
            self._keep(fresh, stored=stored)
        finally:
            for k in to_embed:
                self._inflight.pop(k, None)
            # Waiters go on now: the store's copy (below) is for the next process, not them.
            if not done.done():
                done.set_result(None)
        if stored:
            await self.store.save_embeddings(self._model, fresh)
        return fresh

    async def warm(self, texts: Sequence[str]) -> None:
        """Embed conversation ``texts`` ahead of need (a failure is left for the turn that
        needs them)."""
        with contextlib.suppress(Exception):
            await self.embed_messages(list(dict.fromkeys(t for t in texts if t.strip())))

    def warm_later(self, texts: Sequence[str]) -> None:
        """Embed conversation ``texts`` in the background, ahead of the turn that needs them."""
        task = asyncio.create_task(self.warm(texts))
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    async def close(self) -> None:
        """Stop embedding ahead (on shutdown)."""
        for task in list(self._warming):
            task.cancel()
        await asyncio.gather(*self._warming, return_exceptions=True)
