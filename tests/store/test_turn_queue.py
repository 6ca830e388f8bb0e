"""The turn queue on every backend: claims, leases, one running turn per session, supersede,
emit once, and finishing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tactful.domain import Agent, Customer, Session
from tactful.domain.turns import TurnRecord, TurnStatus
from tactful.store.sql import SQLStore, open_store
from tactful.store.turns import SQLTurnQueue

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
LEASE = 30.0


async def _session(store: SQLStore) -> str:
    agent = await store.create(Agent(name="a"))
    customer = await store.create(Customer(name="c"))
    return (await store.create(Session(agent_id=agent.id, customer_id=customer.id))).id


def turn(session_id: str, id: str, offset: int = 0) -> TurnRecord:
    return TurnRecord(id=id, session_id=session_id, customer_offset=offset, creation_utc=T0)


async def test_a_claimed_turn_is_leased_and_renewed(store: SQLStore) -> None:
    queue = SQLTurnQueue(store)
    session = await _session(store)
    await queue.create(turn(session, "t1"))
    claimed = await queue.claim("t1", "A", now=T0, lease_s=LEASE)
    assert claimed is not None and claimed.status is TurnStatus.RUNNING
    assert claimed.owner == "A" and claimed.attempts == 1
    assert claimed.lease_expires == T0 + timedelta(seconds=LEASE)
    # Held: nobody else takes it before the lease ends...
    assert await queue.claim("t1", "B", now=T0 + timedelta(seconds=5), lease_s=LEASE) is None
    renewed = await queue.renew("t1", "A", now=T0 + timedelta(seconds=20), lease_s=LEASE)
    assert renewed is not None and renewed.lease_expires == T0 + timedelta(seconds=50)
    assert await queue.renew("t1", "B", now=T0, lease_s=LEASE) is None
    # ...and once it expired (its worker died), another worker takes it over.
    late = T0 + timedelta(seconds=51)
    assert [t.id for t in await queue.claimable(now=late)] == ["t1"]
    taken = await queue.claim("t1", "B", now=late, lease_s=LEASE)
    assert taken is not None and (taken.owner, taken.attempts) == ("B", 2)
    assert await queue.renew("t1", "A", now=late, lease_s=LEASE) is None  # A lost it
    assert await queue.finish("t1", "B", TurnStatus.DONE)
    done = await queue.get("t1")
    assert done is not None and done.status is TurnStatus.DONE and done.owner is None
    assert await queue.claim("t1", "C", now=late, lease_s=LEASE) is None


async def test_one_turn_of_a_session_runs_at_a_time(store: SQLStore) -> None:
    queue = SQLTurnQueue(store)
    session, other = await _session(store), await _session(store)
    for t in (turn(session, "t1", 0), turn(session, "t2", 3), turn(other, "u1", 0)):
        await queue.create(t)
    assert await queue.claim("t1", "A", now=T0, lease_s=LEASE) is not None
    assert await queue.claim("t2", "B", now=T0, lease_s=LEASE) is None  # t1 runs
    assert await queue.claim("u1", "B", now=T0, lease_s=LEASE) is not None  # another session
    assert await queue.finish("t1", "A", TurnStatus.DONE)
    assert await queue.claim("t2", "B", now=T0, lease_s=LEASE) is not None


async def test_a_newer_message_supersedes_what_has_not_replied(store: SQLStore) -> None:
    queue = SQLTurnQueue(store)
    session = await _session(store)
    for t in (turn(session, "t1", 0), turn(session, "t2", 3)):
        await queue.create(t)
    assert await queue.claim("t1", "A", now=T0, lease_s=LEASE) is not None
    await queue.create(turn(session, "t3", 6))
    touched = {t.id: t for t in await queue.supersede(session, newer="t3", now=T0)}
    assert touched["t2"].status is TurnStatus.SUPERSEDED  # never ran
    assert touched["t1"].status is TurnStatus.RUNNING and touched["t1"].cancel_requested
    # The running one may not reply any more, whoever runs it.
    assert not await queue.emit("t1", "A")
    assert await queue.claim("t3", "B", now=T0, lease_s=LEASE) is None  # t1 still runs
    assert await queue.finish("t1", "A", TurnStatus.SUPERSEDED)
    claimed = await queue.claim("t3", "B", now=T0, lease_s=LEASE)
    assert claimed is not None
    # A turn emits once: a newer message no longer supersedes it after that.
    assert await queue.emit("t3", "B")
    assert not await queue.emit("t3", "B")
    await queue.create(turn(session, "t4", 9))
    assert await queue.supersede(session, newer="t4", now=T0) == []
    assert not await queue.emit("t3", "C")


async def test_a_released_turn_is_claimable_again(store: SQLStore) -> None:
    queue = SQLTurnQueue(store)
    session = await _session(store)
    await queue.create(turn(session, "t1"))
    await queue.claim("t1", "A", now=T0, lease_s=LEASE)
    assert [t.id for t in await queue.running()] == ["t1"]
    await queue.release("t1", "A")
    assert (await queue.get("t1")).status is TurnStatus.PENDING  # type: ignore[union-attr]
    assert await queue.claim("t1", "B", now=T0, lease_s=LEASE) is not None
    # After a restart of a single-process store, a live lease is taken over at once.
    assert await queue.claim("t1", "C", now=T0, lease_s=LEASE, stale=True) is not None


async def test_deleting_a_session_deletes_its_turns(store: SQLStore) -> None:
    queue = SQLTurnQueue(store)
    session = await _session(store)
    await queue.create(turn(session, "t1"))
    await store.delete(Session, session)
    assert await queue.get("t1") is None


async def test_two_workers_racing_for_one_session_get_one_turn(
    store: SQLStore, tmp_path: object
) -> None:
    if store.backend == "sqlite" and ":memory:" in store.url:
        pytest.skip("an in-memory database belongs to one store; a file or PostgreSQL is shared")
    other = await open_store(store.url, pg_schema=store.pg_schema)
    try:
        session = await _session(store)
        queues = [SQLTurnQueue(store), SQLTurnQueue(other)]
        for i in range(6):
            await queues[0].create(turn(session, f"t{i}", i))
        claims = await asyncio.gather(
            *(queues[i % 2].claim(f"t{i}", f"w{i}", now=T0, lease_s=LEASE) for i in range(6))
        )
    finally:
        await other.close()
    assert sum(c is not None for c in claims) == 1


async def test_a_fresh_turn_is_left_to_the_process_that_posted_it(store: SQLStore) -> None:
    """Recovery passes take a pending turn that was never claimed only once it looks orphaned;
    a turn given back (claimed before) is anyone's at once."""
    queue = SQLTurnQueue(store)
    session, other = await _session(store), await _session(store)
    await queue.create(turn(session, "fresh"))
    await queue.create(turn(other, "given-back"))
    assert await queue.claim("given-back", "A", now=T0, lease_s=LEASE) is not None
    await queue.release("given-back", "A")

    soon = T0 + timedelta(milliseconds=200)
    found = await queue.claimable(now=soon, posted_before=soon - timedelta(seconds=1))
    assert [t.id for t in found] == ["given-back"]
    later = T0 + timedelta(seconds=2)
    found = await queue.claimable(now=later, posted_before=later - timedelta(seconds=1))
    assert sorted(t.id for t in found) == ["fresh", "given-back"]
    # Without the filter (a session's next turn, a single-process restart): every one.
    assert sorted(t.id for t in await queue.claimable(now=soon)) == ["fresh", "given-back"]


