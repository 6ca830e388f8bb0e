"""The store's frequent statements run straight on a SQLite connection (issue 18).

Each prebuilt statement (``store.statements``) is compiled once, by SQLAlchemy, for the store's
SQLite dialect: its SQL, the order of its parameters, and the type processors SQLAlchemy would
apply to them and to the columns it reads (datetimes as text, JSON through the store's
serialiser, booleans as integers). A call then binds the values in order and runs the SQL on the
sqlite3 connection: the same SQL, the same values bound and the same values read as through
SQLAlchemy, without its per-statement work (a connection object, greenlet switches, the compiled
cache's lookup, the execution context, the result's metadata), which costs a few hundred µs a
statement on the embedded database where SQLite itself takes tens.

``RawExecutor`` and ``AlchemyExecutor`` (store.sql) run the same statements; the store picks the
first on SQLite and the second on PostgreSQL (and on SQLite for statements not listed here).
"""

from __future__ import annotations

import re
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement, Executable, Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase

_POSTCOMPILE = re.compile(r"__\[POSTCOMPILE_(\w+)\]")

Processor = Callable[[Any], Any] | None


class RawStatement:
    """One statement compiled for a SQLite dialect: SQL, parameters in order, processors."""

    __slots__ = ("_binds", "_columns", "_expanding", "_plain", "_row", "sql")

    def __init__(
        self,
        stmt: Executable,
        dialect: Dialect,
        *,
        column_keys: Sequence[str] | None = None,
        text_columns: Iterable[str] = (),
    ) -> None:
        assert isinstance(stmt, ClauseElement), stmt
        compiled = stmt.compile(
            dialect=dialect, column_keys=list(column_keys) if column_keys is not None else None
        )
        assert isinstance(compiled, SQLCompiler), compiled
        sql = compiled.string
        names = list(compiled.positiontup or [])
        binds: list[tuple[str, Processor, Any, bool]] = []
        expanding: dict[str, int] = {}
        for name in names:
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            default = bind.effective_value if not bind.required else _REQUIRED
            if bind.expanding:
                if default is _REQUIRED:
                    # A list given at each call: its placeholders are written then.
                    expanding[name] = len(binds)
                else:
                    # A list fixed in the statement (``status IN ('pending', 'running')``).
                    values = list(cast(Iterable[Any], default))
                    marks = ", ".join("?" * len(values))
                    sql = sql.replace(f"__[POSTCOMPILE_{name}]", marks)
                    binds += [(name, processor, v, False) for v in values]
                    continue
            binds.append((name, processor, default, bind.required))
        self.sql = sql
        self._binds = tuple(binds)
        self._expanding = expanding
        columns: list[tuple[str, Processor]] = []
        keep = set(text_columns)
        selected: Iterable[Any] = (
            stmt.selected_columns
            if isinstance(stmt, Select)
            else stmt.exported_columns
            if isinstance(stmt, UpdateBase)
            else ()
        )
        for column in selected:
            key = str(column.key)
            if key in keep:
                columns.append((key, None))
                continue
            impl: Any = column.type.dialect_impl(dialect)
            columns.append((key, impl.result_processor(dialect, None)))
        self._columns = tuple(p for _, p in columns)
        self._plain = all(p is None for p in self._columns)
        fields = [k for k, _ in columns]
        self._row: Any = namedtuple("RawRow", fields) if fields else None

    def bound(self, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """The SQL and its values, in order, processed as SQLAlchemy binds them."""
        values: list[Any] = []
        sql = self.sql
        for name, processor, default, required in self._binds:
            if name in self._expanding:
                items = list(params[name])
                mark = f"__[POSTCOMPILE_{name}]"
                sql = sql.replace(mark, ", ".join("?" * len(items)) or "NULL", 1)
                values += [processor(v) if processor else v for v in items]
                continue
            value = params[name] if required or name in params else default
            values.append(processor(value) if processor is not None else value)
        return sql, values

    def rows(self, raw: list[tuple[Any, ...]]) -> list[Any]:
        """Rows read, as named tuples of processed values."""
        make = self._row._make
        if self._plain:
            return [make(r) for r in raw]
        processors = self._columns
        return [make([p(v) if p else v for p, v in zip(processors, r, strict=True)]) for r in raw]


_REQUIRED = object()


def translated(e: sqlite3.Error, sql: str, values: Any) -> DBAPIError:
    """The SQLAlchemy exception that SQLAlchemy would raise for ``e`` (``IntegrityError``,
    ``OperationalError``...), so that callers catch the same ones on every path."""
    wrapped = DBAPIError.instance(sql, values, e, sqlite3.Error)
    assert isinstance(wrapped, DBAPIError)
    return wrapped


class RawExecutor:
    """Statements on one sqlite3 connection, inline (the caller holds what the transaction
    needs: the writers' lock for writes)."""

    __slots__ = ("_compiled", "conn")

    def __init__(self, conn: sqlite3.Connection, compiled: Callable[..., RawStatement]) -> None:
        self.conn = conn
        self._compiled = compiled

    def _run(self, raw: RawStatement, params: Mapping[str, Any]) -> sqlite3.Cursor:
        sql, values = raw.bound(params)
        try:
            return self.conn.execute(sql, values)
        except sqlite3.Error as e:
            raise translated(e, sql, values) from e

    async def all(
        self, stmt: Executable, params: Mapping[str, Any], keys: Sequence[str] | None = None
    ) -> list[Any]:
        """The rows read (or returned), as named tuples; ``keys``: the columns an INSERT
        without values sets."""
        raw = self._compiled(stmt, column_keys=tuple(keys) if keys is not None else None)
        cursor = self._run(raw, params)
        try:
            fetched = cursor.fetchall()
        except sqlite3.Error as e:
            raise translated(e, raw.sql, None) from e
        finally:
            cursor.close()
        return raw.rows(fetched)

    async def first(
        self, stmt: Executable, params: Mapping[str, Any], keys: Sequence[str] | None = None
    ) -> Any | None:
        found = await self.all(stmt, params, keys)
        return found[0] if found else None

    async def texts(self, stmt: Executable, params: Mapping[str, Any]) -> list[Any]:
        """The first column of each row as stored (a ``data`` column's JSON text)."""
        raw = self._compiled(stmt, text_columns=("data",))
        cursor = self._run(raw, params)
        try:
            return [r[0] for r in cursor.fetchall()]
        except sqlite3.Error as e:
            raise translated(e, raw.sql, None) from e
        finally:
            cursor.close()

    async def rowcount(
        self, stmt: Executable, params: Mapping[str, Any], keys: Sequence[str] | None = None
    ) -> int:
        """Run a statement that returns no rows; how many rows it changed."""
        raw = self._compiled(stmt, column_keys=tuple(keys) if keys is not None else None)
        cursor = self._run(raw, params)
        count = cursor.rowcount
        cursor.close()
        return count

    async def many(
        self, stmt: Executable, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
    ) -> None:
        """Run an INSERT setting ``keys`` once per row."""
        raw = self._compiled(stmt, column_keys=tuple(keys))
        bound = [raw.bound(r)[1] for r in rows]
        try:
            self.conn.executemany(raw.sql, bound)
        except sqlite3.Error as e:
            raise translated(e, raw.sql, bound) from e
