"""The SQL store's frequent statements, built once and run with parameter dicts.

Building a SQLAlchemy statement and computing its cache key costs the caller about 100 µs of
Python on every call, several times what running it on SQLite costs; a turn runs a few dozen.
Each builder here makes its statement once per shape (table, dialect, which filters are given)
and keeps it; the values go in as parameters named after the ``bindparam`` placeholders (names
prefixed ``p_``: an INSERT or UPDATE reserves its columns' own names).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    Integer,
    String,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Delete, Insert, Select, Update
from sqlalchemy.types import TypeDecorator

from tactful.domain.turns import TurnStatus
from tactful.store.base import SessionFilter
from tactful.store.schema import (
    ENTITY_TABLES,
    INDEXED_COLUMNS,
    embeddings,
    events,
    rate_limits,
    revisions,
    turns,
)

RUNNING = TurnStatus.RUNNING.value
PENDING = TurnStatus.PENDING.value


class EncodedJSON(TypeDecorator[str]):
    """A JSON column's value encoded already (``SQLStore.encode``): bound as it is."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


def dialect_insert(backend: str) -> Any:
    """``insert`` of the backend's dialect (it has ``on_conflict_do_*``)."""
    return pg_insert if backend == "postgresql" else sqlite_insert


def entity_columns(collection: str) -> tuple[str, ...]:
    """The columns ``SQLStore._row`` fills, in its order."""
    return (
        "id",
        "natural_key",
        "creation_utc",
        "updated_utc",
        "data",
        *INDEXED_COLUMNS[collection],
    )


# -- entities ---------------------------------------------------------------------------------


@cache
def find_entity(collection: str) -> Select[Any]:
    table = ENTITY_TABLES[collection]
    return select(table.c.data).where(table.c.id == bindparam("p_id"))


@cache
def entity_by_key(collection: str) -> Select[Any]:
    table = ENTITY_TABLES[collection]
    return select(table.c.data).where(table.c.natural_key == bindparam("p_key"))


@cache
def list_entities(collection: str, filters: tuple[str, ...]) -> Select[Any]:
    """The entities whose ``filters`` columns equal ``p_<column>``."""
    table = ENTITY_TABLES[collection]
    query = select(table.c.data).order_by(table.c.creation_utc, table.c.id)
    if filters:
        query = query.where(and_(*(table.c[k] == bindparam(f"p_{k}") for k in filters)))
    return query


def find_sessions(where: SessionFilter, backend: str) -> Select[Any]:
    """The sessions ``where`` matches; the mode, the handoff and the labels are read from the
    document (``->>`` and ``json_array_elements_text`` on PostgreSQL, ``json_extract`` and
    ``json_each`` on SQLite): filtered in the query, before any paging."""
    table = ENTITY_TABLES["sessions"]
    data = table.c.data
    query = select(data).order_by(table.c.creation_utc, table.c.id)
    if where.agent_id is not None:
        query = query.where(table.c.agent_id == where.agent_id)
    if where.customer_id is not None:
        query = query.where(table.c.customer_id == where.customer_id)
    if where.mode is not None:
        query = query.where(data["mode"].as_string() == where.mode.value)
    assignee = data[("handoff", "assignee", "id")].as_string()
    if where.assignee_id is not None:
        query = query.where(assignee == where.assignee_id)
    if where.assigned is not None:
        query = query.where(assignee.is_not(None) if where.assigned else assignee.is_(None))
    # One EXISTS over the document's labels per label wanted.
    for label in dict.fromkeys(where.labels):
        if backend == "postgresql":
            elements = func.json_array_elements_text(data["labels"]).table_valued("value")
        else:
            elements = func.json_each(data, "$.labels").table_valued("value")
        wanted = bindparam(None, label, type_=String())
        query = query.where(
            exists(select(literal(1)).select_from(elements).where(elements.c.value == wanted))
        )
    return query


