"""The persistence port. One SQL implementation (``sql.SQLStore``) serves SQLite and PostgreSQL;
the engine, the API and the SDK only see this interface.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from tactful.domain import (
    AuditEntry,
    Entity,
    Event,
    EventKind,
    EventSource,
    ModelUsage,
    Revision,
    Session,
    SessionMode,
)
from tactful.domain.turns import TurnRecord, TurnStatus
from tactful.llm.base import Vectors

E = TypeVar("E", bound=Entity)


@dataclass(frozen=True)
class Encoded(Generic[E]):
    """An entity encoded for ``Store.put`` ahead of the transaction that writes it (``Store.
    encode``): a large one, a turn's trace, takes milliseconds to encode, better spent
    before the transaction than inside it."""

    entity: E
    document: str


@dataclass(frozen=True)
class SessionFilter:
    """What ``Store.find_sessions`` matches: every field given must hold (None: any)."""

    agent_id: str | None = None
    customer_id: str | None = None
    mode: SessionMode | None = None
    # The operator who took it (``Session.handoff.assignee.id``), or whether anyone did.
    assignee_id: str | None = None
    assigned: bool | None = None
    # Each of these labels must be among the session's.
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewEvent:
    """An event to append; ``Store.append_events`` gives it its id and offset."""

    kind: EventKind
    source: EventSource
    data: Any
    trace_id: str = ""
    metadata: dict[str, Any] | None = None


class Store(ABC):
    """Transactional storage of entities, session events, traces and cached embeddings.

    Every write is one transaction: when a method returns, its write is durable; when it raises,
    nothing of it was written.

    Ids, keys and names (the indexed columns) holding NUL or a lone surrogate are refused with
    ``ValidationError`` on every backend, and looking one up finds nothing. In documents a lone
    surrogate is stored, and read, as U+FFFD.
    """

    backend: str

    @abstractmethod
    def transaction(self, *, read_only: bool = False) -> AbstractAsyncContextManager[object]:
        """Group several calls into one transaction: all of them are written, or none.

        Calls on this store made inside the ``async with`` block (in the same task) join it.
        ``read_only`` promises no writes inside, so it need not wait for writers.
        """

    @abstractmethod
    async def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""

    # -- entities ------------------------------------------------------------------------------

    @abstractmethod
    async def create(self, entity: E, *, key: str | None = None) -> E:
        """Insert ``entity``. ``key`` (optional) must be unique per collection.

        Raises ``ConflictError`` if the id or the key exists.
        """

    @abstractmethod
    async def upsert(self, entity: E, *, key: str | None = None) -> tuple[E, bool]:
        """Insert, or replace the entity holding the same key (or id when no key is given).

        The stored entity keeps its original id and creation time. Returns it and whether it
        was created.
        """

    @abstractmethod
    async def put(self, entity: E | Encoded[E]) -> E:
        """Insert, or replace the entity with the same id, without reading it first: for
        records written whole that define nothing and are not audited (traces, journey
        progress). A replaced one keeps its place in creation order. Raises ``TypeError`` for
        other kinds."""

    @abstractmethod
    def encode(self, entity: E) -> Encoded[E]:
        """Encode an entity for ``put`` now (before a transaction). Raises ``TypeError`` for
        the kinds ``put`` refuses."""

    @abstractmethod
    async def update(self, entity: E) -> E:
        """Replace the stored entity with the same id. Raises ``NotFoundError``."""

    @abstractmethod
    async def get(self, kind: type[E], id: str) -> E:
        """Raises ``NotFoundError`` when no such entity exists."""

    @abstractmethod
    async def find(self, kind: type[E], id: str) -> E | None:
        """The entity, or None."""

    @abstractmethod
    async def get_by_key(self, kind: type[E], key: str) -> E | None: ...

    @abstractmethod
    async def list(self, kind: type[E], **where: str) -> builtins.list[E]:
        """Entities in creation order, filtered by equality on indexed columns."""

    @abstractmethod
    async def find_sessions(self, where: SessionFilter) -> builtins.list[Session]:
        """Sessions in creation order, filtered in the database (the mode, the handoff and the
        labels through JSON expressions over the session document)."""

    @abstractmethod
    async def list_keyed(self, kind: type[E]) -> builtins.list[tuple[str | None, E]]:
        """Every entity of a kind with its natural key (None where it has none), in one read."""

    @abstractmethod
    async def delete(self, kind: type[E], id: str) -> bool:
        """Delete; returns whether something was deleted.

        Deleting a session deletes its events, traces and flags. Changes to definitions and
        keys are recorded in the audit trail (``list_audit``) in the same transaction, as made
        by ``tactful.domain.audit.current_actor()``.
        """

    @abstractmethod
    async def add_session_labels(
        self, session_id: str, labels: Sequence[str]
    ) -> builtins.list[str]:
        """Add ``labels`` to the session's (once each, order kept) in one read-modify-write
        under the session's lock; returns those that were new. Raises ``NotFoundError``."""

    @abstractmethod
    async def definitions_revision(self) -> int:
        """A number that changes whenever anything defining an agent changes (guidelines,
        journeys, terms, templates, relationships, tags, variables, tools), by any process on
        this database; it is bumped in the same transaction as the change."""

    # -- events ---------------------------------------------------------------------------------

    async def append_event(
        self,
        session_id: str,
        *,
        kind: EventKind,
        source: EventSource,
        data: Any,
        trace_id: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> Event:
        """Append with the session's next offset (atomic). Raises ``NotFoundError``."""
        new = NewEvent(kind, source, data, trace_id, metadata)
        [event] = await self.append_events(session_id, [new])
        return event

    @abstractmethod
    async def append_events(self, session_id: str, new: Sequence[NewEvent]) -> builtins.list[Event]:
        """Append in order, with the session's next offsets, together (atomic). Raises
        ``NotFoundError``."""

    @abstractmethod
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
        """Events in offset order; the first ``limit`` of them when given (a page: the next
        one starts after the last offset returned)."""

    @abstractmethod
    async def get_event(self, session_id: str, event_id: str) -> Event: ...

    @abstractmethod
    async def update_event_data(self, session_id: str, event_id: str, data: Any) -> Event:
        """Replace an event's data in place (a streamed message growing); its offset, kind and
        source stay. Raises ``NotFoundError``."""

    @abstractmethod
    async def update_event_metadata(
        self,
        session_id: str,
        event_id: str,
        *,
        set: Mapping[str, Any] | None = None,
        unset: Sequence[str] = (),
        check: Callable[[dict[str, Any]], None] | None = None,
    ) -> Event:
        """Set and remove keys of an event's metadata in one read-modify-write under the
        event's lock (concurrent updates all land); ``check`` sees the result before it is
        written and may refuse it by raising (then nothing is written). Its data, offset, kind
        and source stay. Raises ``NotFoundError``."""

    @abstractmethod
    async def delete_events(self, session_id: str, *, min_offset: int) -> int:
        """Mark events from ``min_offset`` on as deleted; returns how many."""

    # -- traces ---------------------------------------------------------------------------------

    @abstractmethod
    async def session_usage(self, session_id: str) -> ModelUsage:
        """The model usage of a session's saved traces, summed (``Trace.usage``): ``cost_usd``
        sums the known costs (None when calls were made and none was priced), and
        ``cost_complete`` is false when some call had no price."""

    # -- audit trail ----------------------------------------------------------------------------

    @abstractmethod
    async def list_audit(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        kind: str | None = None,
        entity_id: str | None = None,
    ) -> builtins.list[AuditEntry]:
        """Recorded definition changes, newest first; ``before`` an entry id to page back."""

    @abstractmethod
    async def list_revisions(
        self, *, limit: int = 100, before: int | None = None
    ) -> builtins.list[Revision]:
        """Revisions of definitions, newest first; ``before`` a revision id to page back.

        Each transaction that changes definitions is one revision, unless the task began a
        wider one (``tactful.domain.audit.revision``, ``begin_revision``)."""

    @abstractmethod
    async def definition_changes(
        self, *, until: int | None = None, revisions: Sequence[int] | None = None
    ) -> builtins.list[AuditEntry]:
        """The audit entries of definitions, oldest first: all of them, or those up to revision
        ``until`` (with the ones recorded before revisions existed), or those of the given
        ``revisions``."""

    # -- rate limits ----------------------------------------------------------------------------

    @abstractmethod
    async def count_hit(self, bucket: str, window: int) -> int:
        """Count one hit in ``bucket`` during ``window`` (a window number, e.g. the minute) and
        return that window's count so far, atomically across processes."""

    # -- embeddings cache ---------------------------------------------------------------------

    @abstractmethod
    async def load_embeddings(self, model: str, keys: Sequence[str]) -> dict[str, Vectors]: ...

    @abstractmethod
    async def save_embeddings(self, model: str, vectors: dict[str, Vectors]) -> None: ...


class TurnQueue(ABC):
    """Turns as records (``tactful.domain.turns``): created with their customer message,
    claimed with a lease, finished with a terminal status. Every method is atomic across the
    processes that share the database; ``create`` and ``supersede`` join an open
    ``Store.transaction()``."""

    @abstractmethod
    async def create(self, turn: TurnRecord) -> None:
        """Record a pending turn."""

    @abstractmethod
    async def supersede(
        self, session_id: str, *, newer: str, now: datetime
    ) -> builtins.list[TurnRecord]:
        """A newer turn (``newer``) came: the session's pending turns end as superseded, and
        its running turns that have not emitted are asked to stop (``cancel_requested``).
        Returns both kinds, as they are now."""

    @abstractmethod
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
        """Take a pending turn, or a running one whose lease expired, for ``lease_s``
        seconds. None when it is not claimable, or when another turn of its session runs.
        ``stale`` also takes a running turn whose lease has not expired (a single-process
        store after a restart: whoever held it is gone). ``guarded``: the claim joins a
        transaction that must go on when it is refused (the one posting the message)."""

    @abstractmethod
    async def renew(
        self, turn_id: str, owner: str, *, now: datetime, lease_s: float
    ) -> TurnRecord | None:
        """Extend the lease; None when ``owner`` no longer holds the turn."""

    @abstractmethod
    async def emit(self, turn_id: str, owner: str) -> bool:
        """Mark the turn's reply as going out, once: False when the turn was superseded, asked
        to stop, or is no longer ``owner``'s (the reply must then not be written). Call it in
        the transaction that writes the reply."""

    @abstractmethod
    async def finish(self, turn_id: str, owner: str | None, status: TurnStatus) -> bool:
        """End the turn with a terminal status (``owner`` None: whoever held it)."""

    @abstractmethod
    async def release(self, turn_id: str, owner: str) -> None:
        """Give the turn back (pending, no lease) for another worker to claim."""

    @abstractmethod
    async def get(self, turn_id: str) -> TurnRecord | None: ...

    @abstractmethod
    async def claimable(
        self,
        *,
        now: datetime,
        limit: int = 50,
        session_id: str | None = None,
        posted_before: datetime | None = None,
    ) -> builtins.list[TurnRecord]:
        """Pending turns, and running turns whose lease expired, oldest first.
        ``posted_before``: a pending turn nobody ever claimed counts only when it was posted
        before then (the process that posts a turn claims it at once; other processes wait
        until it looks orphaned)."""

    @abstractmethod
    async def running(self) -> builtins.list[TurnRecord]:
        """Every turn that is running now."""
