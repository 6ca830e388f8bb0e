"""Embeddings from a provider, chosen in settings, instead of the offline MiniLM."""

from __future__ import annotations

from openai_wire import OpenAIWire

import tactful
from tactful.domain import Trace
from tactful.llm.minilm import MiniLMEmbedder
from tactful.llm.openai import OpenAIEmbedder
from tactful.runtime import default_embedder


def test_offline_is_the_default_and_a_provider_is_a_setting() -> None:
    assert isinstance(default_embedder(tactful.Settings()), MiniLMEmbedder)
    embedder = default_embedder(
        tactful.Settings(
            embedding_provider="openai",
            embedding_model="nomic-embed",
            embedding_dimensions=32,
            openai_base_url="http://127.0.0.1:9/v1",
        )
    )
    assert isinstance(embedder, OpenAIEmbedder)
    assert (embedder.model_name, embedder.dimensions) == ("nomic-embed", 32)


async def test_a_turn_retrieves_with_the_providers_embeddings(openai_wire: OpenAIWire) -> None:
    settings = tactful.Settings(
        model_provider="offline",
        embedding_provider="openai",
        embedding_model="text-embedding-3-small",
        embedding_dimensions=24,
        embedding_base_url=openai_wire.base_url,
    )
    async with tactful.Server(transient=True, settings=settings) as s:
        agent = await s.create_agent("Support")
        await agent.create_guideline("the customer asks about a refund", "say refunds take 5 days")
        reply = await s.send(await s.create_session(agent), "where is my refund?")
        trace = await s.runtime.store.get(Trace, reply.trace_id)
    embedded = [text for body in openai_wire.embedding_requests for text in body["input"]]
    assert "where is my refund?" in embedded
    assert all(body["model"] == "text-embedding-3-small" for body in openai_wire.embedding_requests)
    assert trace.status == "done" and trace.error is None
    assert [c.condition for c in trace.candidates] == ["the customer asks about a refund"]
    assert all(body["dimensions"] == 24 for body in openai_wire.embedding_requests)


async def test_the_same_model_name_at_other_dimensions_does_not_meet_its_old_vectors(
    openai_wire: OpenAIWire, tmp_path: object
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    for dims in (24, 16):
        settings = tactful.Settings(
            data_dir=tmp_path,
            model_provider="offline",
            embedding_provider="openai",
            embedding_model="text-embedding-3-small",
            embedding_dimensions=dims,
            embedding_base_url=openai_wire.base_url,
        )
        async with tactful.Server(settings=settings) as s:
            agent = await s.create_agent("Support")
            await agent.create_guideline("the customer asks about a refund", "say 5 days", id="r")
            # A new message beside the stored condition: old and new vectors meet.
            reply = await s.send(await s.create_session(agent), f"my refund, {dims} days late?")
            trace = await s.runtime.store.get(Trace, reply.trace_id)
        assert trace.status == "done", trace.error
