"""A customer message's embedding starts before its ingest transaction writes anything, so that
it runs (in the embedder's thread) while the message is stored and the turn starts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tactful
from tactful.domain import Session, SessionMode
from tactful.engine.retrieve import sentences
from tactful.llm.base import Vectors
from tactful.llm.scripted import HashingEmbedder


class _Ordered(HashingEmbedder):
    """Logs each call's texts in ``order``, shared with the store's writes."""

    def __init__(self, order: list[Any]) -> None:
        super().__init__()
        self.order = order

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.order.append(("embed", list(texts)))
        return await super().embed(texts)


def _log_writes(server: tactful.Server, order: list[Any]) -> None:
    store = server.runtime.store
    append = store.append_events

    async def logged(session_id: str, new: Any) -> Any:
        order.append(("append", [e.data.get("message") for e in new]))
        return await append(session_id, new)

    store.append_events = logged  # type: ignore[method-assign]


async def test_the_message_is_embedded_from_before_it_is_written(tmp_path: Path) -> None:
    order: list[Any] = []
    embedder = _Ordered(order)
    async with tactful.Server(data_dir=tmp_path, embedder=embedder) as server:
        agent = await server.create_agent("Shop")
        await agent.create_guideline(
            condition="The customer asks for a refund", action="Offer a refund"
        )
        session = await server.create_session(agent)
        _log_writes(server, order)
        message = "I want a refund for my order. Also, where is my parcel today?"
        await server.send(session, message)
        texts = [message, *sentences(message)]
        assert len(texts) == 3
        first_embed = order.index(("embed", texts))
        first_append = next(i for i, (what, _) in enumerate(order) if what == "append")
        assert first_embed < first_append
        # The turn asked for those texts again and found them: one call for the message.
        assert [t for what, t in order if what == "embed" and message in t] == [texts]


async def test_a_manual_session_does_not_embed_ahead(tmp_path: Path) -> None:
    order: list[Any] = []
    embedder = _Ordered(order)
    async with tactful.Server(data_dir=tmp_path, embedder=embedder) as server:
        agent = await server.create_agent("Shop")
        session = await server.create_session(agent)
        engine = server.runtime.engine
        await server.send(session, "hello there")  # automatic: embedded ahead from now on
        session = await server.runtime.store.get(Session, session.id)
        session.mode = SessionMode.MANUAL
        await server.runtime.store.update(session)
        _log_writes(server, order)
        del order[:]
        # Last seen in automatic mode: embedded before the session is read (one embedding spent).
        await engine.post_customer_message(session.id, "hello? anyone there?")
        # Now known as manual: nothing embedded.
        await engine.post_customer_message(session.id, "still nobody?")
        await engine.wait_idle()
        assert order == [
            ("embed", ["hello? anyone there?"]),
            ("append", ["hello? anyone there?"]),
            ("append", ["still nobody?"]),
        ]
