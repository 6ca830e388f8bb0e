"""A claimed turn from its trace's creation to its terminal status.

The runner (``engine.runner``) claims turns and holds their leases; for each turn it runs here,
this module opens the trace, runs the pipeline, and writes how the turn ended: ``ready`` after
the reply; ``error`` then ``ready`` when it failed; ``cancelled`` when a newer message
superseded it (before or while it ran); nothing more for a turn whose session is gone, or one
stopped for draining or a lost lease (another worker runs it again). A turn whose worker died
after its reply went out is completed without running again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from opentelemetry.trace import Span, StatusCode, Tracer

from tactful.domain import EventKind, EventSource, SessionStatus, Trace, TraceStatus
from tactful.domain.pricing import PriceTable
from tactful.domain.turns import TurnStatus
from tactful.engine.runner import Superseded, Turn
from tactful.engine.timeline import Timeline
from tactful.engine.trace import DEFAULT_TRACER, TraceRecorder
from tactful.errors import NotFoundError
from tactful.llm.base import model_deadline
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
            await asyncio.shield(self._cancelled(rec))
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
            await completed(turn, self._failed(rec))
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
        if await store.find(Trace, turn.trace_id) is None:
            trace = self._trace(
                turn,
                TraceStatus.DONE,
                message_event_id=reply.id if reply is not None else None,
                error="the process that sent this reply stopped before it saved the trace",
            )
            await self.recorder(trace).save(store)
        await self.timeline.status(session_id, SessionStatus.READY, turn.trace_id)

    async def _cancelled(self, rec: TraceRecorder) -> None:
        with contextlib.suppress(Exception):
            await self.timeline.status(rec.trace.session_id, SessionStatus.CANCELLED, rec.trace.id)
        await rec.save(self.timeline.store)

    async def _failed(self, rec: TraceRecorder) -> None:
        trace = rec.trace
        await rec.save(self.timeline.store)
        with contextlib.suppress(Exception):
            await self.timeline.status(
                trace.session_id, SessionStatus.ERROR, trace.id, exception=trace.error
            )
            await self.timeline.status(trace.session_id, SessionStatus.READY, trace.id)


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