@cache
def put_entity(backend: str, collection: str) -> Insert:
    """Insert the row, or replace a stored one's columns (but its id and creation time) from
    the row being inserted, so the document is sent once. ``data`` is bound encoded already."""
    table = ENTITY_TABLES[collection]
    columns = entity_columns(collection)
    values = {
        c: bindparam(c, type_=EncodedJSON() if c == "data" else table.c[c].type) for c in columns
    }
    stmt = dialect_insert(backend)(table).values(values)
    replaced = {k: stmt.excluded[k] for k in columns if k not in ("id", "creation_utc")}
    result: Insert = stmt.on_conflict_do_update(index_elements=[table.c.id], set_=replaced)
    return result


DEFINITIONS_REVISION = select(revisions.c.value).where(revisions.c.name == "definitions")

# -- events -----------------------------------------------------------------------------------

_sessions = ENTITY_TABLES["sessions"]

# The UPDATE takes the row lock, so concurrent appends get distinct offsets.
BUMP_OFFSET: Update = (
    update(_sessions)
    .where(_sessions.c.id == bindparam("p_session_id"))
    .values(next_offset=_sessions.c.next_offset + bindparam("p_count", type_=Integer))
    .returning(_sessions.c.next_offset)
)

# Run with a list of rows (one per event).
INSERT_EVENT: Insert = insert(events)

GET_EVENT: Select[Any] = select(events).where(
    events.c.session_id == bindparam("p_session_id"), events.c.id == bindparam("p_id")
)

UPDATE_EVENT_DATA: Update = (
    update(events)
    .where(events.c.session_id == bindparam("p_session_id"), events.c.id == bindparam("p_id"))
    .values(data=bindparam("p_data", type_=events.c.data.type))
    .returning(*events.c)
)

# An event's metadata, read under the row's lock (PostgreSQL; SQLite's writer holds its lock)
# and written back: an annotation is one read-modify-write that no other one interleaves with.
EVENT_METADATA_FOR_UPDATE: Select[Any] = (
    select(events.c.metadata)
    .where(events.c.session_id == bindparam("p_session_id"), events.c.id == bindparam("p_id"))
    .with_for_update()
)

UPDATE_EVENT_METADATA: Update = (
    update(events)
    .where(events.c.session_id == bindparam("p_session_id"), events.c.id == bindparam("p_id"))
    .values(metadata=bindparam("p_metadata", type_=events.c.metadata.type))
    .returning(*events.c)
)


@cache
def list_events(*, limit: bool, kinds: bool, source: bool, trace_id: bool) -> Select[Any]:
    """The events of ``p_session_id`` from ``p_min_offset`` on, not deleted, and by the filters
    given: ``p_limit``, ``p_kinds`` (a list), ``p_source``, ``p_trace_id``."""
    query = (
        select(events)
        .where(
            events.c.session_id == bindparam("p_session_id"),
            events.c.offset >= bindparam("p_min_offset"),
            events.c.deleted.is_(False),
        )
        .order_by(events.c.offset)
    )
    if limit:
        query = query.limit(bindparam("p_limit", type_=Integer))
    if kinds:
        query = query.where(events.c.kind.in_(bindparam("p_kinds", expanding=True)))
    if source:
        query = query.where(events.c.source == bindparam("p_source"))
    if trace_id:
        query = query.where(events.c.trace_id == bindparam("p_trace_id"))
    return query


# -- rate limits and embeddings ---------------------------------------------------------------


@cache
def count_hit(backend: str) -> Insert:
    result: Insert = (
        dialect_insert(backend)(rate_limits)
        .values(bucket=bindparam("p_bucket"), window=bindparam("p_window"), count=1)
        .on_conflict_do_update(
            index_elements=[rate_limits.c.bucket, rate_limits.c.window],
            set_={"count": rate_limits.c.count + 1},
        )
        .returning(rate_limits.c.count)
    )
    return result


FORGET_WINDOWS: Delete = delete(rate_limits).where(
    rate_limits.c.window < bindparam("p_window", type_=Integer) - 1
)

LOAD_EMBEDDINGS: Select[Any] = select(embeddings.c.key, embeddings.c.vector).where(
    embeddings.c.model == bindparam("p_model"),
    embeddings.c.key.in_(bindparam("p_keys", expanding=True)),
)