async def test_a_refused_guarded_claim_leaves_the_transaction_it_joins_intact(
    store: SQLStore,
) -> None:
    """Two transactions claim two turns of one session at once: the unique index refuses the
    second claim when the first commits. Guarded (as the one posting a message claims), only
    the claim is undone, and what its transaction wrote before it commits."""
    if store.backend != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time: two claims cannot overlap")
    queue = SQLTurnQueue(store)
    session = await _session(store)
    for t in (turn(session, "t1", 0), turn(session, "t2", 3)):
        await queue.create(t)
    holding, release = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with store.transaction():
            assert await queue.claim("t1", "A", now=T0, lease_s=LEASE) is not None
            holding.set()
            await release.wait()

    async def second() -> TurnRecord | None:
        await holding.wait()
        async with store.transaction():
            await store.create(Agent(id="written-before", name="kept"))
            asyncio.get_running_loop().call_later(0.3, release.set)
            # Waits on the index entry until the first commits, then is refused.
            return await queue.claim("t2", "B", now=T0, lease_s=LEASE, guarded=True)

    try:
        _, refused = await asyncio.wait_for(asyncio.gather(first(), second()), 10)
    finally:
        holding.set()
        release.set()
    assert refused is None
    assert (await store.get(Agent, "written-before")).name == "kept"
    assert (await queue.get("t2")).status is TurnStatus.PENDING  # type: ignore[union-attr]
