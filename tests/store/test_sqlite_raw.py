"""The statements run straight on SQLite's connection (``tactful.store.sqlite_raw``) do what
SQLAlchemy does with them: each one, run both ways on the same database (in a transaction
rolled back after each), returns the same rows and leaves the same tables."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.exc import IntegrityError

from tactful.domain import Agent, Customer, Event, EventKind, EventSource, Session, Trace
from tactful.domain.turns import TurnRecord, TurnStatus
from tactful.store import statements
from tactful.store.base import NewEvent
from tactful.store.sql import SQLStore, open_store
from tactful.store.sql_connection import AlchemyExecutor, as_document, load_json
from tactful.store.sqlite_raw import RawExecutor
from tactful.store.turns import SQLTurnQueue

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
TABLES = ("sessions", "events", "turns", "traces", "rate_limits", "embeddings", "revisions")
Run = Callable[[AlchemyExecutor | RawExecutor], Awaitable[Any]]


class _Undo(Exception):
    pass


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    s = await open_store(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    try:
        yield s
    finally:
        await s.close()


def _dump(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}


async def _both(store: SQLStore, run: Run) -> tuple[Any, Any]:
    """``run`` through SQLAlchemy, then straight on the connection, each in a write transaction
    undone after: what each returned, and the tables each left."""
    seen: list[Any] = []
    for raw in (False, True):
        with pytest.raises(_Undo):
            async with store._tx() as conn:
                sqlite = conn.sync_connection.connection.driver_connection.raw  # type: ignore[union-attr]
                executor = RawExecutor(sqlite, store._compiled) if raw else AlchemyExecutor(conn)
                result = await run(executor)
                seen.append((_plain(result), _dump(sqlite)))
                raise _Undo
    return seen[0], seen[1]


def _plain(result: Any) -> Any:
    if isinstance(result, list):
        return [_plain(r) for r in result]
    if isinstance(result, tuple) or hasattr(result, "_fields"):
        return tuple(result)
    return result


async def _fill(store: SQLStore) -> tuple[Session, SQLTurnQueue]:
    agent = await store.create(Agent(name="a"))
    customer = await store.create(Customer(name="c"))
    session = await store.create(Session(agent_id=agent.id, customer_id=customer.id))
    await store.append_events(
        session.id,
        [
            NewEvent(EventKind.MESSAGE, EventSource.CUSTOMER, {"message": "hi é"}, "t1"),
            NewEvent(EventKind.STATUS, EventSource.AI_AGENT, {"status": "typing"}, "t1"),
            NewEvent(EventKind.MESSAGE, EventSource.AI_AGENT, None, "t2", {"preamble": True}),
        ],
    )
    await store.put(Trace(id="tr1", session_id=session.id, agent_id=agent.id))
    queue = SQLTurnQueue(store)
    for i, status in enumerate([TurnStatus.PENDING, TurnStatus.RUNNING, TurnStatus.PENDING]):
        await queue.create(
            TurnRecord(
                id=f"turn{i}",
                session_id=session.id,
                customer_offset=i,
                status=status,
                owner="w1" if status is TurnStatus.RUNNING else None,
                lease_expires=T0 + timedelta(seconds=i) if status is TurnStatus.RUNNING else None,
                creation_utc=T0 + timedelta(seconds=i),
            )
        )
    await store.count_hit("bucket", 7)
    return session, queue


def _cases(session_id: str) -> dict[str, Run]:
    sid = {"p_session_id": session_id}
    later = T0 + timedelta(minutes=5)
    event_row = {
        "id": "E1",
        "session_id": session_id,
        "offset": 3,
        "kind": "custom",
        "source": "system",
        "trace_id": "t3",
        "creation_utc": T0,
        "data": {"a": [1, 2.5, None, "x\u00e9"]},
        "metadata": {},
        "deleted": False,
    }
    turn_row = {
        "id": "turn9",
        "session_id": session_id,
        "customer_offset": 9,
        "status": "pending",
        "owner": None,
        "lease_expires": None,
        "attempts": 0,
        "emitted": False,
        "cancel_requested": False,
        "creation_utc": later,
    }
    trace = Trace(id="tr1", session_id=session_id, agent_id="other")
    trace_row = {
        "id": trace.id,
        "natural_key": None,
        "creation_utc": trace.creation_utc,
        "updated_utc": later,
        "data": trace.model_dump_json(),
        "session_id": session_id,
    }
    cases: dict[str, Run] = {
        "bump": lambda ex: ex.first(statements.BUMP_OFFSET, {**sid, "p_count": 2}),
        "insert events": lambda ex: ex.many(statements.INSERT_EVENT, [event_row], list(event_row)),
        "get event": lambda ex: ex.first(statements.GET_EVENT, {**sid, "p_id": "nope"}),
        "find": lambda ex: ex.texts(statements.find_entity("sessions"), {"p_id": session_id}),
        "by key": lambda ex: ex.texts(statements.entity_by_key("agents"), {"p_key": "k"}),
        "list": lambda ex: ex.texts(
            statements.list_entities("traces", ("session_id",)), {"p_session_id": session_id}
        ),
        "put": lambda ex: ex.rowcount(statements.put_entity("sqlite", "traces"), trace_row),
        "revision": lambda ex: ex.first(statements.DEFINITIONS_REVISION, {}),
        "hit": lambda ex: ex.first(
            statements.count_hit("sqlite"), {"p_bucket": "bucket", "p_window": 7}
        ),
        "forget": lambda ex: ex.rowcount(statements.FORGET_WINDOWS, {"p_window": 9}),
        "save embeddings": lambda ex: ex.many(
            statements.save_embeddings("sqlite"),
            [{"key": "k", "model": "m", "dimensions": 2, "vector": b"\0" * 8, "creation_utc": T0}],
            ["key", "model", "dimensions", "vector", "creation_utc"],
        ),
        "load embeddings": lambda ex: ex.all(
            statements.LOAD_EMBEDDINGS, {"p_model": "m", "p_keys": ["k", "j"]}
        ),
        "create turn": lambda ex: ex.rowcount(statements.CREATE_TURN, turn_row, list(turn_row)),
        "supersede": lambda ex: ex.all(statements.SUPERSEDE_PENDING, {**sid, "p_newer": "turn2"}),
        "cancel": lambda ex: ex.all(statements.CANCEL_RUNNING, {**sid, "p_newer": "turn2"}),
        "renew": lambda ex: ex.first(
            statements.RENEW_TURN, {"p_id": "turn1", "p_owner": "w1", "p_lease_expires": later}
        ),
        "emit": lambda ex: ex.rowcount(statements.EMIT_TURN, {"p_id": "turn1", "p_owner": "w1"}),
        "release": lambda ex: ex.rowcount(
            statements.RELEASE_TURN, {"p_id": "turn1", "p_owner": "w1"}
        ),
        "get turn": lambda ex: ex.first(statements.GET_TURN, {"p_id": "turn1"}),
        "running": lambda ex: ex.all(statements.RUNNING_TURNS, {}),
    }
    for stale in (False, True):
        for turn in ("turn0", "turn1"):
            params = {"p_id": turn, "p_owner": "w2", "p_now": later, "p_lease_expires": later}
            cases[f"claim {turn} stale={stale}"] = lambda ex, s=stale, p=params: ex.first(
                statements.claim_turn(stale=s), p
            )
    for owned in (False, True):
        params = {"p_id": "turn1", "p_status": "failed", **({"p_owner": "w1"} if owned else {})}
        cases[f"finish owned={owned}"] = lambda ex, o=owned, p=params: ex.rowcount(
            statements.finish_turn(owned=o), p
        )
    for before in (False, True):
        for session in (False, True):
            params = {"p_now": later, "p_limit": 10}
            if before:
                params["p_posted_before"] = T0 + timedelta(seconds=1)
            if session:
                params.update(sid)
            cases[f"claimable before={before} session={session}"] = (
                lambda ex, b=before, s=session, p=params: ex.all(
                    statements.claimable_turns(posted_before=b, session=s), p
                )
            )
    for limit in (False, True):
        for kinds in (False, True):
            for source in (False, True):
                for trace in (False, True):
                    params = {**sid, "p_min_offset": 1}
                    if limit:
                        params["p_limit"] = 1
                    if kinds:
                        params["p_kinds"] = ["message", "status"]
                    if source:
                        params["p_source"] = "ai_agent"
                    if trace:
                        params["p_trace_id"] = "t1"
                    query = statements.list_events(
                        limit=limit, kinds=kinds, source=source, trace_id=trace
                    )
                    cases[f"events {limit} {kinds} {source} {trace}"] = (
                        lambda ex, q=query, p=params: ex.all(q, p)
                    )
    cases["update event"] = lambda ex: ex.first(
        statements.UPDATE_EVENT_DATA,
        {**sid, "p_id": "nope", "p_data": {"x": 1}},
    )
    return cases


async def test_each_statement_returns_and_writes_the_same_both_ways(store: SQLStore) -> None:
    session, _ = await _fill(store)
    events = await store.list_events(session.id)
    cases = _cases(session.id)
    cases["update event data"] = lambda ex: ex.first(
        statements.UPDATE_EVENT_DATA,
        {"p_session_id": session.id, "p_id": events[1].id, "p_data": {"status": "ready"}},
    )
    for name, run in cases.items():
        (alchemy, alchemy_tables), (raw, raw_tables) = await _both(store, run)
        if name in ("find", "by key", "list"):
            # Straight from the connection a document is its text, decoded when validated.
            raw = [load_json(t) for t in raw]
        assert raw == alchemy, name
        assert raw_tables == alchemy_tables, name
    # The cases changed something (else the comparison of tables proves little).
    changed = [n for n, run in cases.items() if (await _both(store, run))[0][1] != _dump_now(store)]
    assert {"bump", "insert events", "put", "create turn", "emit", "update event data"} <= set(
        changed
    )


def _dump_now(store: SQLStore) -> dict[str, list[tuple[Any, ...]]]:
    return _dump(store._reading())


async def test_a_refused_statement_raises_what_sqlalchemy_raises(store: SQLStore) -> None:
    session, queue = await _fill(store)
    # The last statement takes a turn id already taken: the whole transaction is undone.
    with pytest.raises(IntegrityError):
        async with store._run() as ex:
            await ex.rowcount(
                statements.RELEASE_TURN, {"p_id": "turn1", "p_owner": "w1"}
            )  # turn1 pending again: nothing running
            await ex.first(
                statements.claim_turn(stale=True),
                {"p_id": "turn0", "p_owner": "a", "p_now": T0, "p_lease_expires": T0},
            )
            await ex.rowcount(
                statements.CREATE_TURN,
                {
                    "id": "turn0",
                    "session_id": session.id,
                    "customer_offset": 0,
                    "status": "pending",
                    "creation_utc": T0,
                },
                ["id", "session_id", "customer_offset", "status", "creation_utc"],
            )
    # Rolled back whole: turn1 still runs, turn0 still waits.
    assert (await queue.get("turn1")).status is TurnStatus.RUNNING  # type: ignore[union-attr]
    assert (await queue.get("turn0")).status is TurnStatus.PENDING  # type: ignore[union-attr]
    # And the writer goes on.
    assert await store.count_hit("bucket", 7) == 2


async def test_documents_from_their_text_equal_documents_decoded_first(store: SQLStore) -> None:
    session, _ = await _fill(store)
    [text] = await RawExecutor(store._reading(), store._compiled).texts(
        statements.find_entity("sessions"), {"p_id": session.id}
    )
    assert isinstance(text, str)
    assert as_document(Session, text) == Session.model_validate(load_json(text)) == session
    # Text pydantic's parser refuses falls back to the decoded path, and fails as it did.
    with pytest.raises(ValueError, match="agent_id"):
        as_document(Session, '{"id": "x", "customer_id": "c"}')
    escaped = text.replace('"customer_id": "', '"customer_id": "\\udc80')
    assert as_document(Session, escaped).customer_id.startswith("\ufffd")


async def test_a_read_only_transaction_on_a_file_takes_no_connection(store: SQLStore) -> None:
    """Reads in it see what commits meanwhile, as they did (SQLite's driver opens no read
    transaction), but hold no pooled connection across its awaits."""
    agent = await store.create(Agent(name="one"))
    async with store.transaction(read_only=True):
        assert store._current.get() is None
        first = await store.get(Agent, agent.id)
        await store.update(agent.model_copy(update={"name": "two"}))
        second = await store.get(Agent, agent.id)
    assert (first.name, second.name) == ("one", "two")


async def test_events_read_back_equal_events_validated_from_their_values(store: SQLStore) -> None:
    """Events are built from their rows unvalidated: each value already has its type."""
    session, _ = await _fill(store)
    events = await store.list_events(session.id)
    assert len(events) == 3
    for event in events:
        validated = Event.model_validate(dict(event))
        assert validated == event
        assert [type(v) for v in dict(validated).values()] == [
            type(v) for v in dict(event).values()
        ]
        assert event.creation_utc.tzinfo is not None