@cache
def save_embeddings(backend: str) -> Insert:
    """Run with a list of rows; a key stored meanwhile (by another process) is kept."""
    result: Insert = dialect_insert(backend)(embeddings).on_conflict_do_nothing(
        index_elements=["key"]
    )
    return result


# -- turns ------------------------------------------------------------------------------------

CREATE_TURN: Insert = insert(turns)

_others = and_(turns.c.session_id == bindparam("p_session_id"), turns.c.id != bindparam("p_newer"))

SUPERSEDE_PENDING: Update = (
    update(turns)
    .where(_others, turns.c.status == PENDING)
    .values(status=TurnStatus.SUPERSEDED.value, owner=None, lease_expires=None)
    .returning(*turns.c)
)

CANCEL_RUNNING: Update = (
    update(turns)
    .where(_others, turns.c.status == RUNNING, turns.c.emitted.is_(False))
    .values(cancel_requested=True)
    .returning(*turns.c)
)


@cache
def claim_turn(*, stale: bool) -> Update:
    """Run turn ``p_id`` for ``p_owner`` until ``p_lease_expires``, if it is pending (or
    running on a lease expired before ``p_now``; any not ended, when ``stale``), not
    cancelled, and no other turn of its session runs."""
    expired = turns.c.lease_expires < bindparam("p_now", type_=turns.c.lease_expires.type)
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
            other.c.id != bindparam("p_id"),
        )
        .exists()
    )
    return (
        update(turns)
        .where(turns.c.id == bindparam("p_id"), taken, turns.c.cancel_requested.is_(False), ~busy)
        .values(
            status=RUNNING,
            owner=bindparam("p_owner", type_=turns.c.owner.type),
            lease_expires=bindparam("p_lease_expires", type_=turns.c.lease_expires.type),
            attempts=turns.c.attempts + 1,
        )
        .returning(*turns.c)
    )


_mine = and_(
    turns.c.id == bindparam("p_id"),
    turns.c.owner == bindparam("p_owner"),
    turns.c.status == RUNNING,
)

RENEW_TURN: Update = (
    update(turns)
    .where(_mine)
    .values(lease_expires=bindparam("p_lease_expires", type_=turns.c.lease_expires.type))
    .returning(*turns.c)
)

EMIT_TURN: Update = (
    update(turns)
    .where(_mine, turns.c.cancel_requested.is_(False), turns.c.emitted.is_(False))
    .values(emitted=True)
)

RELEASE_TURN: Update = (
    update(turns).where(_mine).values(status=PENDING, owner=None, lease_expires=None)
)


@cache
def finish_turn(*, owned: bool) -> Update:
    """End turn ``p_id`` (of ``p_owner`` when ``owned``) with ``p_status``, if not ended."""
    where = [turns.c.id == bindparam("p_id"), turns.c.status.in_([PENDING, RUNNING])]
    if owned:
        where.append(turns.c.owner == bindparam("p_owner"))
    return (
        update(turns)
        .where(*where)
        .values(
            status=bindparam("p_status", type_=turns.c.status.type), owner=None, lease_expires=None
        )
    )


GET_TURN: Select[Any] = select(turns).where(turns.c.id == bindparam("p_id"))

RUNNING_TURNS: Select[Any] = select(turns).where(turns.c.status == RUNNING)


@cache
def claimable_turns(*, posted_before: bool, session: bool) -> Select[Any]:
    """Turns to claim at ``p_now``, oldest first, at most ``p_limit``: pending (posted before
    ``p_posted_before`` or tried already, when given) or running on an expired lease; of
    ``p_session_id`` only, when ``session``."""
    now = bindparam("p_now", type_=turns.c.lease_expires.type)
    pending = turns.c.status == PENDING
    if posted_before:
        before = bindparam("p_posted_before", type_=turns.c.creation_utc.type)
        pending = and_(pending, or_(turns.c.attempts > 0, turns.c.creation_utc < before))
    query = (
        select(turns)
        .where(or_(pending, and_(turns.c.status == RUNNING, turns.c.lease_expires < now)))
        .order_by(turns.c.creation_utc, turns.c.customer_offset)
        .limit(bindparam("p_limit", type_=Integer))
    )
    if session:
        query = query.where(turns.c.session_id == bindparam("p_session_id"))
    return query
