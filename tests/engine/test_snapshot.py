"""Agent snapshots: read once, reused while the definitions revision stands still, and read
again when anything defining the agent changes, in this process or in another one."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import tactful
from tactful.domain import Guideline, Session, Trace, agent_tag
from tactful.engine.compose import ReplyAnswer
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.match import ListedGuideline, answer_listed
from tactful.llm.base import Vectors
from tactful.llm.scripted import HashingEmbedder, ScriptedCall, ScriptedGenerator
from tactful.store.sql import open_store, sqlite_url


def _model() -> ScriptedGenerator:
    def match(call: ScriptedCall) -> object:
        def decide(g: ListedGuideline) -> str | None:
            return "the customer says so" if "refund" in g.condition else None

        return answer_listed(call.prompt.user, decide)

    return ScriptedGenerator({"match": match, "compose": lambda c: ReplyAnswer(message="OK.")})


async def _candidates(server: tactful.Server, trace_id: str) -> set[str]:
    trace = await server.runtime.store.get(Trace, trace_id)
    return {c.condition for c in trace.candidates}


async def _support(server: tactful.Server) -> tuple[tactful.Agent, Session]:
    agent = await server.create_agent("Support")
    await agent.create_guideline("the customer asks for a refund", "explain refund timing")
    return agent, await server.create_session(agent)


async def test_a_snapshot_is_reused_until_a_definition_changes(tmp_path: Path) -> None:
    async with tactful.Server(
        data_dir=tmp_path, embedder=HashingEmbedder(), generator=_model()
    ) as server:
        agent, session = await _support(server)
        snapshots = server.runtime.engine.snapshots
        await server.send(session, "I want a refund")
        await server.send(session, "and for the other order too")
        assert snapshots.loads == 1

        await agent.create_guideline("the customer asks about gift cards", "explain gift cards")
        reply = await server.send(session, "do you sell gift cards?")
        assert snapshots.loads == 2
        assert "the customer asks about gift cards" in await _candidates(server, reply.trace_id)


async def test_a_change_by_another_process_is_seen_on_the_next_turn(tmp_path: Path) -> None:
    async with tactful.Server(
        data_dir=tmp_path, embedder=HashingEmbedder(), generator=_model()
    ) as server:
        agent, session = await _support(server)
        first = await server.send(session, "I want a refund")
        assert "the customer asks about warranty" not in await _candidates(server, first.trace_id)

        # Another process: its own store (its own connections) on the same database.
        other = await open_store(sqlite_url(tmp_path / "tactful.db"))
        try:
            await other.create(
                Guideline(
                    condition="the customer asks about warranty",
                    action="explain the warranty",
                    tags=[agent_tag(agent.id)],
                )
            )
        finally:
            await other.close()
        second = await server.send(session, "what about warranty?")
        assert "the customer asks about warranty" in await _candidates(server, second.trace_id)


async def test_large_lists_embed_to_one_read_only_matrix_per_content() -> None:
    embedder = HashingEmbedder()
    async with tactful.Server(transient=True, embedder=embedder) as server:
        cache = EmbeddingCache(embedder, server.runtime.store)
        texts = [f"the customer asks about product {i}" for i in range(40)]
        first = await cache.embed(texts)
        again = await cache.embed(list(texts))
        assert again is first
        with pytest.raises(ValueError):
            first[0, 0] = 1.0  # shared between turns: nobody may write into it
        changed = await cache.embed([*texts[:-1], "the customer asks about something else"])
        assert changed is not first
        assert np.allclose(changed[:-1], first[:-1]) and not np.allclose(changed[-1], first[-1])


class _SlowHashing(HashingEmbedder):
    async def embed(self, texts: Sequence[str]) -> Vectors:
        await asyncio.sleep(0.05)
        return await super().embed(texts)


async def test_one_text_embedded_by_two_tasks_at_once_is_embedded_once() -> None:
    embedder = _SlowHashing()
    async with tactful.Server(transient=True, embedder=embedder) as server:
        cache = EmbeddingCache(embedder, server.runtime.store)
        first, second = await asyncio.gather(
            cache.embed(["where is my order?"]),
            cache.embed(["where is my order?", "and my refund?"]),
        )
        assert embedder.calls == [["where is my order?"], ["and my refund?"]]
        assert np.allclose(first[0], second[0])


async def test_a_customer_message_is_embedded_when_it_is_posted(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    message = "I want a refund now. The kettle broke after a day."
    async with tactful.Server(data_dir=tmp_path, embedder=embedder, generator=_model()) as server:
        _, session = await _support(server)
        await server.send(session, message)
        # One call with the message and its sentences: the warm-up made as it was posted (the
        # turn embeds the message and its sentences in separate calls, and finds them done).
        assert [
            message,
            "I want a refund now.",
            "The kettle broke after a day.",
        ] in embedder.calls
