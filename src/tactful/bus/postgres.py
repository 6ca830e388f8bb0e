"""The bus on PostgreSQL LISTEN/NOTIFY: an append in any process wakes the waiters of every one.

Each process holds one asyncpg connection of its own (never one of the store's pool) that LISTENs
on the channel of its schema and also sends this process's NOTIFYs. ``publish`` wakes this
process's listeners at once, then queues the notification; a background task sends what is
queued, coalesced per session (the highest offset), in one statement per batch. ``publish`` is
called after the write committed, so no NOTIFY ever announces a write that did not commit, and
a process that receives one reads the committed event. We do not send NOTIFY inside the store's
write transactions: PostgreSQL serialises every committing transaction that notified on one
global lock, which would lengthen each append under load; here one connection per process takes
that lock, for a batch at a time.

When the connection drops, the task reconnects with backoff (0.1 s doubling up to
``reconnect_max_s``); meanwhile every local listener is woken at each attempt (it reads the store
again, so events from other processes arrive within that delay; watchers are told that any
session may have changed), notifications of this process
wait in the queue and go out after the reconnection, and every local listener is woken once more
when listening resumes. The log says so once when the connection is lost and once when it is
back. A waiter whose wait times out reads the store once more (``engine.timeline``), so a lost
notification delays an answer by at most the wait, never turns it into a 504.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
import uuid
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import make_url

from tactful.bus.base import Bus, Listener, Watcher
from tactful.bus.memory import MemoryBus
from tactful.errors import StoreError

log = logging.getLogger("tactful.bus")

RECONNECT_FIRST_S = 0.1
RECONNECT_MAX_S = 5.0
# An idle connection is checked this often, so that one dropped without a word is noticed.
LIVENESS_S = 30.0
# A connection, a NOTIFY or a check that takes longer counts as a lost connection.
STATEMENT_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 2.0
# PostgreSQL refuses a payload of 8000 bytes or more; PostgreSQL identifiers have at most 63.
PAYLOAD_MAX_BYTES = 7999
CHANNEL_MAX_BYTES = 63
CHANNEL_PREFIX = "tactful_events:"
APPLICATION_NAME = "tactful bus"
_NOTIFY = "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload"


def channel_name(schema: str) -> str:
    """The channel of the timelines stored in ``schema``.

    NOTIFY only reaches sessions connected to the same database, so the schema is what tells
    apart two tactful installations (or two tests) sharing one database.
    """
    name = CHANNEL_PREFIX + schema
    if len(name.encode()) <= CHANNEL_MAX_BYTES:
        return name
    return CHANNEL_PREFIX + hashlib.sha256(schema.encode()).hexdigest()[:40]


def connect_args(url: str, pg_schema: str | None = None) -> dict[str, Any]:
    """``asyncpg.connect`` arguments for a PostgreSQL URL, read as the store's engine reads it
    (host, port, user, password, database, ssl; SQLAlchemy-only options are left out)."""
    dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
    _, kwargs = dialect.create_connect_args(make_url(url))  # type: ignore[no-untyped-call]
    accepted = inspect.signature(asyncpg.connect).parameters
    args = {k: v for k, v in kwargs.items() if k in accepted}
    settings = dict(args.get("server_settings") or {})
    # Which row of pg_stat_activity is the listening connection.
    settings.setdefault("application_name", APPLICATION_NAME)
    if pg_schema:
        settings["search_path"] = pg_schema
    args["server_settings"] = settings
    return args


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class PostgresBus(Bus):
    """Listeners in this process, woken by this process's publishes at once and by the other
    processes' through NOTIFY. ``await start()`` before use; ``await close()`` at shutdown."""

    def __init__(
        self,
        url: str,
        *,
        pg_schema: str | None = None,
        reconnect_max_s: float = RECONNECT_MAX_S,
        liveness_s: float = LIVENESS_S,
    ) -> None:
        self._connect_args = connect_args(url, pg_schema)
        self._safe_url = make_url(url).render_as_string(hide_password=True)
        self._reconnect_max_s = reconnect_max_s
        self._liveness_s = liveness_s
        self._local = MemoryBus()
        # Our own notifications come back to us: the origin tells them apart (a backend pid
        # would not, behind PgBouncer).
        self._origin = uuid.uuid4().hex
        # Sessions with news not yet sent, at their highest offset.
        self._pending: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.channel = ""
        # The listening connection's server process while connected (pg_stat_activity.pid).
        self.backend_pid: int | None = None

    # -- the port -------------------------------------------------------------------------------

    def listen(self, session_id: str) -> Listener:
        return self._local.listen(session_id)

    def publish(self, session_id: str, offset: int) -> None:
        self._local.publish(session_id, offset)
        self._pending[session_id] = max(offset, self._pending.get(session_id, offset))
        self._wake.set()

    def watch(self, watcher: Watcher) -> None:
        # Other processes' notifications reach the watchers as this process's publishes do.
        self._local.watch(watcher)

    @property
    def listener_count(self) -> int:
        return self._local.listener_count

    @property
    def connected(self) -> bool:
        """Whether notifications flow: False while the connection is being re-established."""
        return self.backend_pid is not None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and LISTEN. Raises ``StoreError`` when PostgreSQL cannot be reached."""
        if self._task is not None:
            return
        try:
            conn = await self._connect()
        except Exception as e:
            raise StoreError(
                f"cannot listen for session events on PostgreSQL at {self._safe_url}: {_reason(e)}"
            ) from e
        self._task = asyncio.create_task(self._run(conn), name="tactful-bus")

    async def close(self) -> None:
        """Send what is still queued (briefly), then close the connection."""
        self._closing.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), CLOSE_TIMEOUT_S)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the connection -------------------------------------------------------------------------

    async def _connect(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(**self._connect_args, timeout=STATEMENT_TIMEOUT_S)
        try:
            schema = await conn.fetchval(
                "SELECT coalesce(current_schema(), 'public')", timeout=STATEMENT_TIMEOUT_S
            )
            self.channel = channel_name(str(schema))
            await conn.add_listener(self.channel, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        self.backend_pid = conn.get_server_pid()
        return conn

    async def _run(self, conn: asyncpg.Connection) -> None:
        """Serve the connection; when it is lost, reconnect with backoff until closed."""
        loop = asyncio.get_running_loop()
        current: asyncpg.Connection | None = conn
        try:
            while current is not None:
                reason = await self._serve(current)
                await self._discard(current)
                if reason is None:
                    return
                lost_at = loop.time()
                log.warning(
                    "lost the PostgreSQL connection that listens for session events (%s); "
                    "until it is back, waiters on this process read the store again at each "
                    "reconnection attempt (every %g s at most)",
                    reason,
                    self._reconnect_max_s,
                )
                self._local.wake_everyone()
                current = await self._reconnect()
                if current is not None:
                    log.warning(
                        "listening for session events on PostgreSQL again, after %.1f s",
                        loop.time() - lost_at,
                    )
                    # Whatever other processes announced meanwhile: read the store again.
                    self._local.wake_everyone()
        finally:
            # Cancelled (a close that took too long): leave no connection behind.
            if current is not None and not current.is_closed():
                current.terminate()

    async def _reconnect(self) -> asyncpg.Connection | None:
        """A new listening connection, after as many attempts as it takes; None once closing."""
        delay = RECONNECT_FIRST_S
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)
            if self._closing.is_set():
                return None
            delay = min(delay * 2, self._reconnect_max_s)
            try:
                return await self._connect()
            except Exception:
                self._local.wake_everyone()

    async def _serve(self, conn: asyncpg.Connection) -> str | None:
        """Send the queued notifications as they come; check the connection when idle.
        Returns why the connection was lost, or None once closing."""
        conn.add_termination_listener(lambda _conn: self._wake.set())
        try:
            while True:
                if conn.is_closed():
                    return "the server closed the connection"
                if self._pending:
                    await self._send(conn)
                    continue
                if self._closing.is_set():
                    return None
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self._liveness_s)
                except TimeoutError:
                    await conn.fetchval("SELECT 1", timeout=STATEMENT_TIMEOUT_S)
        except Exception as e:
            return _reason(e)
        finally:
            self.backend_pid = None

    async def _send(self, conn: asyncpg.Connection) -> None:
        batch, self._pending = self._pending, {}
        payloads = []
        for session_id, offset in batch.items():
            payload = json.dumps({"origin": self._origin, "session": session_id, "offset": offset})
            if len(payload.encode()) <= PAYLOAD_MAX_BYTES:
                payloads.append(payload)
        try:
            await conn.execute(_NOTIFY, self.channel, payloads, timeout=STATEMENT_TIMEOUT_S)
        except BaseException:
            # Not sent: back in the queue for the next connection (newer offsets win).
            for session_id, offset in batch.items():
                self._pending[session_id] = max(offset, self._pending.get(session_id, offset))
            raise

    async def _discard(self, conn: asyncpg.Connection) -> None:
        if conn.is_closed():
            return
        try:
            await conn.close(timeout=CLOSE_TIMEOUT_S)
        except Exception:
            conn.terminate()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            note = json.loads(payload)
            origin, session_id, offset = note["origin"], str(note["session"]), int(note["offset"])
        except (ValueError, KeyError, TypeError):
            log.debug("ignored a notification on %s that is not ours: %r", self.channel, payload)
            return
        if origin != self._origin:
            self._local.publish(session_id, offset)
