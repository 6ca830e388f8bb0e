"""The SQL store's connections: engines for SQLite (aiosqlite, and the raw sqlite3 path of
``store.sqlite_raw``) and PostgreSQL (asyncpg) on SQLAlchemy 2 async Core, transactions, migrations,
and what the other parts share (JSON encoding, document checks). ``store.sql_events`` adds the
sessions' timelines, ``store.sql`` the entities and the rest: ``SQLStore``."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import secrets
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable

from tactful.domain.audit import current_revision, revision
from tactful.domain.text import SURROGATE_ESCAPE, repaired_value, text_problem
from tactful.errors import (
    StoreError,
    StoreUnavailableError,
    ValidationError,
)
from tactful.store.base import E, Store
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


def check_storable(kind: str, column: str, value: str | None) -> None:
    # PostgreSQL refuses NUL in text and no driver encodes a lone surrogate: refuse them alike.
    if value is not None and (problem := text_problem(value)):
        raise ValidationError(f"the {kind}'s {column}: {problem}")


def searchable(*values: str | None) -> bool:
    """Whether a row could hold these values (nothing stored holds NUL or a lone surrogate)."""
    return all(v is None or text_problem(v) is None for v in values)


def as_document(kind: type[E], value: Any) -> E:
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


def aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes; everything we store is UTC.
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _inline(conn: AsyncConnection) -> InlineConnection:
    """The inline driver connection under a SQLite ``AsyncConnection`` (``sqlite_driver``)."""
    inline = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
    assert isinstance(inline, InlineConnection), inline
    return inline


def _sqlite_connection(conn: AsyncConnection) -> sqlite3.Connection:
    return _inline(conn).raw


class SQLConnections(Store):
    """Engines, connections and transactions for every SQL backend; the URL chooses it."""

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
