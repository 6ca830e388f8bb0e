"""The embedded SQLite database's engines, and its writing connection: statements run inline, the
commit in a thread.

aiosqlite runs every call (a cursor, each statement, its rows, closing the cursor, the commit)
on a thread of its own and waits for the event loop to hand the result back: a transaction of
three statements makes a dozen round trips through the loop, each as long as the loop is busy,
and holds SQLite's one writer lock all along (issue 18). A statement on the embedded database
takes microseconds, so here each one runs where it is called; only the commit, which waits for
the disk (``synchronous=FULL``), goes to a thread: one round trip per transaction.

The connection poses as an aiosqlite one to SQLAlchemy's aiosqlite dialect (its exceptions are
sqlite3's), created through ``create_async_engine(..., async_creator=...)``. Writes on it are
serialised by the store's lock, so no two calls ever use it at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool


class InlineCursor:
    """A sqlite3 cursor behind aiosqlite's awaitable interface, run inline."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> InlineCursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class InlineConnection:
    """A sqlite3 connection behind aiosqlite's interface: statements inline, the commit in a
    thread when it waits for the disk."""

    def __init__(self, conn: sqlite3.Connection, *, commit_in_thread: bool) -> None:
        # The names SQLAlchemy's dialect reads on an aiosqlite connection.
        self._conn = self._connection = conn
        self._commit_in_thread = commit_in_thread

    @property
    def raw(self) -> sqlite3.Connection:
        """The sqlite3 connection (``store.sqlite_raw`` runs statements on it directly)."""
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def commit(self) -> None:
        if not self._commit_in_thread or not self._conn.in_transaction:
            self._conn.commit()
            return
        done = asyncio.get_running_loop().run_in_executor(None, self._conn.commit)
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            # The commit goes on in its thread: the connection is not used again before it
            # ends, and whoever cancelled learns of it then.
            await done
            raise

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()

    def stop(self) -> None:
        self._conn.close()


def inline_creator(
    database: str, *, uri: bool = False, commit_in_thread: bool = True
) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine``: connections to ``database``."""

    async def connect() -> InlineConnection:
        conn = sqlite3.connect(database, uri=uri, check_same_thread=False)
        return InlineConnection(conn, commit_in_thread=commit_in_thread)

    return connect


def sqlite_engine(url: str, *, memory: str | None, inline: bool, **options: Any) -> AsyncEngine:
    """An engine on the SQLite database at ``url`` (``memory``: the name of an in-memory one,
    whose one connection is shared), through aiosqlite or ``inline``."""
    if memory is not None:
        options.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    if inline:
        database = memory if memory is not None else make_url(url).database or ""
        options["async_creator"] = inline_creator(
            database, uri=memory is not None, commit_in_thread=memory is None
        )
    engine = create_async_engine(url, **options)

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        for pragma in PRAGMAS[1 if memory is not None else 0 :]:
            cur.execute(pragma)
        cur.close()

    return engine


# Run on every connection (the first one on a file only).
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # FULL: an acknowledged commit survives a crash or power loss.
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
)


def reading_connection(database: str) -> sqlite3.Connection:
    """A plain sqlite3 connection to the database file, for reads run inline (each statement
    its own read transaction: the module begins none for a SELECT)."""
    conn = sqlite3.connect(database, check_same_thread=False)
    try:
        for pragma in PRAGMAS:
            conn.execute(pragma).close()
    except BaseException:
        conn.close()
        raise
    return conn
