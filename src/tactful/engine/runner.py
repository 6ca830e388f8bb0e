"""The turn runner: claims turns, holds their leases, stops the ones a newer message supersedes,
recovers the ones whose worker died, and drains on shutdown.

Turns are records (``tactful.domain.turns``). This process claims a turn when its message is
posted here, when the session's previous turn ends, or when a recovery pass finds it claimable
(pending, or running with an expired lease: its worker died). While a turn runs, its lease is
renewed and its record watched: when a newer customer message asked it to stop (from any
process) it stops before replying; when another worker took it over (this process stalled past
the lease) it stops without writing anything more. Every other ending writes its terminal
status: ``ready`` (after the reply), ``error`` and ``ready``, or ``cancelled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta

from tactful.bus.base import Bus
from tactful.domain import Event, utcnow
from tactful.domain.turns import TurnRecord, TurnStatus
from tactful.store.base import TurnQueue

log = logging.getLogger("tactful.engine")


class Superseded(Exception):
    """A newer customer message took over before this turn replied."""


class _Unclaimed(Exception):
    """Rolls a claim's transaction back: the turn was not claimed, or must start nothing."""

    def __init__(self, claimed: TurnRecord | None) -> None:
        self.claimed = claimed


@dataclass
class RunnerOptions:
    # A claimed turn is this worker's for this long; renewed every third of it.
    lease_s: float = 30.0
    # How often this process looks for turns nobody runs (pending, or their worker died).
    recovery_interval_s: float = 5.0
    # On shutdown, running turns get this long to finish before they are given back.
    drain_grace_s: float = 20.0
    # The store has one process (a SQLite file): at start, every running turn is an orphan.
    take_over_at_start: bool = False


@dataclass
class Turn:
    """A turn this process runs: its record, and how its run is going."""

    record: TurnRecord
    owner: str
    queue: TurnQueue
    # The reply started going out (the record says so too, from the same transaction).
    emitted: bool = False
    # Its terminal status is being written, with the end of its record (``ending``), which
    # committed (``finished``): nothing is left to stop, and the runner leaves the record be.
    ending: bool = False
    finished: bool = False
    # Why the runner stopped it: "superseded", "draining" or "lost" (another worker has it).
    stop: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def trace_id(self) -> str:
        return self.record.id

    @property
    def session_id(self) -> str:
        return self.record.session_id

    async def start_emitting(self) -> None:
        """Mark the reply as going out, in the transaction that writes it: once per turn,
        and never after a newer message asked this turn to stop."""
        if self.emitted:
            return
        if not await self.queue.emit(self.record.id, self.owner):
            raise Superseded(f"turn {self.record.id} may no longer reply")
        self.emitted = True

    async def finish(self, status: TurnStatus) -> None:
        """End the record with ``status``, in the caller's transaction (the one writing the
        turn's terminal status); mark ``finished`` once that transaction committed."""
        await self.queue.finish(self.record.id, self.owner, status)


Execute = Callable[[Turn], Awaitable[TurnStatus]]
Conclude = Callable[[Turn], Awaitable[None]]
# Appends what a claimed turn starts with (the ``processing`` status) in the claim's
# transaction; returns the events, published once it committed.
Start = Callable[[TurnRecord], Awaitable[Sequence[Event]]]
Transaction = Callable[[], AbstractAsyncContextManager[object]]
# Publishes events once the transaction that wrote them committed (``Timeline.publish``).
Publish = Callable[[Sequence[Event]], None]


def worker_id() -> str:
    """This process, as turn leases name it."""
    return f"{socket.gethostname()}:{os.getpid()}"


