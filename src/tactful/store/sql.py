"""The SQL store on SQLAlchemy 2 async Core: SQLite (aiosqlite) and PostgreSQL (asyncpg).

``SQLStore`` is built in three layers: its connections and transactions
(``store.sql_connection``), the sessions' timelines (``store.sql_events``), and here the
entities, the audit trail, rate limits and the embeddings cache."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic_core import PydanticSerializationError
from sqlalchemy import (
    Table,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tactful.domain import (
    AuditAction,
    AuditEntry,
    Entity,
    Revision,
    Session,
    utcnow,
)
from tactful.domain.audit import current_actor, current_revision
from tactful.errors import (
    ConflictError,
    NotFoundError,
)
from tactful.llm.base import Vectors
from tactful.store import statements
from tactful.store.base import E, Encoded, SessionFilter
from tactful.store.schema import (
    AUDITED_COLLECTIONS,
    DEFINITION_COLLECTIONS,
    ENTITY_TABLES,
    INDEXED_COLUMNS,
    audit,
    definition_revisions,
    events,
    revisions,
    turns,
)
from tactful.store.sql_connection import (
    as_document,
    aware,
    check_storable,
    dump_json,
    searchable,
)
from tactful.store.sql_events import SQLTimeline


def _audit_entry(row: Any) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        creation_utc=aware(row.creation_utc),
        actor=row.actor,
        action=AuditAction(row.action),
        kind=row.kind,
        entity_id=row.entity_id,
        data=row.data,
        revision=row.revision,
    )


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class SQLStore(SQLTimeline):
    """One implementation for every SQL backend; the URL chooses it."""

    @staticmethod
    def _table(kind: type[Entity]) -> Table:
        try:
            return ENTITY_TABLES[kind.collection]
        except KeyError:
            raise TypeError(f"{kind.__name__} is not a stored entity") from None

    @staticmethod
    def _row(entity: Entity, key: str | None, *, data: Any = None) -> dict[str, Any]:
        kind = type(entity).__name__
        check_storable(kind, "id", entity.id)
        check_storable(kind, "key", key)
        row: dict[str, Any] = {
            "id": entity.id,
            "natural_key": key,
            "creation_utc": entity.creation_utc,
            "updated_utc": utcnow(),
            "data": entity.model_dump(mode="json") if data is None else data,
        }
        for col in INDEXED_COLUMNS[entity.collection]:
            row[col] = getattr(entity, col)
            check_storable(kind, col, row[col])
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
            stored.creation_utc = aware(existing.creation_utc)
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
        if not searchable(id):
            return None
        query = statements.find_entity(kind.collection)
        async with self._run(read_only=True) as ex:
            found = await ex.texts(query, {"p_id": id})
        return as_document(kind, found[0]) if found else None

    async def get(self, kind: type[E], id: str) -> E:
        found = await self.find(kind, id)
        if found is None:
            raise NotFoundError(kind.__name__, id)
        return found

    async def get_by_key(self, kind: type[E], key: str) -> E | None:
        self._table(kind)
        if not searchable(key):
            return None
        query = statements.entity_by_key(kind.collection)
        async with self._run(read_only=True) as ex:
            found = await ex.texts(query, {"p_key": key})
        return as_document(kind, found[0]) if found else None

    async def list(self, kind: type[E], **where: str) -> builtins.list[E]:
        self._table(kind)
        unknown = set(where) - set(INDEXED_COLUMNS[kind.collection])
        if unknown:
            raise TypeError(f"cannot filter {kind.__name__} by {sorted(unknown)}")
        if not searchable(*where.values()):
            return []
        query = statements.list_entities(kind.collection, tuple(sorted(where)))
        params = {f"p_{k}": v for k, v in where.items()}
        async with self._run(read_only=True) as ex:
            found = await ex.texts(query, params)
        return [as_document(kind, d) for d in found]

    async def find_sessions(self, where: SessionFilter) -> builtins.list[Session]:
        if not searchable(where.agent_id, where.customer_id, where.assignee_id, *where.labels):
            return []
        query = statements.find_sessions(where, self.backend)
        async with self._tx(read_only=True) as conn:
            rows = (await conn.execute(query)).all()
        return [as_document(Session, r.data) for r in rows]

    async def list_keyed(self, kind: type[E]) -> builtins.list[tuple[str | None, E]]:
        table = self._table(kind)
        query = select(table.c.natural_key, table.c.data).order_by(table.c.creation_utc)
        async with self._tx(read_only=True) as conn:
            rows = (await conn.execute(query)).all()
        return [(r.natural_key, kind.model_validate(r.data)) for r in rows]

    async def add_session_labels(
        self, session_id: str, labels: Sequence[str]
    ) -> builtins.list[str]:
        if not searchable(session_id):
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
            session = as_document(Session, data)
            added = [label for label in dict.fromkeys(labels) if label not in session.labels]
            if added:
                session.labels = [*session.labels, *added]
                await self.update(session)
        return added

    async def delete(self, kind: type[E], id: str) -> bool:
        table = self._table(kind)
        if not searchable(id):
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
            Revision(id=r.id, creation_utc=aware(r.creation_utc), actor=r.actor, summary=r.summary)
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


_EMBEDDING_COLUMNS = ("key", "model", "dimensions", "vector", "creation_utc")


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
