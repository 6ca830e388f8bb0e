"""The store suite: runs on SQLite (memory and file) and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tactful.domain import (
    Agent,
    CannedResponse,
    CompositionMode,
    Customer,
    EventKind,
    EventSource,
    Guideline,
    Journey,
    JourneyState,
    JourneyTransition,
    Session,
    Tag,
    Term,
    Trace,
)
from tactful.errors import ConflictError, NotFoundError
from tactful.store.sql import SQLStore, open_store


async def _session(store: SQLStore) -> Session:
    agent = await store.create(Agent(name="a"))
    customer = await store.create(Customer(name="c"))
    return await store.create(Session(agent_id=agent.id, customer_id=customer.id))


async def test_create_get_roundtrip_keeps_every_field(store: SQLStore) -> None:
    g = Guideline(
        condition="the customer asks for a refund",
        action="explain the refund policy",
        priority=3,
        tags=["agent:x"],
        metadata={"k": [1, 2]},
        composition_mode=CompositionMode.STRICT,
        tools=["orders:find"],
    )
    await store.create(g)
    assert await store.get(Guideline, g.id) == g


async def test_get_unknown_raises_not_found(store: SQLStore) -> None:
    with pytest.raises(NotFoundError, match="Agent 'nope' was not found"):
        await store.get(Agent, "nope")
    assert await store.find(Agent, "nope") is None


async def test_duplicate_id_and_key_conflict(store: SQLStore) -> None:
    a = await store.create(Agent(name="a"), key="agent:a")
    with pytest.raises(ConflictError):
        await store.create(Agent(id=a.id, name="b"))
    with pytest.raises(ConflictError):
        await store.create(Agent(name="c"), key="agent:a")
    assert [x.name for x in await store.list(Agent)] == ["a"]


async def test_upsert_by_key_is_idempotent_and_keeps_identity(store: SQLStore) -> None:
    first, created = await store.upsert(Term(name="Protect", description="v1"), key="term:p")
    second, created_again = await store.upsert(Term(name="Protect", description="v2"), key="term:p")
    assert created and not created_again
    assert second.id == first.id and second.creation_utc == first.creation_utc
    stored = await store.list(Term)
    assert len(stored) == 1 and stored[0].description == "v2"


async def test_update_and_delete(store: SQLStore) -> None:
    tag = await store.create(Tag(name="vip"))
    tag.name = "VIP"
    await store.update(tag)
    assert (await store.get(Tag, tag.id)).name == "VIP"
    assert await store.delete(Tag, tag.id)
    assert not await store.delete(Tag, tag.id)
    with pytest.raises(NotFoundError):
        await store.update(tag)


async def test_list_filters_on_indexed_columns(store: SQLStore) -> None:
    s1 = await _session(store)
    await _session(store)
    assert [s.id for s in await store.list(Session, agent_id=s1.agent_id)] == [s1.id]
    with pytest.raises(TypeError, match="cannot filter"):
        await store.list(Session, title="x")


async def test_event_offsets_are_monotonic_under_concurrency(store: SQLStore) -> None:
    session = await _session(store)
    appended = await asyncio.gather(
        *(
            store.append_event(
                session.id, kind=EventKind.MESSAGE, source=EventSource.CUSTOMER, data={"i": i}
            )
            for i in range(20)
        )
    )
    assert sorted(e.offset for e in appended) == list(range(20))
    listed = await store.list_events(session.id)
    assert [e.offset for e in listed] == list(range(20))
    assert {e.id for e in listed} == {e.id for e in appended}


async def test_event_filters(store: SQLStore) -> None:
    session = await _session(store)
    await store.append_event(
        session.id, kind=EventKind.MESSAGE, source=EventSource.CUSTOMER, data={"message": "hi"}
    )
    await store.append_event(
        session.id, kind=EventKind.STATUS, source=EventSource.AI_AGENT, data={}, trace_id="t1"
    )
    await store.append_event(
        session.id, kind=EventKind.MESSAGE, source=EventSource.AI_AGENT, data={}, trace_id="t1"
    )
    assert [e.offset for e in await store.list_events(session.id, min_offset=1)] == [1, 2]
    kinds = await store.list_events(session.id, kinds=[EventKind.MESSAGE])
    assert [e.offset for e in kinds] == [0, 2]
    by_source = await store.list_events(session.id, source=EventSource.AI_AGENT)
    assert [e.offset for e in by_source] == [1, 2]
    by_trace = await store.list_events(session.id, trace_id="t1", kinds=[EventKind.STATUS])
    assert [e.offset for e in by_trace] == [1]
    got = await store.get_event(session.id, kinds[0].id)
    assert got.data == {"message": "hi"} and got.creation_utc.tzinfo is not None


async def test_append_to_unknown_session_writes_nothing(store: SQLStore) -> None:
    with pytest.raises(NotFoundError):
        await store.append_event(
            "missing", kind=EventKind.MESSAGE, source=EventSource.CUSTOMER, data={}
        )
    session = await _session(store)
    first = await store.append_event(
        session.id, kind=EventKind.MESSAGE, source=EventSource.CUSTOMER, data={}
    )
    assert first.offset == 0


async def test_delete_events_hides_them_and_offsets_continue(store: SQLStore) -> None:
    session = await _session(store)
    for _ in range(3):
        await store.append_event(
            session.id, kind=EventKind.MESSAGE, source=EventSource.CUSTOMER, data={}
        )
    assert await store.delete_events(session.id, min_offset=1) == 2
    assert [e.offset for e in await store.list_events(session.id)] == [0]
    nxt = await store.append_event(
        session.id, kind=EventKind.MESSAGE, source=EventSource.CUSTOMER, data={}
    )
    assert nxt.offset == 3


async def test_an_events_data_is_updated_in_place(store: SQLStore) -> None:
    session = await _session(store)
    growing = await store.append_event(
        session.id, kind=EventKind.MESSAGE, source=EventSource.AI_AGENT, data={"chunks": ["Hi"]}
    )
    later = await store.append_event(
        session.id, kind=EventKind.STATUS, source=EventSource.AI_AGENT, data={}
    )
    updated = await store.update_event_data(
        session.id, growing.id, {"chunks": ["Hi", " there", None]}
    )
    assert (updated.id, updated.offset, updated.kind) == (growing.id, 0, EventKind.MESSAGE)
    assert [e.data for e in await store.list_events(session.id)] == [
        {"chunks": ["Hi", " there", None]},
        later.data,
    ]
    with pytest.raises(NotFoundError):
        await store.update_event_data(session.id, "nope", {})


async def test_deleting_a_session_deletes_its_events(store: SQLStore) -> None:
    session = await _session(store)
    await store.append_event(
        session.id, kind=EventKind.MESSAGE, source=EventSource.CUSTOMER, data={}
    )
    assert await store.delete(Session, session.id)
    assert await store.list_events(session.id) == []


async def test_nested_documents_roundtrip(store: SQLStore) -> None:
    s1, s2 = JourneyState(action="ask for the order id"), JourneyState(action="look it up")
    journey = Journey(
        title="Return",
        states=[s1, s2],
        transitions=[JourneyTransition(source=s1.id, target=s2.id, condition="gave an id")],
        initial_state_id=s1.id,
    )
    await store.create(journey)
    assert await store.get(Journey, journey.id) == journey
    trace = Trace(session_id="s", agent_id="a", stage_timings_ms={"match": 1.5})
    await store.upsert(trace)
    assert (await store.list(Trace, session_id="s"))[0].stage_timings_ms == {"match": 1.5}


async def test_embeddings_cache_roundtrip(store: SQLStore) -> None:
    v = np.arange(6, dtype=np.float32)
    await store.save_embeddings("m", {"k1": v})
    await store.save_embeddings("m", {"k1": v, "k2": v * 2})  # existing keys are left alone
    loaded = await store.load_embeddings("m", ["k1", "k2", "k3"])
    assert set(loaded) == {"k1", "k2"}
    np.testing.assert_array_equal(loaded["k2"], v * 2)
    assert await store.load_embeddings("other-model", ["k1"]) == {}


async def test_failed_transaction_leaves_nothing(store: SQLStore) -> None:
    """A write that fails half-way (here: a duplicate key on the second row) is rolled back."""
    from sqlalchemy import insert

    from tactful.store.schema import ENTITY_TABLES

    table = ENTITY_TABLES["canned_responses"]
    good = CannedResponse(value="one")
    dup = CannedResponse(id=good.id, value="two")
    with pytest.raises(Exception):  # noqa: B017 - the driver's IntegrityError
        async with store._tx() as conn:
            await conn.execute(insert(table).values(**store._row(good, None)))
            await conn.execute(insert(table).values(**store._row(dup, None)))
    assert await store.list(CannedResponse) == []


def test_acknowledged_writes_survive_a_crash(tmp_path: Path) -> None:
    """A process killed right after a write returned loses nothing of it (SQLite file)."""
    db = tmp_path / "crash.db"
    script = textwrap.dedent(
        f"""
        import asyncio, os
        from tactful.domain import Agent, Customer, Session, EventKind, EventSource
        from tactful.store.sql import open_store

        async def main():
            store = await open_store("sqlite+aiosqlite:///{db}")
            a = await store.create(Agent(id="a1", name="a"))
            c = await store.create(Customer(id="c1", name="c"))
            s = await store.create(Session(id="s1", agent_id="a1", customer_id="c1"))
            for i in range(5):
                await store.append_event("s1", kind=EventKind.MESSAGE,
                                         source=EventSource.CUSTOMER, data={{"i": i}})
            print("acknowledged", flush=True)
            os._exit(9)  # no close, no flush, no cleanup

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert done.returncode == 9, done.stderr
    assert "acknowledged" in done.stdout

    async def check() -> list[int]:
        store = await open_store(f"sqlite+aiosqlite:///{db}")
        try:
            return [e.offset for e in await store.list_events("s1")]
        finally:
            await store.close()

    assert asyncio.run(check()) == [0, 1, 2, 3, 4]


