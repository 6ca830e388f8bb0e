"""The turn queue on the SQL store: one table, conditional updates, and a partial unique index
that lets one turn per session run at a time, whichever process claims it."""

from __future__ import annotations

import builtins
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from tactful.domain.turns import TurnRecord, TurnStatus
from tactful.store import statements
from tactful.store.base import TurnQueue
from tactful.store.sql import SQLStore
from tactful.store.sql_connection import AlchemyExecutor

_TURN_COLUMNS = (
    "id",
    "session_id",
    "customer_offset",
    "status",
    "owner",
    "lease_expires",
    "attempts",
    "emitted",
    "cancel_requested",
    "creation_utc",
)


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
        row = {
            "id": turn.id,
            "session_id": turn.session_id,
            "customer_offset": turn.customer_offset,
            "status": turn.status.value,
            "owner": turn.owner,
            "lease_expires": turn.lease_expires,
            "attempts": turn.attempts,
            "emitted": turn.emitted,
            "cancel_requested": turn.cancel_requested,
            "creation_utc": turn.creation_utc,
        }
        async with self.store._run() as ex:
            await ex.rowcount(statements.CREATE_TURN, row, _TURN_COLUMNS)

    async def supersede(
        self, session_id: str, *, newer: str, now: datetime
    ) -> builtins.list[TurnRecord]:
        others = {"p_session_id": session_id, "p_newer": newer}
        async with self.store._run() as ex:
            ended = await ex.all(statements.SUPERSEDE_PENDING, others)
            superseded = [_record(r) for r in ended]
            asked = await ex.all(statements.CANCEL_RUNNING, others)
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
        query = statements.claim_turn(stale=stale)
        params = {
            "p_id": turn_id,
            "p_owner": owner,
            "p_now": now,
            "p_lease_expires": now + timedelta(seconds=lease_s),
        }
        try:
            async with self.store._run() as ex:
                if guarded and isinstance(ex, AlchemyExecutor) and self.store.backend != "sqlite":
                    # A refused statement spoils a PostgreSQL transaction (SQLite undoes the
                    # statement only): the savepoint keeps the rest of it.
                    async with ex.conn.begin_nested():
                        row = await ex.first(query, params)
                else:
                    row = await ex.first(query, params)
        except IntegrityError:
            # Another turn of the session runs: this one waits for it.
            return None
        return _record(row) if row is not None else None

    async def renew(
        self, turn_id: str, owner: str, *, now: datetime, lease_s: float
    ) -> TurnRecord | None:
        params = {
            "p_id": turn_id,
            "p_owner": owner,
            "p_lease_expires": now + timedelta(seconds=lease_s),
        }
        async with self.store._run() as ex:
            row = await ex.first(statements.RENEW_TURN, params)
        return _record(row) if row is not None else None

    async def emit(self, turn_id: str, owner: str) -> bool:
        async with self.store._run() as ex:
            count = await ex.rowcount(statements.EMIT_TURN, {"p_id": turn_id, "p_owner": owner})
        return bool(count)

    async def finish(self, turn_id: str, owner: str | None, status: TurnStatus) -> bool:
        query = statements.finish_turn(owned=owner is not None)
        params = {"p_id": turn_id, "p_status": status.value}
        if owner is not None:
            params["p_owner"] = owner
        async with self.store._run() as ex:
            count = await ex.rowcount(query, params)
        return bool(count)

    async def release(self, turn_id: str, owner: str) -> None:
        async with self.store._run() as ex:
            await ex.rowcount(statements.RELEASE_TURN, {"p_id": turn_id, "p_owner": owner})

    async def get(self, turn_id: str) -> TurnRecord | None:
        async with self.store._run(read_only=True) as ex:
            row = await ex.first(statements.GET_TURN, {"p_id": turn_id})
        return _record(row) if row is not None else None

    async def claimable(
        self,
        *,
        now: datetime,
        limit: int = 50,
        session_id: str | None = None,
        posted_before: datetime | None = None,
    ) -> builtins.list[TurnRecord]:
        query = statements.claimable_turns(
            posted_before=posted_before is not None, session=session_id is not None
        )
        params: dict[str, Any] = {"p_now": now, "p_limit": limit}
        if posted_before is not None:
            params["p_posted_before"] = posted_before
        if session_id is not None:
            params["p_session_id"] = session_id
        async with self.store._run(read_only=True) as ex:
            rows = await ex.all(query, params)
        return [_record(r) for r in rows]

    async def running(self) -> builtins.list[TurnRecord]:
        async with self.store._run(read_only=True) as ex:
            rows = await ex.all(statements.RUNNING_TURNS, {})
        return [_record(r) for r in rows]
