"""The SQL store on SQLAlchemy 2 async Core: SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from alembic import command
from alembic.config import Config
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticSerializationError
from sqlalchemy import (
    Table,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable

from tactful.domain import (
    AuditAction,
    AuditEntry,
    Entity,
    Event,
    EventKind,
    EventSource,
    ModelUsage,
    Revision,
    Session,
    new_id,
    utcnow,
)
from tactful.domain.audit import current_actor, current_revision, revision
from tactful.domain.text import SURROGATE_ESCAPE, repaired_value, text_problem
from tactful.errors import (
    ConflictError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
)
from tactful.llm.base import Vectors
from tactful.store import statements
from tactful.store.base import E, Encoded, NewEvent, SessionFilter, Store
from tactful.store.schema import (
    AUDITED_COLLECTIONS,
    DEFINITION_COLLECTIONS,
    ENTITY_TABLES,
    INDEXED_COLUMNS,
    INT32_MAX,
    audit,
    definition_revisions,
    events,
    revisions,
    turns,
)
from tactful.store.sqlite_driver import InlineConnection, reading_connection, sqlite_engine
from tactful.store.sqlite_raw import RawExecutor, RawStatement


def _as_async_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


def dump_json(value: Any) -> str:
    """JSON for a ``data`` column; a lone surrogate (which no response could encode) is
    replaced by U+FFFD instead of being stored."""
    text = json.dumps(value)
    if SURROGATE_ESCAPE.search(text) is None:
        return text
    return json.dumps(repaired_value(value))


def load_json(text: str) -> Any:
    """A ``data`` column's value; a lone surrogate stored by an older version reads as U+FFFD.
    Only text holding a surrogate escape is walked, so the usual read pays one search."""
    value = json.loads(text)
    if SURROGATE_ESCAPE.search(text) is None:
        return value
    return repaired_value(value)


def _audit_entry(row: Any) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        creation_utc=_aware(row.creation_utc),
        actor=row.actor,
        action=AuditAction(row.action),
        kind=row.kind,
        entity_id=row.entity_id,
        data=row.data,
        revision=row.revision,
    )


def _storable(kind: str, column: str, value: str | None) -> None:
    # PostgreSQL refuses NUL in text and no driver encodes a lone surrogate: refuse them alike.
    if value is not None and (problem := text_problem(value)):
        raise ValidationError(f"the {kind}'s {column}: {problem}")


def _searchable(*values: str | None) -> bool:
    """Whether a row could hold these values (nothing stored holds NUL or a lone surrogate)."""
    return all(v is None or text_problem(v) is None for v in values)


def _document(kind: type[E], value: Any) -> E:
    """An entity from its ``data`` column: decoded already (through SQLAlchemy), or its JSON
    text (``RawExecutor.texts``), validated by pydantic's JSON parser straight from the text:
    the same entity as ``load_json`` then ``model_validate``, which it falls back to for text
    holding a surrogate escape (repaired by ``load_json``) or that the parser refuses."""
    if isinstance(value, str):
        if SURROGATE_ESCAPE.search(value) is None:
            try:
                return kind.model_validate_json(value)
            except PydanticValidationError:
                pass
        value = load_json(value)
    return kind.model_validate(value)


class AlchemyExecutor:
    """The store's statements through a SQLAlchemy connection (``RawExecutor``'s twin, for
    PostgreSQL and for an in-memory SQLite database)."""

    __slots__ = ("conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def all(
        self, stmt: Executable, params: Any, keys: Sequence[str] | None = None
    ) -> builtins.list[Any]:
        return list((await self.conn.execute(stmt, params)).all())

    async def first(
        self, stmt: Executable, params: Any, keys: Sequence[str] | None = None
    ) -> Any | None:
        return (await self.conn.execute(stmt, params)).first()

    async def texts(self, stmt: Executable, params: Any) -> builtins.list[Any]:
        return [r[0] for r in await self.conn.execute(stmt, params)]

    async def rowcount(
        self, stmt: Executable, params: Any, keys: Sequence[str] | None = None
    ) -> int:
        return int((await self.conn.execute(stmt, params)).rowcount)

    async def many(self, stmt: Executable, rows: Sequence[Any], keys: Sequence[str]) -> None:
        await self.conn.execute(stmt, list(rows))


Executor = AlchemyExecutor | RawExecutor


class SQLStore(Store):
    """One implementation for every SQL backend; the URL chooses it."""

    def __init__(
        self,
        url: str,
        *,
        pg_schema: str | None = None,
        pool_size: int = 10,
        max_overflow: int = 20,
    ) -> None:
        self.url = _as_async_url(url)
        # PostgreSQL: connections kept open, and how many more a burst may open.
        self.pool_size = pool_size
        self.max_overflow = max_overflow
        self.backend = "postgresql" if self.url.startswith("postgresql") else "sqlite"
        # A PostgreSQL schema to use instead of ``public`` (isolated tests, several tenants).
        self.pg_schema = pg_schema
        self.in_memory = self.backend == "sqlite" and (
            ":memory:" in self.url or self.url.rstrip("/").endswith("sqlite+aiosqlite:")
        )
        # In memory: a database of its own, named, held open for the store's life (see
        # ``_memory_database``), so that a replaced connection finds the same database.
        self._memory_keeper: sqlite3.Connection | None = None
        self._memory_name = ""
        self._engine: AsyncEngine = self._make_engine()
        # Writes on a SQLite file go through a connection of their own whose statements run
        # inline and whose commit is one trip to a thread (``store.sqlite_driver``), kept open.
        self._writer: AsyncEngine = self._engine
        if self.backend == "sqlite" and not self.in_memory:
            self._writer = self._sqlite_engine(self.url, inline=True)
        self._kept: AsyncConnection | None = None
        # SQLite allows one writer; serialising here avoids "database is locked" under load.
        self._sqlite_lock: asyncio.Lock | None = (
            asyncio.Lock() if self.backend == "sqlite" else None
        )
        self._current: ContextVar[AsyncConnection | None] = ContextVar(
            f"tactful_tx_{id(self)}", default=None
        )
        # SQLite: the frequent statements run on the sqlite3 connections (``_run``), compiled
        # once each; on a file, reads outside a transaction through a connection of their own.
        self._raw = self.backend == "sqlite"
        self._raw_statements: dict[tuple[Any, ...], tuple[Executable, RawStatement]] = {}
        self._reader: sqlite3.Connection | None = None

    def _make_engine(self) -> AsyncEngine:
        if self.backend == "postgresql":
            connect_args: dict[str, Any] = {}
            if self.pg_schema:
                connect_args["server_settings"] = {"search_path": self.pg_schema}
            return create_async_engine(
                self.url,
                pool_size=self.pool_size,
                max_overflow=self.max_overflow,
                connect_args=connect_args,
                json_serializer=dump_json,
                json_deserializer=load_json,
            )
        if self.in_memory:
            # One connection for reads and writes, its statements inline (no disk to wait for).
            return self._sqlite_engine(self._memory_database(), inline=True)
        # Reads inline too: in WAL mode they wait for no writer, and a read of a few rows from
        # the page cache takes microseconds, while a trip through aiosqlite's thread and back
        # costs each statement a wait for the event loop (several per turn, each far longer
        # when the embedder's thread keeps the other CPU busy).
        return self._sqlite_engine(self.url, inline=True)

    def _sqlite_engine(self, url: str, *, inline: bool) -> AsyncEngine:
        """An engine on the SQLite database at ``url``: through aiosqlite, or ``inline`` (the
        writing one: ``store.sqlite_driver``)."""
        memory = self._memory_name if self.in_memory else None
        json_args: dict[str, Any] = {"json_serializer": dump_json, "json_deserializer": load_json}
        return sqlite_engine(url, memory=memory, inline=inline, **json_args)

    # -- plumbing -------------------------------------------------------------------------------

    @asynccontextmanager
    async def _tx(self, *, read_only: bool = False) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back when it raises.

        Inside ``transaction()`` every call joins the open transaction instead. A read-only one
        on a SQLite file does not wait for the writers' lock: WAL lets readers run beside the
        one writer (an in-memory database has a single connection, so it waits like a write).
        """
        joined = self._current.get()
        if joined is not None:
            yield joined
            return
        async with contextlib.AsyncExitStack() as stack:
            lock = None if read_only and not self.in_memory else self._sqlite_lock
            if lock is not None:
                await stack.enter_async_context(lock)
            try:
                if lock is not None and not self.in_memory:
                    conn = await stack.enter_async_context(self._kept_transaction())
                else:
                    conn = await stack.enter_async_context(self._engine.begin())
            except (DBAPIError, PoolTimeout, OSError) as e:
                # No connection to be had: the database is down, cut off or out of connections.
                reason = e.orig if isinstance(e, DBAPIError) else e
                raise StoreUnavailableError(f"the database is unavailable: {reason}") from e
            # Definition changes of this transaction form one revision, unless the task began
            # a wider one (``tactful.domain.audit.revision``).
            scope = current_revision()
            if scope is None:
                scope = stack.enter_context(revision())
            token = self._current.set(conn)
            try:
                yield conn
            except DBAPIError as e:
                if not e.connection_invalidated:
                    raise
                # The connection broke mid-transaction: nothing of it was committed.
                raise StoreUnavailableError(f"the database connection was lost: {e.orig}") from e
            except BaseException:
                if scope.created_by is conn:
                    # The revision row rolls back with the transaction that wrote it.
                    scope.id = scope.created_by = None
                raise
            finally:
                self._current.reset(token)

    @asynccontextmanager
    async def _kept_transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction on a SQLite file's writing connection, kept open between transactions
        (the caller holds the writers' lock): checking a connection out and closing it would
        cost a trip through the event loop each, with the lock held. (In memory, the one
        connection is shared with the reads, which may replace it.)"""
        if self._kept is None:
            self._kept = await self._writer.connect()
        conn = self._kept
        try:
            async with conn.begin():
                yield conn
        except BaseException:
            if conn.invalidated or conn.in_transaction():
                # Broken, or not rolled back: the next transaction opens a new connection.
                self._kept = None
                with contextlib.suppress(Exception):
                    await conn.close()
            raise

    def transaction(
        self, *, read_only: bool = False
    ) -> contextlib.AbstractAsyncContextManager[object]:
        if read_only and self._raw and not self.in_memory and self._current.get() is None:
            # On a SQLite file a read-only transaction is no snapshot: SQLite's driver opens no
            # transaction for a SELECT, so each read sees the newest commit, inside one or not.
            # Its reads run each on its own (the frequent ones on the reading connection)
            # instead of holding a pooled connection across the awaits between them.
            return contextlib.nullcontext()
        return self._tx(read_only=read_only)

    @asynccontextmanager
    async def _run(self, *, read_only: bool = False) -> AsyncIterator[Executor]:
        """What runs the store's frequent statements, in a transaction as ``_tx`` opens one.

        On SQLite they run straight on the sqlite3 connection (``store.sqlite_raw``): the open
        transaction's, inside ``transaction()``; on a file, a read outside one on the reading
        connection (a SELECT is its own read transaction), and a write on the kept writing
        connection, with the writers' lock held, committed in a thread, rolled back when the
        block raises. Elsewhere (PostgreSQL; a write or read outside a transaction in memory,
        where one connection serves both) through SQLAlchemy, in ``_tx``."""
        if self._raw:
            joined = self._current.get()
            if joined is not None:
                yield RawExecutor(_sqlite_connection(joined), self._compiled)
                return
            if not self.in_memory:
                if read_only:
                    yield RawExecutor(self._reading(), self._compiled)
                    return
                async with self._raw_write() as conn:
                    yield RawExecutor(conn, self._compiled)
                return
        async with self._tx(read_only=read_only) as conn:
            yield AlchemyExecutor(conn)

    @asynccontextmanager
    async def _raw_write(self) -> AsyncIterator[sqlite3.Connection]:
        """A write transaction on a SQLite file's kept writing connection, as
        ``_kept_transaction`` opens one, without SQLAlchemy's connection in the way."""
        assert self._sqlite_lock is not None
        async with self._sqlite_lock:
            try:
                if self._kept is None:
                    self._kept = await self._writer.connect()
                inline = _inline(self._kept)
            except (DBAPIError, OSError) as e:
                reason = e.orig if isinstance(e, DBAPIError) else e
                raise StoreUnavailableError(f"the database is unavailable: {reason}") from e
            conn = inline.raw
            try:
                yield conn
                await inline.commit()
            except BaseException:
                try:
                    if conn.in_transaction:
                        conn.rollback()
                except Exception:
                    # Not rolled back: the next transaction opens a new connection.
                    kept, self._kept = self._kept, None
                    if kept is not None:
                        with contextlib.suppress(Exception):
                            await kept.close()
                raise

    def _reading(self) -> sqlite3.Connection:
        """The connection that reads a SQLite file outside transactions, opened once."""
        if self._reader is None:
            try:
                self._reader = reading_connection(make_url(self.url).database or "")
            except sqlite3.Error as e:
                raise StoreUnavailableError(f"the database is unavailable: {e}") from e
        return self._reader

    def _compiled(
        self,
        stmt: Executable,
        *,
        column_keys: tuple[str, ...] | None = None,
        text_columns: tuple[str, ...] = (),
    ) -> RawStatement:
        """``stmt`` compiled for the raw path, once (statements are built once: ``statements``)."""
        key = (id(stmt), column_keys, text_columns)
        found = self._raw_statements.get(key)
        if found is None:
            raw = RawStatement(
                stmt, self._engine.dialect, column_keys=column_keys, text_columns=text_columns
            )
            # The statement is kept with it: its id is not reused while the entry lives.
            found = self._raw_statements[key] = (stmt, raw)
        return found[1]

    async def migrate(self) -> None:
        def run(sync_conn: Connection) -> None:
            cfg = Config()
            location = resources.files("tactful.store") / "migrations"
            cfg.set_main_option("script_location", str(location))
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "head")

        try:
            async with self._tx() as conn:
                await conn.run_sync(run)
        except StoreUnavailableError as e:
            cause = e.__cause__
            reason = cause.orig if isinstance(cause, DBAPIError) else cause
            raise StoreError(f"cannot open the database at {self._safe_url()}: {reason}") from e
        except OperationalError as e:
            raise StoreError(f"cannot open the database at {self._safe_url()}: {e.orig}") from e
        except OSError as e:
            raise StoreError(f"cannot open the database at {self._safe_url()}: {e}") from e

    def sync_engines(self) -> builtins.list[Engine]:
        """The engines this store runs statements through (for SQLAlchemy event listeners)."""
        return list({id(e): e.sync_engine for e in (self._engine, self._writer)}.values())

    def _safe_url(self) -> str:
        return self._engine.url.render_as_string(hide_password=True)

    def _memory_database(self) -> str:
        """A URL to an in-memory database of this store's own, kept while the store is open.

        SQLAlchemy replaces a connection whose query was cancelled (a superseded turn, a client
        that hung up); on a plain ``:memory:`` URL the replacement would open a new, empty
        database. A named shared-cache database lives while any connection to it is open: the
        keeper, a plain sqlite3 connection that is never used, holds it until ``close``."""
        name = self._memory_name = f"file:tactful-{secrets.token_hex(8)}?mode=memory&cache=shared"
        self._memory_keeper = sqlite3.connect(name, uri=True, check_same_thread=False)
        return f"sqlite+aiosqlite:///{name}&uri=true"

    async def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()
        if self._kept is not None:
            kept, self._kept = self._kept, None
            await kept.close()
        await self._engine.dispose()
        if self._writer is not self._engine:
            await self._writer.dispose()
        if self._memory_keeper is not None:
            self._memory_keeper.close()
            self._memory_keeper = None

    @staticmethod
    def _table(kind: type[Entity]) -> Table:
        try:
            return ENTITY_TABLES[kind.collection]
        except KeyError:
            raise TypeError(f"{kind.__name__} is not a stored entity") from None

    @staticmethod
    def _row(entity: Entity, key: str | None, *, data: Any = None) -> dict[str, Any]:
        kind = type(entity).__name__
        _storable(kind, "id", entity.id)
        _storable(kind, "key", key)
        row: dict[str, Any] = {
            "id": entity.id,
            "natural_key": key,
            "creation_utc": entity.creation_utc,
            "updated_utc": utcnow(),
            "data": entity.model_dump(mode="json") if data is None else data,
        }
        for col in INDEXED_COLUMNS[entity.collection]:
            row[col] = getattr(entity, col)
            _storable(kind, col, row[col])
        return row

    def _insert(self) -> Any:
        return statements.dialect_insert(self.backend)

    async def _changed(
        self,
        conn: AsyncConnection,
        collection: str,
        action: AuditAction,
        entity_id: str,
        data: dict[str, Any] | None,
    ) -> None:
        """Count a definition change and record it in the audit trail, in the transaction
        that makes it."""
        if collection in DEFINITION_COLLECTIONS:
            await conn.execute(
                self._insert()(revisions)
                .values(name="definitions", value=1)
                .on_conflict_do_update(
                    index_elements=[revisions.c.name], set_={"value": revisions.c.value + 1}
                )
            )
        if collection in AUDITED_COLLECTIONS:
            revision_id = None
            if collection in DEFINITION_COLLECTIONS:
                revision_id = await self._revision(conn)
            await conn.execute(
                insert(audit).values(
                    creation_utc=utcnow(),
                    actor=current_actor()[:256],
                    action=action.value,
                    kind=collection,
                    entity_id=entity_id,
                    data=data,
                    revision=revision_id,
                )
            )

    async def _revision(self, conn: AsyncConnection) -> int:
        """The id of the revision this change joins, created with its first change."""
        scope = current_revision()
        if scope is None:  # pragma: no cover - _tx always opens one
            raise RuntimeError("a definition change outside a transaction")
        if scope.id is None:
            created = await conn.execute(
                insert(definition_revisions)
                .values(
                    creation_utc=utcnow(),
                    actor=current_actor()[:256],
                    summary=(scope.summary or "")[:500] or None,
                )
                .returning(definition_revisions.c.id)
            )
            scope.id, scope.created_by = int(created.scalar_one()), conn
        return scope.id

    async def definitions_revision(self) -> int:
        async with self._run(read_only=True) as ex:
            row = await ex.first(statements.DEFINITIONS_REVISION, {})
        return int(row[0] or 0) if row is not None else 0

    # -- entities -------------------------------------------------------------------------------

    async def create(self, entity: E, *, key: str | None = None) -> E:
        table = self._table(type(entity))
        try:
            async with self._tx() as conn:
                await conn.execute(insert(table).values(**self._row(entity, key)))
                await self._changed(
                    conn, entity.collection, AuditAction.CREATED, entity.id, entity.audit_view()
                )
        except IntegrityError as e:
            what = f"key {key!r}" if key else f"id {entity.id!r}"
            raise ConflictError(f"a {type(entity).__name__} with {what} already exists") from e
        return entity

    async def upsert(self, entity: E, *, key: str | None = None) -> tuple[E, bool]:
        table = self._table(type(entity))
        self._row(entity, key)  # refuses bad text before it reaches a query
        async with self._tx() as conn:
            where = table.c.natural_key == key if key is not None else table.c.id == entity.id
            existing = (
                await conn.execute(
                    select(
                        table.c.id, table.c.creation_utc, table.c.natural_key, table.c.data
                    ).where(where)
                )
            ).first()
            if existing is None:
                await conn.execute(insert(table).values(**self._row(entity, key)))
                await self._changed(
                    conn, entity.collection, AuditAction.CREATED, entity.id, entity.audit_view()
                )
                return entity, True
            stored = entity.model_copy(update={"id": existing.id})
            stored.creation_utc = _aware(existing.creation_utc)
            row = self._row(stored, key)
            if row["data"] == existing.data and key == existing.natural_key:
                # Defined again as it was (a restart): nothing to write, nothing changed.
                return stored, False
            del row["creation_utc"]
            await conn.execute(update(table).where(table.c.id == existing.id).values(**row))
            await self._changed(
                conn, entity.collection, AuditAction.UPDATED, stored.id, stored.audit_view()
            )
            return stored, False

    def encode(self, entity: E) -> Encoded[E]:
        if entity.collection in AUDITED_COLLECTIONS | DEFINITION_COLLECTIONS:
            raise TypeError(f"a {type(entity).__name__} is written with create/upsert/update")
        try:
            # pydantic's own encoder: several times faster than dumping to Python first.
            document = entity.model_dump_json()
        except PydanticSerializationError:
            document = dump_json(entity.model_dump(mode="json"))  # a lone surrogate
        return Encoded(entity, document)

    async def put(self, entity: E | Encoded[E]) -> E:
        encoded = entity if isinstance(entity, Encoded) else self.encode(entity)
        record = encoded.entity
        self._table(type(record))
        row = self._row(record, None, data=encoded.document)
        # Replaced from the row being inserted: the document is sent once.
        upsert = statements.put_entity(self.backend, record.collection)
        async with self._run() as ex:
            await ex.rowcount(upsert, row)
        return record

    async def update(self, entity: E) -> E:
        table = self._table(type(entity))
        row = self._row(entity, None)
        del row["natural_key"], row["creation_utc"]
        async with self._tx() as conn:
            result = await conn.execute(update(table).where(table.c.id == entity.id).values(**row))
            if result.rowcount == 0:
                raise NotFoundError(type(entity).__name__, entity.id)
            await self._changed(
                conn, entity.collection, AuditAction.UPDATED, entity.id, entity.audit_view()
            )
        return entity

    async def find(self, kind: type[E], id: str) -> E | None:
        self._table(kind)
        if not _searchable(id):
            return None
        query = statements.find_entity(kind.collection)
        async with self._run(read_only=True) as ex:
            found = await ex.texts(query, {"p_id": id})
        return _document(kind, found[0]) if found else None

    async def get(self, kind: type[E], id: str) -> E:
        found = await self.find(kind, id)
        if found is None:
            raise NotFoundError(kind.__name__, id)
        return found

    async def get_by_key(self, kind: type[E], key: str) -> E | None:
        self._table(kind)
        if not _searchable(key):
            return None
        query = statements.entity_by_key(kind.collection)
        async with self._run(read_only=True) as ex:
            found = await ex.texts(query, {"p_key": key})
        return _document(kind, found[0]) if found else None

    async def list(self, kind: type[E], **where: str) -> builtins.list[E]:
        self._table(kind)
        unknown = set(where) - set(INDEXED_COLUMNS[kind.collection])
        if unknown:
            raise TypeError(f"cannot filter {kind.__name__} by {sorted(unknown)}")
        if not _searchable(*where.values()):
            return []
        query = statements.list_entities(kind.collection, tuple(sorted(where)))
        params = {f"p_{k}": v for k, v in where.items()}
        async with self._run(read_only=True) as ex:
            found = await ex.texts(query, params)
        return [_document(kind, d) for d in found]

    async def find_sessions(self, where: SessionFilter) -> builtins.list[Session]:
        if not _searchable(where.agent_id, where.customer_id, where.assignee_id, *where.labels):
            return []
        query = statements.find_sessions(where, self.backend)
        async with self._tx(read_only=True) as conn:
            rows = (await conn.execute(query)).all()
        return [_document(Session, r.data) for r in rows]

    async def list_keyed(self, kind: type[E]) -> builtins.list[tuple[str | None, E]]:
        table = self._table(kind)
        query = select(table.c.natural_key, table.c.data).order_by(table.c.creation_utc)
        async with self._tx(read_only=True) as conn:
            rows = (await conn.execute(query)).all()
        return [(r.natural_key, kind.model_validate(r.data)) for r in rows]

    async def add_session_labels(
        self, session_id: str, labels: Sequence[str]
    ) -> builtins.list[str]:
        if not _searchable(session_id):
            raise NotFoundError("Session", session_id)
        async with self._tx() as conn:
            sessions = ENTITY_TABLES["sessions"]
            # The row's lock first (PostgreSQL; SQLite's writer holds its own): no other
            # writer of the session changes it between this read and the write.
            data = (
                await conn.execute(
                    select(sessions.c.data).where(sessions.c.id == session_id).with_for_update()
                )
            ).scalar_one_or_none()
            if data is None:
                raise NotFoundError("Session", session_id)
            session = _document(Session, data)
            added = [label for label in dict.fromkeys(labels) if label not in session.labels]
            if added:
                session.labels = [*session.labels, *added]
                await self.update(session)
        return added

    async def delete(self, kind: type[E], id: str) -> bool:
        table = self._table(kind)
        if not _searchable(id):
            return False
        async with self._tx() as conn:
            if kind is Session:
                traces = ENTITY_TABLES["traces"]
                await conn.execute(delete(events).where(events.c.session_id == id))
                await conn.execute(delete(traces).where(traces.c.session_id == id))
                progress = ENTITY_TABLES["journey_progress"]
                await conn.execute(delete(progress).where(progress.c.id == id))
                await conn.execute(delete(turns).where(turns.c.session_id == id))
                # A flag names one of the session's messages: without them it points at nothing.
                flags = ENTITY_TABLES["flags"]
                await conn.execute(delete(flags).where(flags.c.session_id == id))
            result = await conn.execute(delete(table).where(table.c.id == id))
            if result.rowcount:
                await self._changed(conn, kind.collection, AuditAction.DELETED, id, None)
        return bool(result.rowcount)

    # -- events ---------------------------------------------------------------------------------

    async def append_events(self, session_id: str, new: Sequence[NewEvent]) -> builtins.list[Event]:
        if not _searchable(session_id):
            raise NotFoundError("Session", session_id)
        for n in new:
            _storable("Event", "trace_id", n.trace_id)
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
            creation_utc=_aware(row.creation_utc),
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
        if min_offset > INT32_MAX or not _searchable(session_id, trace_id):
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
        if not _searchable(session_id, event_id):
            raise NotFoundError("Event", event_id)
        params = {"p_session_id": session_id, "p_id": event_id}
        async with self._run(read_only=True) as ex:
            row = await ex.first(statements.GET_EVENT, params)
        if row is None:
            raise NotFoundError("Event", event_id)
        return self._event(row)

    async def update_event_data(self, session_id: str, event_id: str, data: Any) -> Event:
        if not _searchable(session_id, event_id):
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
        if not _searchable(session_id, event_id):
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
        if min_offset > INT32_MAX or not _searchable(session_id):
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
        if not _searchable(session_id):
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

    # -- audit trail ----------------------------------------------------------------------------

    async def list_audit(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        kind: str | None = None,
        entity_id: str | None = None,
    ) -> builtins.list[AuditEntry]:
        query = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(audit.c.id < before)
        if kind is not None:
            query = query.where(audit.c.kind == kind)
        if entity_id is not None:
            query = query.where(audit.c.entity_id == entity_id)
        async with self._tx(read_only=True) as conn:
            rows = (await conn.execute(query)).all()
        return [_audit_entry(r) for r in rows]

    async def list_revisions(
        self, *, limit: int = 100, before: int | None = None
    ) -> builtins.list[Revision]:
        table = definition_revisions
        query = select(table).order_by(table.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(table.c.id < before)
        async with self._tx(read_only=True) as conn:
            rows = (await conn.execute(query)).all()
        return [
            Revision(id=r.id, creation_utc=_aware(r.creation_utc), actor=r.actor, summary=r.summary)
            for r in rows
        ]

    async def definition_changes(
        self, *, until: int | None = None, revisions: Sequence[int] | None = None
    ) -> builtins.list[AuditEntry]:
        query = (
            select(audit)
            .where(audit.c.kind.in_(sorted(DEFINITION_COLLECTIONS)))
            .order_by(audit.c.id)
        )
        if until is not None:
            # Changes recorded before revisions existed (NULL) came before every revision.
            query = query.where(or_(audit.c.revision <= until, audit.c.revision.is_(None)))
        if revisions is not None:
            query = query.where(audit.c.revision.in_(list(revisions)))
        async with self._tx(read_only=True) as conn:
            rows = (await conn.execute(query)).all()
        return [_audit_entry(r) for r in rows]

    # -- rate limits ----------------------------------------------------------------------------

    async def count_hit(self, bucket: str, window: int) -> int:
        upsert = statements.count_hit(self.backend)
        async with self._run() as ex:
            hit = {"p_bucket": bucket, "p_window": window}
            row = await ex.first(upsert, hit)
            assert row is not None
            count = int(row[0])
            if count == 1:
                # The first hit of a window: forget the windows before the previous one.
                await ex.rowcount(statements.FORGET_WINDOWS, {"p_window": window})
        return count

    # -- embeddings cache -----------------------------------------------------------------------

    async def load_embeddings(self, model: str, keys: Sequence[str]) -> dict[str, Vectors]:
        if not keys:
            return {}
        found: dict[str, Vectors] = {}
        async with self._run(read_only=True) as ex:
            for chunk in _chunks(list(keys), 500):
                params = {"p_model": model, "p_keys": chunk}
                rows = await ex.all(statements.LOAD_EMBEDDINGS, params)
                for r in rows:
                    found[r.key] = np.frombuffer(r.vector, dtype=np.float32).copy()
        return found

    async def save_embeddings(self, model: str, vectors: dict[str, Vectors]) -> None:
        if not vectors:
            return
        now = utcnow()
        rows = [
            {
                "key": k,
                "model": model,
                "dimensions": int(v.shape[-1]),
                "vector": np.asarray(v, dtype=np.float32).tobytes(),
                "creation_utc": now,
            }
            for k, v in vectors.items()
        ]
        upsert = statements.save_embeddings(self.backend)
        async with self._run() as ex:
            # Another process (or task) may have stored the same content meanwhile: keep it.
            for start in range(0, len(rows), 500):
                await ex.many(upsert, rows[start : start + 500], _EMBEDDING_COLUMNS)


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
_EMBEDDING_COLUMNS = ("key", "model", "dimensions", "vector", "creation_utc")


def _inline(conn: AsyncConnection) -> InlineConnection:
    """The inline driver connection under a SQLite ``AsyncConnection`` (``sqlite_driver``)."""
    inline = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
    assert isinstance(inline, InlineConnection), inline
    return inline


def _sqlite_connection(conn: AsyncConnection) -> sqlite3.Connection:
    return _inline(conn).raw


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes; everything we store is UTC.
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


def sqlite_url(path: Path | None) -> str:
    """The URL of the embedded default: a file, or memory when ``path`` is None."""
    return "sqlite+aiosqlite:///:memory:" if path is None else f"sqlite+aiosqlite:///{path}"


async def open_store(
    url: str, *, pg_schema: str | None = None, pool_size: int = 10, max_overflow: int = 20
) -> SQLStore:
    """Open and migrate the store at ``url`` (``pool_size`` and ``max_overflow``: PostgreSQL's
    connection pool)."""
    store = SQLStore(url, pg_schema=pg_schema, pool_size=pool_size, max_overflow=max_overflow)
    try:
        await store.migrate()
    except BaseException:
        await store.close()
        raise
    return store
