"""The statements built once per shape (``tactful.store.statements``) on every backend: each
shape of a filtered read, run again and again with other values, finds what filtering every row
in Python finds."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from tactful.domain import Agent, Customer, Event, EventKind, EventSource, Flag, Session
from tactful.domain.turns import TurnRecord, TurnStatus
from tactful.store.base import NewEvent
from tactful.store.sql import SQLStore
from tactful.store.turns import SQLTurnQueue

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
KINDS = [EventKind.MESSAGE, EventKind.STATUS, EventKind.TOOL]
SOURCES = [EventSource.CUSTOMER, EventSource.AI_AGENT, EventSource.SYSTEM]


async def _session(store: SQLStore, agent: Agent, customer: Customer) -> Session:
    return await store.create(Session(agent_id=agent.id, customer_id=customer.id))


def _expected(
    every: list[Event],
    *,
    min_offset: int,
    kinds: list[EventKind] | None,
    source: EventSource | None,
    trace_id: str | None,
    limit: int | None,
) -> list[Event]:
    found = [
        e
        for e in every
        if e.offset >= min_offset
        and (not kinds or e.kind in kinds)
        and (source is None or e.source == source)
        and (trace_id is None or e.trace_id == trace_id)
    ]
    return found if limit is None else found[: max(limit, 0)]


async def test_list_events_matches_every_filter_combination(store: SQLStore) -> None:
    agent = await store.create(Agent(name="a"))
    customer = await store.create(Customer(name="c"))
    sessions = [await _session(store, agent, customer) for _ in range(2)]
    for n, session in enumerate(sessions):
        await store.append_events(
            session.id,
            [
                NewEvent(
                    kind=KINDS[i % 3],
                    source=SOURCES[(i + n) % 3],
                    data={"i": i, "session": n},
                    trace_id=f"t{i % 2}",
                )
                for i in range(9 + n)
            ],
        )
    await store.delete_events(sessions[1].id, min_offset=8)  # deleted events are never listed
    combinations = list(
        itertools.product(
            [0, 2, -5],
            [None, [], [EventKind.MESSAGE], [EventKind.STATUS, EventKind.TOOL]],
            [None, EventSource.CUSTOMER, EventSource.SYSTEM],
            [None, "t0", "t1", "nope"],
            [None, 0, 2, -1],
        )
    )
    checked = 0
    for session in sessions:
        every = await store.list_events(session.id)
        assert len(every) == 9 - (session is sessions[1])  # 10, of which 2 deleted
        for min_offset, kinds, source, trace_id, limit in combinations:
            query = dict(
                min_offset=min_offset, kinds=kinds, source=source, trace_id=trace_id, limit=limit
            )
            found = await store.list_events(session.id, **query)  # type: ignore[arg-type]
            assert found == _expected(every, **query), query  # type: ignore[arg-type]
            checked += bool(found)
    assert checked > 100  # most combinations find something


async def test_list_by_every_filter_subset(store: SQLStore) -> None:
    agents = [await store.create(Agent(name=f"a{i}")) for i in range(2)]
    customer = await store.create(Customer(name="c"))
    sessions = [await _session(store, agent, customer) for agent in agents]
    flags = []
    for i in range(6):
        session = sessions[i % 2]
        flags.append(
            Flag(
                session_id=session.id,
                agent_id=agents[i // 3].id,
                event_id=f"e{i}",
                creation_utc=T0 + timedelta(seconds=i),
            )
        )
        await store.put(flags[-1])
    values = {"session_id": [s.id for s in sessions], "agent_id": [a.id for a in agents]}
    for session_id in [None, *values["session_id"]]:
        for agent_id in [None, *values["agent_id"]]:
            where = {k: v for k, v in (("session_id", session_id), ("agent_id", agent_id)) if v}
            expected = [f for f in flags if all(getattr(f, k) == v for k, v in where.items())]
            assert await store.list(Flag, **where) == expected, where
            # The order the filters are named in does not matter.
            reversed_where = dict(reversed(list(where.items())))
            assert await store.list(Flag, **reversed_where) == expected


async def test_turn_queue_shapes(store: SQLStore) -> None:
    queue = SQLTurnQueue(store)
    agent = await store.create(Agent(name="a"))
    customer = await store.create(Customer(name="c"))
    one, two = [(await _session(store, agent, customer)).id for _ in range(2)]
    for session, name, minutes in [(one, "a", 0), (two, "b", 1), (one, "c", 2)]:
        await queue.create(
            TurnRecord(
                id=name,
                session_id=session,
                customer_offset=minutes,
                creation_utc=T0 + timedelta(minutes=minutes),
            )
        )
    now = T0 + timedelta(minutes=5)
    assert [t.id for t in await queue.claimable(now=now)] == ["a", "b", "c"]
    assert [t.id for t in await queue.claimable(now=now, limit=2)] == ["a", "b"]
    assert [t.id for t in await queue.claimable(now=now, session_id=one)] == ["a", "c"]
    assert [t.id for t in await queue.claimable(now=now, session_id=two)] == ["b"]
    early = T0 + timedelta(minutes=1)
    found = await queue.claimable(now=now, session_id=one, posted_before=early)
    assert [t.id for t in found] == ["a"]
    # Ended without an owner named; a turn ended already is not ended again.
    assert await queue.finish("b", None, TurnStatus.FAILED)
    assert not await queue.finish("b", None, TurnStatus.DONE)
    ended = await queue.get("b")
    assert ended is not None and ended.status is TurnStatus.FAILED
    claimed = await queue.claim("a", "A", now=now, lease_s=10)
    assert claimed is not None and [t.id for t in await queue.running()] == ["a"]
    assert not await queue.finish("a", "B", TurnStatus.DONE)  # not B's
    assert await queue.finish("a", "A", TurnStatus.DONE)
    assert await queue.running() == []