class TurnRunner:
    """Runs the turns this process claims, one per session at a time across all processes."""

    def __init__(
        self,
        queue: TurnQueue,
        bus: Bus,
        *,
        execute: Execute,
        supersede: Conclude,
        recover_emitted: Conclude,
        options: RunnerOptions | None = None,
        owner: str | None = None,
        start: Start | None = None,
        transaction: Transaction | None = None,
        publish: Publish | None = None,
    ) -> None:
        self.queue = queue
        self.bus = bus
        self._execute = execute
        self._supersede = supersede
        self._recover_emitted = recover_emitted
        self._start = start
        self._transaction = transaction or contextlib.nullcontext
        self._publish = publish or self._publish_on_bus
        self.options = options or RunnerOptions()
        self.owner = owner or worker_id()
        self.accepting = True
        self._turns: dict[str, Turn] = {}  # by session id
        self._recovery: asyncio.Task[None] | None = None
        self._draining = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Look for turns nobody runs now, then every ``recovery_interval_s``."""
        if self._recovery is None:
            self._recovery = asyncio.create_task(self._recover_forever(), name="turn-recovery")

    async def drain(self, grace_s: float) -> None:
        """Stop claiming; give running turns ``grace_s`` to finish, then give the rest back
        (pending, for another worker or the next start)."""
        self.accepting = False
        self._draining.set()
        if self._recovery is not None:
            # It stops between two reads: cancelling a read half-way would cost the store its
            # connection (and an in-memory store its data).
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
            self._recovery = None
        tasks = [t.task for t in self._turns.values() if t.task is not None]
        if tasks and grace_s > 0:
            await asyncio.wait(tasks, timeout=grace_s)
        for turn in list(self._turns.values()):
            if turn.task is not None and not turn.task.done():
                self._stop(turn, "draining")
        await self.wait_idle()

    async def wait_idle(self, session_id: str | None = None) -> None:
        """Wait for this process's turns (of one session, or all) to finish."""
        while True:
            tasks = [
                t.task
                for sid, t in list(self._turns.items())
                if t.task is not None
                and not t.task.done()
                and (session_id is None or sid == session_id)
            ]
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    def running_here(self, session_id: str) -> Turn | None:
        return self._turns.get(session_id)

    # -- claiming ---------------------------------------------------------------------------

    async def claim_posted(self, record: TurnRecord) -> tuple[TurnRecord, Sequence[Event]] | None:
        """Claim a turn in the transaction that posts its message (the caller's, which holds
        the session's lock already), with what the turn starts with: its start then costs no
        transaction of its own. None when it cannot start at once (this process is stopping or
        runs the session's turn, or another turn of the session runs anywhere): ``submit``
        takes it as before. The caller publishes the events once its transaction committed and
        passes the claimed record to ``submit``."""
        if not self.accepting or self._start is None or record.session_id in self._turns:
            return None
        claimed = await self.queue.claim(
            record.id, self.owner, now=utcnow(), lease_s=self.options.lease_s, guarded=True
        )
        if claimed is None:
            return None
        return claimed, await self._start(claimed)

    async def submit(
        self,
        record: TurnRecord,
        superseded: list[TurnRecord],
        *,
        claimed: TurnRecord | None = None,
    ) -> None:
        """A customer message was posted here: stop the turns it supersedes that run in this
        process, then run its turn (``claimed`` when ``claim_posted`` claimed it already; else
        it is claimed now, or left pending while the session's turn ends)."""
        for old in superseded:
            local = self._turns.get(old.session_id)
            if local is not None and local.trace_id == old.id and not local.emitted:
                self._stop(local, "superseded")
        if claimed is not None:
            turn = self._run_claimed(claimed)
            if not self.accepting:
                self._stop(turn, "draining")  # it stopped meanwhile: given back, pending
        elif self.accepting:
            await self._claim_and_run(record)

    def _run_claimed(self, claimed: TurnRecord) -> Turn:
        turn = Turn(claimed, self.owner, self.queue, emitted=claimed.emitted)
        self._turns[claimed.session_id] = turn
        turn.task = asyncio.create_task(self._run(turn), name=f"turn:{claimed.id}")
        return turn

    async def _claim_and_run(self, record: TurnRecord, *, stale: bool = False) -> bool:
        if record.session_id in self._turns:
            return False  # this process runs the session's turn; it takes the next one after
        claimed = await self._claim(record, stale=stale)
        if claimed is None:
            return False
        self._run_claimed(claimed)
        return True

    async def _claim(self, record: TurnRecord, *, stale: bool) -> TurnRecord | None:
        """Claim the turn and, in the same transaction, append what it starts with (unless
        its reply went out already: it is only completed)."""
        claim = functools.partial(
            self.queue.claim,
            record.id,
            self.owner,
            now=utcnow(),
            lease_s=self.options.lease_s,
            stale=stale,
        )
        if self._start is None or record.emitted:
            return await claim()
        try:
            async with self._transaction():
                # Appended first: the session's lock before the turn's, as a posted message
                # takes them (the other order deadlocks with it on PostgreSQL).
                started = await self._start(record)
                claimed = await claim()
                if claimed is None or claimed.emitted:
                    raise _Unclaimed(claimed)
        except _Unclaimed as undone:
            # Not claimable (rolled back, and so is what it started), or its reply went out
            # meanwhile (its worker died): claimed again, to be completed only.
            return None if undone.claimed is None else await claim()
        self._publish(started)
        return claimed

    def _publish_on_bus(self, written: Sequence[Event]) -> None:
        for event in written:
            self.bus.publish(event.session_id, event.offset)

    async def _next(self, session_id: str) -> None:
        """The session's turn ended here: take its next one, if any waits."""
        if not self.accepting:
            return
        for record in await self.queue.claimable(now=utcnow(), session_id=session_id):
            if await self._take(record):
                return

    async def _take(self, record: TurnRecord, *, stale: bool = False) -> bool:
        """Run a claimable turn; one a newer message asked to stop ends as superseded."""
        if record.cancel_requested and not record.emitted:
            turn = Turn(record, self.owner, self.queue)
            if await self.queue.finish(record.id, None, TurnStatus.SUPERSEDED):
                await self._supersede(turn)
            return False
        return await self._claim_and_run(record, stale=stale)

    async def _recover_forever(self) -> None:
        # A turn posted here is claimed here at once: another process takes a pending turn
        # only once it looks orphaned (its poster died between writing and claiming it).
        orphaned_after = timedelta(seconds=max(1.0, self.options.recovery_interval_s))
        starting = self.options.take_over_at_start
        while self.accepting:
            try:
                now = utcnow()
                if starting:
                    # One process per store: whoever held these is gone, and so is whoever
                    # posted the pending ones.
                    starting = False
                    for record in await self.queue.running():
                        await self._take(record, stale=True)
                    found = await self.queue.claimable(now=now)
                else:
                    found = await self.queue.claimable(now=now, posted_before=now - orphaned_after)
                for record in found:
                    if not self.accepting:
                        return
                    if record.session_id not in self._turns:
                        await self._take(record)
            except Exception:
                log.exception("could not look for turns to recover")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._draining.wait(), self.options.recovery_interval_s)

    # -- one turn ---------------------------------------------------------------------------

    async def _run(self, turn: Turn) -> None:
        ended = asyncio.Event()
        watch = asyncio.create_task(self._watch(turn, ended), name=f"lease:{turn.trace_id}")
        status: TurnStatus | None = None
        try:
            if turn.record.emitted:
                # Its worker died after the reply went out: finish what it could not.
                await self._recover_emitted(turn)
                status = TurnStatus.DONE
            else:
                # Writes the turn's terminal status itself (and ends a superseded turn).
                status = await self._execute(turn)
        except asyncio.CancelledError:
            if turn.stop not in ("draining", "lost"):
                raise
        except Exception:
            log.exception("turn %s failed in the runner", turn.trace_id)
            status = TurnStatus.FAILED
        finally:
            # The watcher ends between two reads: cancelling a read half-way would cost the
            # store its connection.
            ended.set()
            try:
                await asyncio.shield(watch)
            finally:
                # Even when a second cancellation lands meanwhile (the process is stopping):
                # the turn no longer runs here, whatever else is left undone (its lease expires
                # and another worker, or the next start, takes it).
                if self._turns.get(turn.session_id) is turn:
                    del self._turns[turn.session_id]
        await asyncio.shield(self._end(turn, status))

    async def _end(self, turn: Turn, status: TurnStatus | None) -> None:
        try:
            if turn.stop == "lost" or turn.finished:
                pass  # another worker holds it now, or it ended with its terminal status
            elif status is None:
                await self.queue.release(turn.trace_id, self.owner)
            else:
                await self.queue.finish(turn.trace_id, self.owner, status)
            await self._next(turn.session_id)
        except Exception:
            log.exception("could not end turn %s", turn.trace_id)

    async def _watch(self, turn: Turn, ended: asyncio.Event) -> None:
        """Renew the lease every third of it; stop the turn when a newer message asks it to
        (woken by the session's events, from any process) or when another worker has it.
        Returns once ``ended`` is set."""
        loop = asyncio.get_running_loop()
        every = self.options.lease_s / 3
        renew_at = loop.time() + every
        while not ended.is_set():
            listener = self.bus.listen(turn.session_id)
            woken = asyncio.ensure_future(listener.wait(max(0.0, renew_at - loop.time())))
            done = asyncio.ensure_future(ended.wait())
            try:
                await asyncio.wait({woken, done}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
                done.cancel()
                listener.close()
            if ended.is_set() or turn.ending:
                return
            try:
                if loop.time() >= renew_at:
                    renew_at = loop.time() + every
                    record = await self.queue.renew(
                        turn.trace_id, self.owner, now=utcnow(), lease_s=self.options.lease_s
                    )
                else:
                    record = await self.queue.get(turn.trace_id)
            except Exception:
                log.warning("could not check turn %s's lease", turn.trace_id, exc_info=True)
                continue
            if turn.ending:
                return  # the record may have ended with it, which is no lost lease
            if record is None or record.owner != self.owner:
                self._stop(turn, "lost")
            elif record.cancel_requested and not turn.emitted:
                self._stop(turn, "superseded")
            else:
                continue
            return

    @staticmethod
    def _stop(turn: Turn, why: str) -> None:
        """Stop a running turn, once (a second cancellation would cut its own ending short)."""
        if turn.stop is None:
            turn.stop = why
            if turn.task is not None:
                turn.task.cancel()
