"""A claimed turn from its trace's creation to its terminal status.

The runner (``engine.runner``) claims turns and holds their leases; for each turn it runs here,
this module writes ``processing`` with the claim, opens the trace, runs the pipeline, and writes
how the turn ended, with its trace and the end of its record in one transaction: ``ready`` after
the reply; ``error`` then ``ready`` when it failed; ``cancelled`` when a newer message
superseded it (before or while it ran); nothing more for a turn whose session is gone, or one
stopped for draining or a lost lease (another worker runs it again). A turn whose worker died
after its reply went out is completed without running again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from opentelemetry.trace import Span, StatusCode, Tracer

from tactful.domain import Event, EventKind, EventSource, SessionStatus, Trace, TraceStatus
from tactful.domain.pricing import PriceTable
from tactful.domain.turns import TurnRecord, TurnStatus
from tactful.engine.runner import Superseded, Turn
from tactful.engine.timeline import Timeline, status_event
from tactful.engine.trace import DEFAULT_TRACER, TraceRecorder
from tactful.errors import NotFoundError
from tactful.llm.base import model_deadline
from tactful.store.base import Encoded, NewEvent, Store
from tactful.telemetry.base import INTERRUPTED, TurnEnded, TurnObserver

log = logging.getLogger("tactful.engine")
# One line per turn that ended here (``tactful serve`` prints them).
turns_log = logging.getLogger("tactful.turns")

RunPipeline = Callable[[Turn, TraceRecorder], Awaitable[None]]


class TurnLifecycle:
    """The runner's callbacks: run a claimed turn, end a superseded one, complete one whose
    reply went out before its worker died."""

    def __init__(
        self,
        timeline: Timeline,
        pipeline: RunPipeline,
        tier: Callable[[], str],
        *,
        deadline_s: float | None = None,
        prices: PriceTable | None = None,
        tracer: Tracer | None = None,
        observers: Sequence[TurnObserver] = (),
    ) -> None:
        self.timeline = timeline
        self.pipeline = pipeline
        self.tier = tier
        # The model time of a turn, from its start (llm.base.model_deadline).
        self.deadline_s = deadline_s
        self.prices = prices or PriceTable()
        self.tracer = tracer or DEFAULT_TRACER
        # Told of every turn that ends here (metrics): ``tactful.telemetry``.
        self.observers = list(observers)

    async def start(self, record: TurnRecord) -> Sequence[Event]:
        """``processing``, appended in the transaction that claims the turn."""
        new = status_event(SessionStatus.PROCESSING, record.id, stage="interpreting")
        return await self.timeline.store.append_events(record.session_id, [new])

    def recorder(self, trace: Trace) -> TraceRecorder:
        """A recorder for one turn's trace, pricing its model calls and tracing its stages."""
        return TraceRecorder(trace, prices=self.prices, tracer=self.tracer)

    def _trace(
        self,
        turn: Turn,
        status: TraceStatus = TraceStatus.RUNNING,
        *,
        message_event_id: str | None = None,
        error: str | None = None,
    ) -> Trace:
        return Trace(
            id=turn.trace_id,
            session_id=turn.session_id,
            agent_id="",
            customer_event_offset=turn.record.customer_offset,
            tier=self.tier(),
            attempt=turn.record.attempts,
            status=status,
            message_event_id=message_event_id,
            error=error,
        )

    async def execute(self, turn: Turn) -> TurnStatus:
        """Run one claimed turn and write its terminal status: ready, error and ready, or
        cancelled when a newer message superseded it (the runner asked, or the reply was
        refused). A turn stopped for another reason (draining, lost lease) writes nothing."""
        rec = self.recorder(self._trace(turn))
        started = time.perf_counter()
        status: TurnStatus | None = None
        with self.tracer.start_as_current_span(
            "tactful.turn",
            attributes={
                "tactful.session_id": turn.session_id,
                "tactful.trace_id": turn.trace_id,
                "tactful.attempt": turn.record.attempts,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                status = await self._run(turn, rec)
                return status
            finally:
                seconds = time.perf_counter() - started
                if status is not None:
                    log_turn(rec.trace, status, seconds * 1000)
                ended = TurnEnded(rec.trace, status.value if status else INTERRUPTED, seconds)
                describe_turn(span, ended)
                self._tell(ended)

    def _tell(self, ended: TurnEnded) -> None:
        for observer in self.observers:
            try:
                observer.turn_ended(ended)
            except Exception:
                log.exception("turn observer %s failed", type(observer).__name__)

    async def _run(self, turn: Turn, rec: TraceRecorder) -> TurnStatus:
        trace = rec.trace
        try:
            with model_deadline(self.deadline_s):
                await self.pipeline(turn, rec)
            return TurnStatus.DONE
        except (Superseded, asyncio.CancelledError) as e:
            if not isinstance(e, Superseded) and turn.stop != "superseded":
                raise
            trace.status = TraceStatus.CANCELLED
            await asyncio.shield(self._cancelled(rec, turn))
            return TurnStatus.SUPERSEDED
        except NotFoundError as e:
            # The session (or its agent) was deleted while the turn ran: nothing to answer.
            log.info("turn %s dropped: %s", turn.trace_id, e)
            trace.status = TraceStatus.DROPPED
            return TurnStatus.DROPPED
        except Exception as e:
            # A failing turn degrades to an error status; the server keeps serving.
            log.exception("turn %s failed", turn.trace_id)
            trace.status = TraceStatus.ERROR
            trace.error = f"{type(e).__name__}: {e}"
            await completed(turn, self._failed(rec, turn))
            return TurnStatus.FAILED

    async def superseded(self, turn: Turn) -> None:
        """A turn that a newer message superseded before it ran here (its worker died)."""
        await self._cancelled(self.recorder(self._trace(turn, TraceStatus.CANCELLED)))

    async def recover_emitted(self, turn: Turn) -> None:
        """Its worker died after the reply went out: complete a reply left half-streamed, keep
        the trace if it was saved (else record that it was lost), and write ready."""
        store, session_id = self.timeline.store, turn.session_id
        replies = await store.list_events(
            session_id,
            min_offset=turn.record.customer_offset,
            kinds=[EventKind.MESSAGE],
            source=EventSource.AI_AGENT,
            trace_id=turn.trace_id,
        )
        reply = next((e for e in replies if not e.metadata.get("preamble")), None)
        if reply is not None and isinstance(reply.data, dict):
            chunks = reply.data.get("chunks")
            if isinstance(chunks, list) and (not chunks or chunks[-1] is not None):
                data = {**reply.data, "chunks": [*chunks, None]}
                whole = await store.update_event_data(session_id, reply.id, data)
                self.timeline.recent.publish_update(whole)
        lost: Trace | None = None
        if await store.find(Trace, turn.trace_id) is None:
            lost = self._trace(
                turn,
                TraceStatus.DONE,
                message_event_id=reply.id if reply is not None else None,
                error="the process that sent this reply stopped before it saved the trace",
            )
        ready = [status_event(SessionStatus.READY, turn.trace_id)]
        trace = _encoded(store, lost)
        written = await _ending(store, session_id, trace, ready, turn, TurnStatus.DONE)
        self.timeline.publish(written)
        turn.finished = True

    async def _cancelled(self, rec: TraceRecorder, turn: Turn | None = None) -> None:
        ending = [status_event(SessionStatus.CANCELLED, rec.trace.id)]
        try:
            await write_ending(self.timeline, rec, ending, turn, TurnStatus.SUPERSEDED)
        except Exception:
            log.exception("could not write how turn %s ended", rec.trace.id)

    async def _failed(self, rec: TraceRecorder, turn: Turn) -> None:
        trace = rec.trace
        ending = [
            status_event(SessionStatus.ERROR, trace.id, exception=trace.error),
            status_event(SessionStatus.READY, trace.id),
        ]
        try:
            await write_ending(self.timeline, rec, ending, turn, TurnStatus.FAILED)
        except Exception:
            log.exception("could not write how turn %s ended", trace.id)


async def write_ending(
    timeline: Timeline,
    rec: TraceRecorder,
    statuses: Sequence[NewEvent],
    turn: Turn | None,
    status: TurnStatus,
) -> None:
    """The trace, the turn's terminal statuses and the end of its record, in one
    transaction: a client that reads the trace on ``ready`` finds it, and a crash leaves all
    of it or none. A trace that cannot be saved is logged and left out; never a reason for the
    statuses not to be written."""
    store, session_id = timeline.store, rec.trace.session_id
    trace = _encoded(store, rec.build())
    try:
        written = await _ending(store, session_id, trace, statuses, turn, status)
    except Exception:
        if trace is None:
            raise
        log.exception("could not save trace %s", rec.trace.id)
        written = await _ending(store, session_id, None, statuses, turn, status)
    timeline.publish(written)
    if turn is not None:
        turn.finished = True


def _encoded(store: Store, trace: Trace | None) -> Encoded[Trace] | None:
    """The trace encoded before the transaction that writes it (a large document)."""
    if trace is None:
        return None
    try:
        return store.encode(trace)
    except Exception:
        log.exception("could not save trace %s", trace.id)
        return None


async def _ending(
    store: Store,
    session_id: str,
    trace: Encoded[Trace] | None,
    statuses: Sequence[NewEvent],
    turn: Turn | None,
    status: TurnStatus,
) -> list[Event]:
    if turn is not None:
        turn.ending = True
    async with store.transaction():
        if trace is not None:
            await store.put(trace)
        written = await store.append_events(session_id, statuses)
        if turn is not None:
            await turn.finish(status)
    return written


async def completed(turn: Turn, ending: Awaitable[None]) -> None:
    """Write a turn's ending even when a stop lands meanwhile (a newer message superseded the
    turn as it failed): a turn always ends with its terminal status."""
    task = asyncio.ensure_future(ending)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        if turn.stop is None:
            raise  # not ours: the process is shutting down


def log_turn(trace: Trace, status: TurnStatus, ms: float) -> None:
    """The turn's line: session, outcome, time, model calls and tokens, and where it went on
    without its model."""
    calls = trace.model_calls
    failed = sum(1 for c in calls if not c.ok)
    tokens = sum(c.prompt_tokens + c.completion_tokens for c in calls)
    degraded = ""
    if trace.degraded:
        where = ", ".join(dict.fromkeys(reason.split(":", 1)[0] for reason in trace.degraded))
        degraded = f" (degraded: {where})"
    usage = trace.usage
    cost = ""
    if calls and usage.cost_usd is not None:
        cost = f", ${usage.cost_usd:.6f}" + ("" if usage.cost_complete else " (some unpriced)")
    turns_log.info(
        "turn %s session %s: %s%s in %.0f ms, %d model call(s)%s, %d tokens%s",
        trace.id,
        trace.session_id,
        status.value,
        degraded,
        ms,
        len(calls),
        f" ({failed} failed)" if failed else "",
        tokens,
        cost,
    )


def describe_turn(span: Span, ended: TurnEnded) -> None:
    """The turn's span, once it ended: its agent, outcome, model calls, tokens and cost."""
    if not span.is_recording():
        return
    trace, usage = ended.trace, ended.trace.usage
    span.set_attributes(
        {
            "tactful.agent_id": trace.agent_id,
            "tactful.outcome": ended.outcome,
            "tactful.model_calls": usage.model_calls,
            "tactful.usage.prompt_tokens": usage.prompt_tokens,
            "tactful.usage.cached_tokens": usage.cached_tokens,
            "tactful.usage.completion_tokens": usage.completion_tokens,
            "tactful.cost_complete": usage.cost_complete,
            **({} if usage.cost_usd is None else {"tactful.cost_usd": usage.cost_usd}),
        }
    )
    if ended.outcome == TurnStatus.FAILED:
        span.set_status(StatusCode.ERROR, trace.error or "the turn failed")
