"""EmbeddingCache: definitions are kept in memory and the store; conversation texts in a
bounded memory only, never in the store."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import tactful
from tactful.engine.embeddings import EmbeddingCache, content_key
from tactful.llm.base import Vectors
from tactful.llm.scripted import HashingEmbedder
from tactful.store.base import Store


def _model(embedder: HashingEmbedder) -> str:
    return f"{embedder.model_name}/{embedder.dimensions}"


async def _stored(store: Store, embedder: HashingEmbedder, *texts: str) -> set[str]:
    model = _model(embedder)
    keys = {content_key(model, t): t for t in texts}
    return {keys[k] for k in await store.load_embeddings(model, list(keys))}


async def test_definitions_are_stored_and_messages_are_not(store: Store) -> None:
    embedder = HashingEmbedder()
    cache = EmbeddingCache(embedder, store)
    await cache.embed(["The customer asks for a refund"])
    await cache.embed_messages(["my card number is 4111 1111 1111 1111"])
    assert await _stored(
        store, embedder, "The customer asks for a refund", "my card number is 4111 1111 1111 1111"
    ) == {"The customer asks for a refund"}

    restarted = HashingEmbedder()  # a new process: the definition comes from the store
    again = EmbeddingCache(restarted, store)
    await again.embed(["The customer asks for a refund"])
    await again.embed_messages(["my card number is 4111 1111 1111 1111"])
    assert restarted.calls == [["my card number is 4111 1111 1111 1111"]]


async def test_messages_are_kept_up_to_the_bound_and_the_oldest_go_first(store: Store) -> None:
    embedder = HashingEmbedder()
    cache = EmbeddingCache(embedder, store)
    cache.MESSAGES = 3
    for text in ("one", "two", "three", "four"):
        await cache.embed_messages([text])
    await cache.embed_messages(["two", "three", "four"])  # all kept: nothing embedded
    assert embedder.calls == [["one"], ["two"], ["three"], ["four"]]
    await cache.embed_messages(["one"])  # dropped first
    assert embedder.calls[-1] == ["one"]
    await cache.embed_messages(["three", "four", "one"])
    assert len(embedder.calls) == 5


async def test_the_same_vectors_whichever_way_a_text_is_asked_for(store: Store) -> None:
    cache = EmbeddingCache(HashingEmbedder(), store)
    as_message = await cache.embed_messages(["a refund please", "where is my parcel"])
    as_definition = await EmbeddingCache(HashingEmbedder(), store).embed(
        ["a refund please", "where is my parcel"]
    )
    assert as_message.shape == as_definition.shape == (2, HashingEmbedder().dimensions)
    assert (as_message == as_definition).all()


class _SlowSave:
    """A store whose embedding writes wait until released."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.release = asyncio.Event()
        self.saving = asyncio.Event()

    async def load_embeddings(self, model: str, keys: Sequence[str]) -> dict[str, Vectors]:
        return await self.inner.load_embeddings(model, keys)

    async def save_embeddings(self, model: str, vectors: dict[str, Vectors]) -> None:
        self.saving.set()
        await self.release.wait()
        await self.inner.save_embeddings(model, vectors)


class _GatedEmbedder(HashingEmbedder):
    """Embeds once ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.entered.set()
        await self.gate.wait()
        return await super().embed(texts)


async def test_a_task_waiting_for_another_tasks_embedding_is_not_held_up_by_its_store_write(
    store: Store,
) -> None:
    slow = _SlowSave(store)
    embedder = _GatedEmbedder()
    cache = EmbeddingCache(embedder, slow)  # type: ignore[arg-type]
    text = "The customer asks for a refund"
    first = asyncio.create_task(cache.embed([text]))
    await embedder.entered.wait()
    second = asyncio.create_task(cache.embed([text]))  # waits for the first's embedding
    await asyncio.sleep(0.05)
    embedder.gate.set()
    await slow.saving.wait()  # the first task embedded it and is writing it
    vectors = await asyncio.wait_for(second, 5)
    assert vectors.shape == (1, embedder.dimensions)
    assert len(embedder.calls) == 1 and not first.done()
    slow.release.set()
    await first
    assert await _stored(store, embedder, text) == {text}


async def test_a_turn_stores_no_embedding_of_the_conversation(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    async with tactful.Server(data_dir=tmp_path, embedder=embedder) as server:
        agent = await server.create_agent("Shop")
        await agent.create_guideline(
            condition="The customer asks for a refund", action="Offer a refund"
        )
        session = await server.create_session(agent)
        reply = await server.send(session, "I want a refund for my order 7731")
        said = str(reply.data.get("message") or "")
        store = server.runtime.store
        assert said
        assert await _stored(store, embedder, "I want a refund for my order 7731", said) == set()
        assert await _stored(store, embedder, "The customer asks for a refund") == {
            "The customer asks for a refund"
        }