async def test_reopening_a_file_store_keeps_data_and_migrates_once(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    first = await open_store(url)
    await first.create(Agent(id="keep", name="kept"))
    await first.close()
    again = await open_store(url)
    try:
        assert (await again.get(Agent, "keep")).name == "kept"
    finally:
        await again.close()


async def test_deleting_a_session_deletes_its_traces(store: SQLStore) -> None:
    session = await _session(store)
    await store.upsert(Trace(session_id=session.id, agent_id=session.agent_id))
    await store.upsert(Trace(session_id="other", agent_id=session.agent_id))
    await store.delete(Session, session.id)
    assert [t.session_id for t in await store.list(Trace)] == ["other"]


async def test_transaction_groups_calls_all_or_nothing(store: SQLStore) -> None:
    with pytest.raises(RuntimeError, match="half-way"):
        async with store.transaction():
            await store.create(Tag(name="one"))
            await store.create(Tag(name="two"))
            assert len(await store.list(Tag)) == 2  # reads inside see the open transaction
            raise RuntimeError("half-way")
    assert await store.list(Tag) == []
    async with store.transaction():
        await store.create(Tag(name="one"))
        session = await _session(store)
        await store.append_event(
            session.id, kind=EventKind.MESSAGE, source=EventSource.CUSTOMER, data={}
        )
    assert len(await store.list(Tag)) == 1
    assert len(await store.list_events(session.id)) == 1


async def test_definition_changes_bump_the_revision_and_nothing_else_does(
    store: SQLStore,
) -> None:
    start = await store.definitions_revision()
    g = await store.create(Guideline(condition="the customer asks for a refund", action="x"))
    created = await store.definitions_revision()
    assert created > start
    await store.update(g.model_copy(update={"action": "explain the policy"}))
    updated = await store.definitions_revision()
    assert updated > created
    # Sessions, customers, events and traces are not definitions.
    session = await _session(store)
    after_agent = await store.definitions_revision()  # _session creates an agent: a definition
    await store.append_event(
        session.id, kind=EventKind.MESSAGE, source=EventSource.CUSTOMER, data={"message": "hi"}
    )
    await store.create(Customer(name="another"))
    await store.upsert(Trace(session_id=session.id, agent_id=session.agent_id))
    assert await store.definitions_revision() == after_agent
    assert await store.delete(Guideline, g.id)
    assert await store.definitions_revision() > after_agent
    # Deleting nothing changes nothing.
    deleted = await store.definitions_revision()
    assert not await store.delete(Guideline, g.id)
    assert await store.definitions_revision() == deleted


async def test_upserting_the_same_definition_writes_nothing(store: SQLStore) -> None:
    g = Guideline(condition="the customer asks about shipping", action="give the times")
    stored, created = await store.upsert(g, key="shipping")
    assert created
    before = await store.definitions_revision()
    again, created = await store.upsert(
        Guideline(condition=g.condition, action=g.action, id=g.id), key="shipping"
    )
    assert not created and again.id == stored.id
    assert await store.definitions_revision() == before
    changed, _ = await store.upsert(
        Guideline(condition=g.condition, action="give the times and the cost", id=g.id),
        key="shipping",
    )
    assert await store.definitions_revision() > before
    assert (await store.get(Guideline, g.id)).action == "give the times and the cost"
    assert changed.creation_utc == stored.creation_utc


async def test_reads_do_not_wait_for_an_open_write(store: SQLStore) -> None:
    if store.backend == "sqlite" and ":memory:" in store.url:
        pytest.skip("an in-memory database has one connection: its reads wait by design")
    agent = await store.create(Agent(name="committed"))
    holding, release = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        async with store.transaction():
            await store.create(Agent(name="not yet committed", id="pending"))
            holding.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await holding.wait()
    try:
        # Before reads stopped taking the writers' lock, these waited for the write to end.
        assert (await asyncio.wait_for(store.get(Agent, agent.id), 5)).name == "committed"
        assert await asyncio.wait_for(store.find(Agent, "pending"), 5) is None
        async with store.transaction(read_only=True):
            assert len(await asyncio.wait_for(store.list(Agent), 5)) == 1
    finally:
        release.set()
        await task
    assert (await store.get(Agent, "pending")).name == "not yet committed"
