"""The turn queue on the SQL store: one table, conditional updates, and a partial unique index
that lets one turn per session run at a time, whichever process claims it."""

from __future__ import annotations

import builtins
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from tactful.domain.turns import TurnRecord, TurnStatus
from tactful.store.base import TurnQueue
from tactful.store.schema import turns
from tactful.store.sql import SQLStore

RUNNING = TurnStatus.RUNNING.value
PENDING = TurnStatus.PENDING.value


def _aware(value: datetime | None) -> datetime | None:
    # SQLite gives naive datetimes back; everything stored is UTC.
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _record(row: Any) -> TurnRecord:
    return TurnRecord(
        id=row.id,
        session_id=row.session_id,
        customer_offset=row.customer_offset,
        status=TurnStatus(row.status),
        owner=row.owner,
        lease_expires=_aware(row.lease_expires),
        attempts=row.attempts,
        emitted=bool(row.emitted),
        cancel_requested=bool(row.cancel_requested),
        creation_utc=_aware(row.creation_utc) or row.creation_utc,
    )


class SQLTurnQueue(TurnQueue):
    """Turns in the ``turns`` table of an ``SQLStore`` (joining its open transactions)."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store

    async def create(self, turn: TurnRecord) -> None:
        async with self.store._tx() as conn:
            await conn.execute(
                insert(turns).values(
                    id=turn.id,
                    session_id=turn.session_id,
                    customer_offset=turn.customer_offset,
                    status=turn.status.value,
                    owner=turn.owner,
                    lease_expires=turn.lease_expires,
                    attempts=turn.attempts,
                    emitted=turn.emitted,
                    cancel_requested=turn.cancel_requested,
                    creation_utc=turn.creation_utc,
                )
            )

    async def supersede(
        self, session_id: str, *, newer: str, now: datetime
    ) -> builtins.list[TurnRecord]:
        others = and_(turns.c.session_id == session_id, turns.c.id != newer)
        async with self.store._tx() as conn:
            ended = await conn.execute(
                update(turns)
                .where(others, turns.c.status == PENDING)
                .values(status=TurnStatus.SUPERSEDED.value, owner=None, lease_expires=None)
                .returning(*turns.c)
            )
            superseded = [_record(r) for r in ended]
            asked = await conn.execute(
                update(turns)
                .where(others, turns.c.status == RUNNING, turns.c.emitted.is_(False))
                .values(cancel_requested=True)
                .returning(*turns.c)
            )
            return superseded + [_record(r) for r in asked]

    async def claim(
        self,
        turn_id: str,
        owner: str,
        *,
        now: datetime,
        lease_s: float,
        stale: bool = False,
        guarded: bool = False,
    ) -> TurnRecord | None:
        expired = turns.c.lease_expires < now
        taken = or_(turns.c.status == PENDING, and_(turns.c.status == RUNNING, expired))
        if stale:
            taken = turns.c.status.in_([PENDING, RUNNING])
        other = turns.alias("other")
        # Another turn of the session runs: this one waits (the unique index is the backstop
        # for two claims racing; checking first keeps failed claims out of the server's log).
        busy = (
            select(other.c.id)
            .where(
                other.c.session_id == turns.c.session_id,
                other.c.status == RUNNING,
                other.c.id != turn_id,
            )
            .exists()
        )
        query = (
            update(turns)
            .where(turns.c.id == turn_id, taken, turns.c.cancel_requested.is_(False), ~busy)
            .values(
                status=RUNNING,
                owner=owner,
                lease_expires=now + timedelta(seconds=lease_s),
                attempts=turns.c.attempts + 1,
            )
            .returning(*turns.c)
        )
        try:
            async with self.store._tx() as conn:
                if guarded and self.store.backend == "postgresql":
                    # A refused statement spoils a PostgreSQL transaction (SQLite undoes the
                    # statement only): the savepoint keeps the rest of it.
                    async with conn.begin_nested():
                        row = (await conn.execute(query)).first()
                else:
                    row = (await conn.execute(query)).first()
        except IntegrityError:
            # Another turn of the session runs: this one waits for it.
            return None
        return _record(row) if row is not None else None

    async def renew(
        self, turn_id: str, owner: str, *, now: datetime, lease_s: float
    ) -> TurnRecord | None:
        query = (
            update(turns)
            .where(turns.c.id == turn_id, turns.c.owner == owner, turns.c.status == RUNNING)
            .values(lease_expires=now + timedelta(seconds=lease_s))
            .returning(*turns.c)
        )
        async with self.store._tx() as conn:
            row = (await conn.execute(query)).first()
        return _record(row) if row is not None else None

    async def emit(self, turn_id: str, owner: str) -> bool:
        query = (
            update(turns)
            .where(
                turns.c.id == turn_id,
                turns.c.owner == owner,
                turns.c.status == RUNNING,
                turns.c.cancel_requested.is_(False),
                turns.c.emitted.is_(False),
            )
            .values(emitted=True)
        )
        async with self.store._tx() as conn:
            result = await conn.execute(query)
        return bool(result.rowcount)

    async def finish(self, turn_id: str, owner: str | None, status: TurnStatus) -> bool:
        where = [turns.c.id == turn_id, turns.c.status.in_([PENDING, RUNNING])]
        if owner is not None:
            where.append(turns.c.owner == owner)
        query = (
            update(turns).where(*where).values(status=status.value, owner=None, lease_expires=None)
        )
        async with self.store._tx() as conn:
            result = await conn.execute(query)
        return bool(result.rowcount)

    async def release(self, turn_id: str, owner: str) -> None:
        query = (
            update(turns)
            .where(turns.c.id == turn_id, turns.c.owner == owner, turns.c.status == RUNNING)
            .values(status=PENDING, owner=None, lease_expires=None)
        )
        async with self.store._tx() as conn:
            await conn.execute(query)

    async def get(self, turn_id: str) -> TurnRecord | None:
        async with self.store._tx(read_only=True) as conn:
            row = (await conn.execute(select(turns).where(turns.c.id == turn_id))).first()
        return _record(row) if row is not None else None

    async def claimable(
        self,
        *,
        now: datetime,
        limit: int = 50,
        session_id: str | None = None,
        posted_before: datetime | None = None,
    ) -> builtins.list[TurnRecord]:
        pending = turns.c.status == PENDING
        if posted_before is not None:
            pending = and_(pending, or_(turns.c.attempts > 0, turns.c.creation_utc < posted_before))
        query = (
            select(turns)
            .where(or_(pending, and_(turns.c.status == RUNNING, turns.c.lease_expires < now)))
            .order_by(turns.c.creation_utc, turns.c.customer_offset)
            .limit(limit)
        )
        if session_id is not None:
            query = query.where(turns.c.session_id == session_id)
        async with self.store._tx(read_only=True) as conn:
            rows = (await conn.execute(query)).all()
        return [_record(r) for r in rows]

    async def running(self) -> builtins.list[TurnRecord]:
        async with self.store._tx(read_only=True) as conn:
            rows = (await conn.execute(select(turns).where(turns.c.status == RUNNING))).all()
        return [_record(r) for r in rows]
