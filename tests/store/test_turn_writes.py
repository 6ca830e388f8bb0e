"""The store writes of one turn (issue 18): few, short write transactions. From the claim to
the reply at most two; after the reply (trace, ``ready``, the turn's end) one. Counted from the
statements each committed transaction ran, on SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import event

import tactful
from fresh_databases import postgres_database
from tactful.domain import Agent, Customer, EventKind, EventSource, Session, Trace, utcnow
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import MatchAnswer, answer_listed
from tactful.errors import NotFoundError
from tactful.llm.scripted import HashingEmbedder, ScriptedCall, ScriptedGenerator
from tactful.store.base import NewEvent
from tactful.store.sql import SQLStore, open_store
from tactful.store.sql_connection import _inline

WRITE = re.compile(r"^(?:INSERT INTO|UPDATE|DELETE FROM) \"?(\w+)")


@dataclass
class Transaction:
    statements: list[str] = field(default_factory=list)

    def tables(self) -> set[str]:
        """The tables it wrote to."""
        return {m.group(1) for s in self.statements if (m := WRITE.match(s))}

    def writes(self, table: str) -> bool:
        return table in self.tables()


class WriteLog:
    """The committed transactions that wrote something, in commit order, with their statements.

    On PostgreSQL from SQLAlchemy's events (every engine the store writes through); on SQLite
    from SQLite's own trace of the writing connection, which every write goes through, by
    SQLAlchemy or straight on the connection (``store.sqlite_raw``)."""

    def __init__(self, store: SQLStore) -> None:
        self.committed: list[Transaction] = []
        self._open: dict[int, Transaction] = {}
        if store.backend == "sqlite":
            assert store._kept is not None  # opened by a write before
            _inline(store._kept).raw.set_trace_callback(self._traced)
            return
        for engine in store.sync_engines():
            event.listen(engine, "before_cursor_execute", self._statement)
            event.listen(engine, "commit", self._commit)
            event.listen(engine, "rollback", self._rollback)

    def _traced(self, statement: str) -> None:
        text = statement.strip().upper()
        if text == "COMMIT":
            self._commit(None)
        elif text == "ROLLBACK":
            self._rollback(None)
        elif text != "BEGIN":
            self._statement(None, None, statement)

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self._open.setdefault(id(conn), Transaction()).statements.append(statement.strip().upper())

    def _commit(self, conn: Any) -> None:
        tx = self._open.pop(id(conn), None)
        if tx is not None and tx.tables():
            self.committed.append(tx)

    def _rollback(self, conn: Any) -> None:
        self._open.pop(id(conn), None)

    def turn(self) -> tuple[Transaction, list[Transaction], list[Transaction]]:
        """The turn's write transactions: the one posting its message, those after it up to
        the reply (inclusive), and those after the reply."""
        turn = self.committed
        posted = next(
            i
            for i, t in enumerate(turn)
            if any(s.startswith("INSERT INTO TURNS") for s in t.statements)
        )
        reply = next(i for i, t in enumerate(turn) if any("SET EMITTED" in s for s in t.statements))
        return turn[posted], turn[posted + 1 : reply + 1], turn[reply + 1 :]


def _any(tx: Transaction, text: str) -> bool:
    return any(text in s for s in tx.statements)


def _model() -> ScriptedGenerator:
    def match(call: ScriptedCall) -> MatchAnswer:
        return answer_listed(
            call.prompt.user, lambda g: "asks for a refund" if "refund" in g.condition else None
        )

    return ScriptedGenerator(
        {"match": match, "compose": lambda c: ReplyAnswer(message="Refunds take 5 days.")}
    )


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tactful.Server]:
    async def serve(url: str | None) -> AsyncIterator[tactful.Server]:
        async with tactful.Server(
            data_dir=tmp_path, database_url=url, embedder=HashingEmbedder(), generator=_model()
        ) as s:
            yield s

    if request.param == "sqlite":
        async for s in serve(None):
            yield s
    else:
        async with postgres_database() as url:
            async for s in serve(url):
                yield s


async def test_a_turn_is_claimed_as_its_message_is_posted_and_writes_once_more_to_reply(
    server: tactful.Server,
) -> None:
    agent = await server.create_agent("Support", "Helps")
    await agent.create_guideline("the customer asks for a refund", "explain refund timing")
    session = await server.create_session(agent)
    await server.send(session, "hello")  # the first turn warms caches; the second is counted
    store = server.runtime.store
    assert isinstance(store, SQLStore)
    log = WriteLog(store)

    reply = await server.send(session, "I want a refund")

    posted, path, after = log.turn()
    shown = "\n".join(f"{i}: {t.statements}" for i, t in enumerate([posted, *path, *after]))
    # The message's transaction claims the turn (no session turn runs) and starts it.
    assert _any(posted, "UPDATE TURNS SET STATUS"), shown
    assert len(path) == 1, shown
    assert len(after) == 1, shown
    # After the reply, the trace is saved with ``ready`` (a client reading it on ready finds it).
    assert after[0].writes("TRACES") and after[0].writes("EVENTS") and after[0].writes("TURNS")
    # The conversation's embeddings stay in memory.
    assert not any(t.writes("EMBEDDINGS") for t in [posted, *path, *after]), shown
    events = await store.list_events(session.id, trace_id=reply.trace_id)
    shape = [(e.data or {}).get("status") or e.source.value for e in events]
    assert shape == ["customer", "acknowledged", "processing", "typing", "ai_agent", "ready"]
    assert [e.offset for e in events] == list(range(events[0].offset, events[0].offset + 6))
    assert (await store.get(Trace, reply.trace_id)).message_event_id == reply.id


async def _store_session(store: SQLStore) -> Session:
    agent = await store.create(Agent(name="a"))
    customer = await store.create(Customer(name="c"))
    return await store.create(Session(agent_id=agent.id, customer_id=customer.id))


async def test_events_appended_together_take_consecutive_offsets(store: SQLStore) -> None:
    session = await _store_session(store)
    typing = NewEvent(EventKind.STATUS, EventSource.AI_AGENT, {"status": "typing"}, "t1")
    reply = NewEvent(EventKind.MESSAGE, EventSource.AI_AGENT, None, "t1", {"preamble": True})
    batches = await asyncio.gather(
        *(store.append_events(session.id, [typing, reply]) for _ in range(5))
    )
    # Concurrent batches never interleave: each one's offsets follow each other.
    for first, second in batches:
        assert second.offset == first.offset + 1
    listed = await store.list_events(session.id)
    assert [e.offset for e in listed] == list(range(10))
    assert [(e.kind, e.data, e.metadata) for e in listed[:2]] == [
        (EventKind.STATUS, {"status": "typing"}, {}),
        (EventKind.MESSAGE, None, {"preamble": True}),
    ]
    assert await store.append_events(session.id, []) == []
    with pytest.raises(NotFoundError):
        await store.append_events("missing", [typing, reply])


async def test_put_replaces_a_record_by_id_in_its_place(store: SQLStore) -> None:
    session = await _store_session(store)
    trace = Trace(id="t1", session_id=session.id, agent_id="a")
    await store.put(trace)
    await store.put(Trace(id="t2", session_id=session.id, agent_id="a"))
    again = trace.model_copy(update={"agent_id": "b", "creation_utc": utcnow()})
    await store.put(again)
    assert (await store.get(Trace, "t1")).agent_id == "b"
    # Replaced, not added; still first in creation order.
    assert [t.id for t in await store.list(Trace, session_id=session.id)] == ["t1", "t2"]
    with pytest.raises(TypeError):
        await store.put(Agent(name="a definition"))


async def test_put_stores_a_lone_surrogate_as_a_replacement_character(store: SQLStore) -> None:
    session = await _store_session(store)
    encoded = store.encode(
        Trace(id="t1", session_id=session.id, agent_id="a", error="bad \udc80 text")
    )
    await store.put(encoded)
    assert (await store.get(Trace, "t1")).error == "bad \ufffd text"


class _Suspensions:
    """Awaits a coroutine, counting how often it waited for the event loop."""

    def __init__(self, coro: Any) -> None:
        self.coro = coro
        self.count = 0

    def __await__(self) -> Any:
        steps = self.coro.__await__()
        sent: Any = None
        while True:
            try:
                waited = steps.send(sent)
            except StopIteration as done:
                return done.value
            self.count += 1
            sent = yield waited


async def test_a_write_on_a_sqlite_file_waits_for_the_event_loop_once(tmp_path: Path) -> None:
    """Its statements run inline; only the commit (the disk) is waited for, in a thread. Through
    aiosqlite each statement took several trips, with SQLite's writer lock held."""
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    try:
        session = await _store_session(store)
        typing = NewEvent(EventKind.STATUS, EventSource.AI_AGENT, {"status": "typing"}, "t1")

        async def reply() -> None:
            async with store.transaction():
                await store.append_events(session.id, [typing, typing])
                await store.put(Trace(id="t1", session_id=session.id, agent_id="a"))

        writes = [_Suspensions(store.append_events(session.id, [typing])), _Suspensions(reply())]
        for write in writes:
            await write
        assert [w.count for w in writes] == [1, 1]
        assert len(await store.list_events(session.id)) == 3
    finally:
        await store.close()
