"""The SQL store's timelines: appending, reading, changing and deleting a session's events,
and the model usage its traces add up to (``store.sql``'s ``SQLStore`` builds on it)."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    case,
    func,
    select,
    update,
)

from tactful.domain import (
    Event,
    EventKind,
    EventSource,
    ModelUsage,
    new_id,
)
from tactful.errors import (
    NotFoundError,
)
from tactful.store import statements
from tactful.store.base import NewEvent
from tactful.store.schema import (
    ENTITY_TABLES,
    INT32_MAX,
    events,
)
from tactful.store.sql_connection import (
    SQLConnections,
    aware,
    check_storable,
    load_json,
    searchable,
)

_EVENT_COLUMNS = (
    "id",
    "session_id",
    "offset",
    "kind",
    "source",
    "trace_id",
    "creation_utc",
    "data",
    "metadata",
    "deleted",
)


class SQLTimeline(SQLConnections):
    """The sessions' events (their timelines) and what traces add up to per session."""

    # -- events ---------------------------------------------------------------------------------

    async def append_events(self, session_id: str, new: Sequence[NewEvent]) -> builtins.list[Event]:
        if not searchable(session_id):
            raise NotFoundError("Session", session_id)
        for n in new:
            check_storable("Event", "trace_id", n.trace_id)
        if not new:
            return []
        async with self._run() as ex:
            # The UPDATE takes the row lock, so concurrent appends get distinct offsets.
            bump = {"p_session_id": session_id, "p_count": len(new)}
            bumped = await ex.first(statements.BUMP_OFFSET, bump)
            if bumped is None:
                raise NotFoundError("Session", session_id)
            first = bumped.next_offset - len(new)
            appended = [
                Event(
                    id=new_id(),
                    session_id=session_id,
                    offset=first + i,
                    kind=n.kind,
                    source=n.source,
                    trace_id=n.trace_id,
                    data=n.data,
                    metadata=n.metadata or {},
                )
                for i, n in enumerate(new)
            ]
            await ex.many(
                statements.INSERT_EVENT,
                [
                    {
                        "id": ev.id,
                        "session_id": session_id,
                        "offset": ev.offset,
                        "kind": ev.kind.value,
                        "source": ev.source.value,
                        "trace_id": ev.trace_id,
                        "creation_utc": ev.creation_utc,
                        "data": ev.data,
                        "metadata": ev.metadata,
                        "deleted": False,
                    }
                    for ev in appended
                ],
                _EVENT_COLUMNS,
            )
        return appended

    @staticmethod
    def _event(row: Any) -> Event:
        # Not validated again: each value comes from a column of its type (checked as written).
        return Event.model_construct(
            id=row.id,
            session_id=row.session_id,
            offset=row.offset,
            kind=EventKind(row.kind),
            source=EventSource(row.source),
            trace_id=row.trace_id,
            creation_utc=aware(row.creation_utc),
            data=row.data,
            metadata=row.metadata,
            deleted=row.deleted,
        )

    async def list_events(
        self,
        session_id: str,
        *,
        min_offset: int = 0,
        kinds: Sequence[EventKind] | None = None,
        source: EventSource | None = None,
        trace_id: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[Event]:
        if min_offset > INT32_MAX or not searchable(session_id, trace_id):
            return []  # no event has such an offset or id
        query = statements.list_events(
            limit=limit is not None,
            kinds=bool(kinds),
            source=source is not None,
            trace_id=trace_id is not None,
        )
        params: dict[str, Any] = {"p_session_id": session_id, "p_min_offset": max(min_offset, 0)}
        if limit is not None:
            params["p_limit"] = max(limit, 0)
        if kinds:
            params["p_kinds"] = [k.value for k in kinds]
        if source is not None:
            params["p_source"] = source.value
        if trace_id is not None:
            params["p_trace_id"] = trace_id
        async with self._run(read_only=True) as ex:
            rows = await ex.all(query, params)
        return [self._event(r) for r in rows]

    async def get_event(self, session_id: str, event_id: str) -> Event:
        if not searchable(session_id, event_id):
            raise NotFoundError("Event", event_id)
        params = {"p_session_id": session_id, "p_id": event_id}
        async with self._run(read_only=True) as ex:
            row = await ex.first(statements.GET_EVENT, params)
        if row is None:
            raise NotFoundError("Event", event_id)
        return self._event(row)

    async def update_event_data(self, session_id: str, event_id: str, data: Any) -> Event:
        if not searchable(session_id, event_id):
            raise NotFoundError("Event", event_id)
        params = {"p_session_id": session_id, "p_id": event_id, "p_data": data}
        async with self._run() as ex:
            row = await ex.first(statements.UPDATE_EVENT_DATA, params)
        if row is None:
            raise NotFoundError("Event", event_id)
        return self._event(row)

    async def update_event_metadata(
        self,
        session_id: str,
        event_id: str,
        *,
        set: Mapping[str, Any] | None = None,
        unset: Sequence[str] = (),
        check: Callable[[dict[str, Any]], None] | None = None,
    ) -> Event:
        if not searchable(session_id, event_id):
            raise NotFoundError("Event", event_id)
        params: dict[str, Any] = {"p_session_id": session_id, "p_id": event_id}
        async with self._run() as ex:
            found = await ex.first(statements.EVENT_METADATA_FOR_UPDATE, params)
            if found is None:
                raise NotFoundError("Event", event_id)
            stored = found[0]
            current = load_json(stored) if isinstance(stored, str) else stored
            metadata = {**(current or {}), **(set or {})}
            for key in unset:
                metadata.pop(key, None)
            if check is not None:
                check(metadata)
            row = await ex.first(
                statements.UPDATE_EVENT_METADATA, {**params, "p_metadata": metadata}
            )
        assert row is not None  # read under its lock in this transaction
        return self._event(row)

    async def delete_events(self, session_id: str, *, min_offset: int) -> int:
        if min_offset > INT32_MAX or not searchable(session_id):
            return 0
        async with self._tx() as conn:
            result = await conn.execute(
                update(events)
                .where(events.c.session_id == session_id, events.c.offset >= max(min_offset, 0))
                .values(deleted=True)
            )
        return int(result.rowcount)

    # -- traces ---------------------------------------------------------------------------------

    async def session_usage(self, session_id: str) -> ModelUsage:
        if not searchable(session_id):
            return ModelUsage()
        traces = ENTITY_TABLES["traces"]
        # The usage object is taken out of each document once, and its numbers from that small
        # object: each extraction from the whole document would parse all of it again.
        inner = (
            select(traces.c.data["usage"].label("usage"))
            .where(traces.c.session_id == session_id)
            .cte("usages")
            # Else PostgreSQL inlines it and parses each document six times (json, not jsonb).
            .prefix_with("MATERIALIZED", dialect="postgresql")
        )
        usage = inner.c.usage
        query = select(
            func.sum(usage["model_calls"].as_integer()),
            func.sum(usage["prompt_tokens"].as_integer()),
            func.sum(usage["cached_tokens"].as_integer()),
            func.sum(usage["completion_tokens"].as_integer()),
            func.sum(usage["cost_usd"].as_float()),
            func.sum(case((usage["cost_complete"].as_boolean().is_(False), 1), else_=0)),
        )
        async with self._tx(read_only=True) as conn:
            row: tuple[Any, ...] = tuple((await conn.execute(query)).one())
        calls, prompt, cached, completion, cost, incomplete = row
        return ModelUsage(
            model_calls=calls or 0,
            prompt_tokens=prompt or 0,
            cached_tokens=cached or 0,
            completion_tokens=completion or 0,
            # SUM skips the unknown costs, and is NULL when every one was unknown.
            cost_usd=float(cost) if cost is not None else (None if calls else 0.0),
            cost_complete=not incomplete,
        )
