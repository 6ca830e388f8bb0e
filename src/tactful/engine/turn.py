"""Orchestrates one turn, stage by stage.

A customer message is appended, acknowledged and its turn recorded in one transaction; the turn
runner (``engine.runner``) claims the turn and runs it here. A newer customer message
supersedes a turn that has not emitted its reply yet, wherever it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from typing import Any

from tactful.bus.base import Bus
from tactful.domain import (
    CannedResponse,
    EndpointKind,
    Event,
    EventKind,
    EventSource,
    Guideline,
    MatchVerdict,
    MessageOutputMode,
    Relationship,
    RelationshipKind,
    Session,
    SessionMode,
    SessionStatus,
    Trace,
    new_id,
    utcnow,
)
from tactful.domain.turns import TurnRecord, TurnStatus
from tactful.engine import glossary, variables
from tactful.engine.candidates import select_candidates
from tactful.engine.compose import Composer
from tactful.engine.context import SnapshotCache, TurnContext, load_context
from tactful.engine.hooks import Hooks, MatchContext
from tactful.engine.journeys import Follower, JourneyOutcome, JourneyPlan, journey_relationships
from tactful.engine.journeys import plan as journey_plan
from tactful.engine.match import JourneyCheck, Match, ModelMatcher, OfflineMatcher
from tactful.engine.options import EngineOptions
from tactful.engine.preamble import Preamble
from tactful.engine.resolve import Clarification, guidelines_by_tag, resolve
from tactful.engine.retrieve import EmbeddingCache, Ranked, Retriever, sentences
from tactful.engine.retrievers import RetrievedSet, Retrievers
from tactful.engine.runner import Superseded, Turn, TurnRunner
from tactful.engine.self_check import about_reply
from tactful.engine.tool_stage import ToolStage
from tactful.engine.tools import ToolFindings
from tactful.engine.trace import TraceRecorder
from tactful.errors import NotFoundError, PayloadTooLargeError, ValidationError
from tactful.llm.base import Embedder, Generator
from tactful.store.base import Store, TurnQueue
from tactful.tools.registry import ToolRegistry

log = logging.getLogger("tactful.engine")

CUSTOMER_SOURCES = (EventSource.CUSTOMER, EventSource.CUSTOMER_UI)


class _Stream:
    """A reply streamed into one message event as the model writes it: the event is appended
    with the first piece and updated with each next one (clients see it grow)."""

    def __init__(
        self,
        engine: Engine,
        session_id: str,
        trace_id: str,
        participant: dict[str, Any],
        turn: Turn,
        preamble: Preamble,
    ) -> None:
        self.engine = engine
        self.session_id = session_id
        self.trace_id = trace_id
        self.participant = participant
        self.turn = turn
        self.preamble = preamble
        self.chunks: list[str] = []
        self.event: Event | None = None

    async def __call__(self, piece: str) -> None:
        self.preamble.stop()
        self.chunks.append(piece)
        data = {
            "message": "".join(self.chunks),
            "participant": self.participant,
            "chunks": list(self.chunks),
            "canned_responses": [],
            "guidelines": [],
        }
        if self.event is None:
            # The reply goes out from its first piece (once per turn, checked in the same
            # transaction): a newer message no longer supersedes it.
            store = self.engine.store
            async with store.transaction():
                self.event = await store.append_event(
                    self.session_id,
                    kind=EventKind.MESSAGE,
                    source=EventSource.AI_AGENT,
                    data=data,
                    trace_id=self.trace_id,
                )
                # After the append (the session's lock first, as a posted message takes it).
                await self.turn.start_emitting()
            self.engine.bus.publish(self.session_id, self.event.offset)
        else:
            await self.engine.store.update_event_data(self.session_id, self.event.id, data)
            self.engine.bus.publish(self.session_id, self.event.offset)


class Engine:
    """The turn pipeline over the ports: store, bus, embedder and an optional generator."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        embedder: Embedder,
        generator: Generator | None = None,
        options: EngineOptions | None = None,
        *,
        turns: TurnQueue,
    ) -> None:
        self.store = store
        self.turns = turns
        self.bus = bus
        self.generator = generator
        self.options = options or EngineOptions()
        self.cache = EmbeddingCache(embedder, store)
        # Agent definitions in memory, read again when the store's revision moves.
        self.snapshots = SnapshotCache()
        self.retriever = Retriever(self.cache)
        self.offline_matcher = OfflineMatcher(self.options.offline_threshold)
        self.model_matcher = ModelMatcher(generator) if generator else None
        self.composer = Composer(self.cache, generator, self.options.template_limits)
        # Code matchers and hooks registered through the SDK (in memory, per process).
        self.hooks = Hooks(timeout=self.options.hook_timeout_s)
        # Retrievers attached through the SDK (in memory, per process).
        self.retrievers = Retrievers(timeout=self.options.retriever_timeout_s)
        self.follower = Follower(self.cache, self.options.journey_condition_threshold, self.hooks)
        # Tools that can run in this process: Python functions and connected services.
        self.tools = ToolRegistry(self.options.outbound)
        self.tool_stage = ToolStage(
            self.tools,
            store,
            self.append,
            timeout_s=self.options.tool_timeout_s,
            model_matcher=self.model_matcher,
        )
        self.runner = TurnRunner(
            turns,
            bus,
            execute=self._execute,
            supersede=self._superseded,
            recover_emitted=self._recover_emitted,
            options=self.options.runner,
        )
        self._warming: set[asyncio.Task[None]] = set()
        # Per running turn: trace records to build when its trace is saved.
        self._deferred: dict[str, Callable[[], None]] = {}

    @property
    def tier(self) -> str:
        return f"model:{self.generator.model_name}" if self.generator else "offline"

    # -- timeline writes ------------------------------------------------------------------------

    async def append(
        self,
        session_id: str,
        kind: EventKind,
        source: EventSource,
        data: Any,
        *,
        trace_id: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> Event:
        """Append an event and wake whoever waits on the session."""
        event = await self.store.append_event(
            session_id, kind=kind, source=source, data=data, trace_id=trace_id, metadata=metadata
        )
        self.bus.publish(session_id, event.offset)
        return event

    async def status(
        self, session_id: str, status: SessionStatus, trace_id: str, **data: Any
    ) -> Event:
        return await self.append(
            session_id,
            EventKind.STATUS,
            EventSource.AI_AGENT,
            {"status": status.value, "data": data},
            trace_id=trace_id,
        )

    async def post_customer_message(
        self,
        session_id: str,
        message: str,
        *,
        source: EventSource = EventSource.CUSTOMER,
        participant: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Event:
        """Append a customer message, acknowledge it, and start the agent's turn."""
        if source not in CUSTOMER_SOURCES:
            raise ValidationError(f"a customer message cannot have source {source.value!r}")
        if not message.strip():
            raise ValidationError("the message is empty")
        if len(message) > self.options.max_message_chars:
            raise PayloadTooLargeError(
                f"the message has {len(message)} characters; the limit is "
                f"{self.options.max_message_chars}"
            )
        session = await self.store.get(Session, session_id)
        data: dict[str, Any] = {"message": message}
        if participant:
            data["participant"] = participant
        # The customer message carries the trace id of the turn it starts, as Parlant's do.
        trace_id = new_id()
        auto = session.mode is SessionMode.AUTO
        if auto:
            # Its embeddings are computed (in a worker thread) while the turn starts.
            self._warm([message, *sentences(message)])
        # The message, its acknowledgement and its turn are written together, and the turns
        # it supersedes are told in the same transaction: nothing answers it half-way.
        async with self.store.transaction():
            event = await self.store.append_event(
                session_id,
                kind=EventKind.MESSAGE,
                source=source,
                data=data,
                trace_id=trace_id,
                metadata=metadata,
            )
            written = [event]
            superseded: list[TurnRecord] = []
            record: TurnRecord | None = None
            if auto:
                written.append(
                    await self._status_event(session_id, SessionStatus.ACKNOWLEDGED, trace_id)
                )
                record = TurnRecord(
                    id=trace_id,
                    session_id=session_id,
                    customer_offset=event.offset,
                    creation_utc=utcnow(),
                )
                await self.turns.create(record)
                superseded = await self.turns.supersede(session_id, newer=trace_id, now=utcnow())
                for old in superseded:
                    if old.status is TurnStatus.SUPERSEDED:  # it never ran: it ends here
                        written.append(
                            await self._status_event(session_id, SessionStatus.CANCELLED, old.id)
                        )
        for e in written:
            self.bus.publish(session_id, e.offset)
        if record is not None:
            await self.runner.submit(record, superseded)
        return event

    async def _status_event(self, session_id: str, status: SessionStatus, trace_id: str) -> Event:
        """A status event, written in the caller's transaction (published by the caller)."""
        return await self.store.append_event(
            session_id,
            kind=EventKind.STATUS,
            source=EventSource.AI_AGENT,
            data={"status": status.value, "data": {}},
            trace_id=trace_id,
        )

    # -- turns ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start running turns: those posted from now on, and those nobody runs."""
        self.runner.start()

    def _warm(self, texts: list[str]) -> None:
        """Embed texts in the background, ahead of the turn that needs them."""
        task = asyncio.create_task(self.cache.warm(texts))
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    async def wait_idle(self, session_id: str | None = None) -> None:
        """Wait for this process's turns (of one session, or all) to finish."""
        await self.runner.wait_idle(session_id)

    async def close(self, grace_s: float | None = None) -> None:
        """Stop running turns: the running ones get ``grace_s`` (default: the runner's drain
        grace) to finish; the rest are given back for another worker or the next start."""
        grace = self.options.runner.drain_grace_s if grace_s is None else grace_s
        await self.runner.drain(grace)
        for task in list(self._warming):
            task.cancel()
        await asyncio.gather(*self._warming, return_exceptions=True)
        await self.tools.close()

    async def _execute(self, turn: Turn) -> TurnStatus:
        """Run one claimed turn and write its terminal status: ready, error and ready, or
        cancelled when a newer message superseded it (the runner asked, or the reply was
        refused). A turn stopped for another reason (draining, lost lease) writes nothing."""
        session_id = turn.session_id
        trace = Trace(
            id=turn.trace_id,
            session_id=session_id,
            agent_id="",
            customer_event_offset=turn.record.customer_offset,
            tier=self.tier,
            attempt=turn.record.attempts,
        )
        rec = TraceRecorder(trace)
        try:
            await self._pipeline(session_id, turn, rec)
            return TurnStatus.DONE
        except (Superseded, asyncio.CancelledError) as e:
            if not isinstance(e, Superseded) and turn.stop != "superseded":
                raise
            trace.status = "cancelled"
            await asyncio.shield(self._finish_cancelled(session_id, trace))
            return TurnStatus.SUPERSEDED
        except NotFoundError as e:
            # The session (or its agent) was deleted while the turn ran: nothing to answer.
            log.info("turn %s dropped: %s", turn.trace_id, e)
            trace.status = "dropped"
            return TurnStatus.DROPPED
        except Exception as e:
            # A failing turn degrades to an error status; the server keeps serving.
            log.exception("turn %s failed", turn.trace_id)
            trace.status = "error"
            trace.error = f"{type(e).__name__}: {e}"
            await _completed(turn, self._finish_failed(session_id, trace))
            return TurnStatus.FAILED
        finally:
            self._deferred.pop(turn.trace_id, None)

    async def _superseded(self, turn: Turn) -> None:
        """A turn that a newer message superseded before it ran here (its worker died)."""
        trace = Trace(
            id=turn.trace_id,
            session_id=turn.session_id,
            agent_id="",
            customer_event_offset=turn.record.customer_offset,
            tier=self.tier,
            status="cancelled",
            attempt=turn.record.attempts,
        )
        await self._finish_cancelled(turn.session_id, trace)

    async def _recover_emitted(self, turn: Turn) -> None:
        """Its worker died after the reply went out: complete a reply left half-streamed, keep
        the trace if it was saved (else record that it was lost), and write ready."""
        session_id = turn.session_id
        replies = await self.store.list_events(
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
                await self.store.update_event_data(session_id, reply.id, data)
                self.bus.publish(session_id, reply.offset)
        if await self.store.find(Trace, turn.trace_id) is None:
            trace = Trace(
                id=turn.trace_id,
                session_id=session_id,
                agent_id="",
                customer_event_offset=turn.record.customer_offset,
                tier=self.tier,
                status="done",
                attempt=turn.record.attempts,
                message_event_id=reply.id if reply is not None else None,
                error="the process that sent this reply stopped before it saved the trace",
            )
            await self._save_trace(trace)
        await self.status(session_id, SessionStatus.READY, turn.trace_id)

    async def _finish_cancelled(self, session_id: str, trace: Trace) -> None:
        with contextlib.suppress(Exception):
            await self.status(session_id, SessionStatus.CANCELLED, trace.id)
        await self._save_trace(trace)

    async def _finish_failed(self, session_id: str, trace: Trace) -> None:
        await self._save_trace(trace)
        with contextlib.suppress(Exception):
            await self.status(session_id, SessionStatus.ERROR, trace.id, exception=trace.error)
            await self.status(session_id, SessionStatus.READY, trace.id)

    async def _save_trace(self, trace: Trace) -> None:
        deferred = self._deferred.pop(trace.id, None)
        try:
            if deferred is not None:
                deferred()
            await self.store.upsert(trace)
        except Exception:
            log.exception("could not save trace %s", trace.id)

    async def _pipeline(self, session_id: str, turn: Turn, rec: TraceRecorder) -> None:
        trace = rec.trace
        await self.status(session_id, SessionStatus.PROCESSING, trace.id, stage="interpreting")
        async with rec.stage("context"):
            # What this turn answers: the timeline up to its own customer message.
            ctx = await load_context(
                self.store, session_id, self.snapshots, up_to=turn.record.customer_offset
            )
        trace.agent_id = ctx.agent.id
        preamble = Preamble(self.append, ctx, trace)
        if trace.attempt > 1:
            preamble.stop()  # run again after a worker died: its preamble may be out already
        else:
            preamble.start()
        try:
            await self._reply(session_id, turn, rec, ctx, preamble)
        finally:
            preamble.stop()

    async def _reply(
        self,
        session_id: str,
        turn: Turn,
        rec: TraceRecorder,
        ctx: TurnContext,
        preamble: Preamble,
    ) -> None:
        trace = rec.trace
        view = MatchContext.of(ctx)
        # The agent's retrievers run while the turn decides what applies.
        agent_retrieval = asyncio.create_task(
            self.retrievers.run(view, [f"agent:{ctx.agent.id}"]), name=f"retrieve:{trace.id}"
        )
        try:
            async with rec.stage("glossary"):
                terms = await glossary.relevant_terms(ctx, self.cache)
            if terms:
                trace.composition["glossary"] = [
                    {"term": t.term.name, "why": t.why, "score": round(t.score, 4)} for t in terms
                ]
            matched, clarification, values, journeys = await self._decide(
                ctx, rec, glossary.for_prompt(terms)
            )
        except BaseException:
            agent_retrieval.cancel()
            raise
        # Those of the active guidelines and followed journeys run while the tools run.
        owners = [
            gid if gid.startswith("journey:") else f"guideline:{gid}"
            for gid in (m.ranked.guideline.id for m in matched)
        ]
        scoped_retrieval = asyncio.create_task(self.retrievers.run(view, owners))
        try:
            async with rec.stage("tools"):
                findings = await self.tool_stage.run(
                    ctx, matched, trace, before=preamble.before_tools
                )
                matched = await self._journeys_after_tools(ctx, rec, matched, findings, journeys)
                if findings.results:
                    matched, findings = await self.tool_stage.reevaluate(
                        ctx, matched, findings, rec
                    )
                # Variables the reply may need: named by a matched guideline or close to the talk.
                named = [
                    t
                    for m in matched
                    for t in (m.ranked.guideline.condition, m.ranked.guideline.action or "")
                ]
                relevant = await variables.relevant(values, ctx, self.cache, texts=named)
                findings.notes = variables.for_prompt(relevant)
        except BaseException:
            scoped_retrieval.cancel()
            raise
        # Both ran concurrently with earlier stages; each one's time is in the trace.
        retrieved = await agent_retrieval
        retrieved.extend(await scoped_retrieval)
        if retrieved.items:
            trace.composition["retrievers"] = [r.describe() for r in retrieved.items]
        # Templates may use every variable found; a retriever's field wins over a variable,
        # and a tool's result over both.
        findings.fields = {**variables.fields(values), **retrieved.fields(), **findings.fields}
        matched = matched + transient_guidelines(retrieved, trace)
        await self.status(session_id, SessionStatus.TYPING, trace.id)
        participant = {"id": ctx.agent.id, "display_name": ctx.agent.name}
        streaming = self._streams(ctx, clarification)
        stream = (
            _Stream(self, session_id, trace.id, participant, turn, preamble) if streaming else None
        )
        async with rec.stage("compose"):
            reply = await self.composer.compose(
                ctx,
                matched,
                rec,
                clarification=clarification,
                tools=findings,
                paused=journeys[1].paused,
                glossary=glossary.for_prompt(terms),
                retrieved=retrieved.for_prompt(),
                extra_templates=[
                    CannedResponse(id=f"retriever:{name}:{i}", value=template)
                    for i, (name, template) in enumerate(retrieved.templates())
                ],
                stream=stream,
            )
        if stream is not None and stream.event is not None:
            trace.composition["streamed"] = {"chunks": len(stream.chunks), "ok": reply.streamed}
        trace.composition.update(
            {
                "method": reply.method,
                "canned_response_id": reply.canned_response_id,
                "canned_response_ids": reply.canned_response_ids,
                "applied_guideline_ids": reply.applied_guideline_ids,
                **reply.details,
            }
        )
        preamble.stop()
        outcome = journeys[1]
        data: dict[str, Any] = {
            "message": reply.text,
            "participant": participant,
            "canned_responses": reply.canned_response_ids,
            "guidelines": reply.applied_guideline_ids,
        }
        streamed = stream.event if stream is not None else None
        if streamed is not None and stream is not None:
            # The streamed event becomes the whole reply; None marks the end of its chunks.
            # (A stream that failed midway is replaced by the reply the turn degraded to.)
            pieces = stream.chunks if reply.streamed else [reply.text]
            data["chunks"] = [*pieces, None]
        message = await _shielded(
            self._emit_reply(
                turn,
                data,
                outcome if outcome.changed(ctx.progress) else None,
                streamed=streamed,
            )
        )
        trace.message_event_id = message.id
        # The next turn's window holds this reply: embed it now, off that turn's path.
        self._warm([str(data.get("message") or "")])
        if errors := await self.hooks.fire_message(MatchContext.of(ctx), message):
            trace.composition["hook_errors"] = errors
        trace.status = "done"
        # Saved before "ready", so a client that reads the trace on "ready" finds it.
        await asyncio.shield(self._save_trace(trace))
        await asyncio.shield(self.status(session_id, SessionStatus.READY, trace.id))

    async def _emit_reply(
        self,
        turn: Turn,
        data: dict[str, Any],
        journeys: JourneyOutcome | None,
        *,
        streamed: Event | None = None,
    ) -> Event:
        """Append the agent's message (or complete the one streamed so far) and, in the same
        transaction, the session's journey progress: a turn that never replied changes no
        journey. The turn's record says the reply went out in that transaction too, so a turn
        replies once, and never after a newer message superseded it (``Superseded``)."""
        session_id, trace_id = turn.session_id, turn.trace_id
        async with self.store.transaction():
            if streamed is not None:
                event = await self.store.update_event_data(session_id, streamed.id, data)
            else:
                event = await self.store.append_event(
                    session_id,
                    kind=EventKind.MESSAGE,
                    source=EventSource.AI_AGENT,
                    data=data,
                    trace_id=trace_id,
                )
            # After the append, which locks the session first, as a posted message does: the
            # two transactions never wait for each other's locks in opposite orders.
            await turn.start_emitting()
            if journeys is not None:
                await self.store.upsert(journeys.progress)
        self.bus.publish(session_id, event.offset)
        return event

    def _streams(self, ctx: TurnContext, clarification: Clarification | None) -> bool:
        """Whether this turn's reply may stream: the agent asks for it, the model can, and no
        rule about the reply itself needs to review the draft before it goes out."""
        return (
            ctx.agent.message_output_mode is MessageOutputMode.STREAM
            and self.generator is not None
            and self.generator.supports_streaming
            and clarification is None
            and not any(g.action and about_reply(g) for g in ctx.guidelines)
        )

    async def _journeys_after_tools(
        self,
        ctx: TurnContext,
        rec: TraceRecorder,
        matched: list[Match],
        findings: ToolFindings,
        journeys: tuple[JourneyPlan, JourneyOutcome],
    ) -> list[Match]:
        """Journeys at a tool state whose tools ran go on from it, with the results in view;
        a tool state reached that way runs too (within the agent's iteration bound)."""
        plan, outcome = journeys
        ran = {tool for tool, _ in findings.results}
        specs = self.tool_stage.specs()
        for _ in range(max(1, ctx.agent.max_engine_iterations)):
            if not ran or not outcome.projected:
                break
            again = await self.follower.after_tools(
                ctx,
                plan,
                outcome,
                ran,
                findings.results,
                rec,
                self.model_matcher,
                specs,
                offset=rec.trace.customer_event_offset,
            )
            matched = _with_journeys(matched, outcome)
            if not again:
                break
            more = await self.tool_stage.run(ctx, [outcome.projected[j] for j in again], rec.trace)
            findings.merge(more)
            ran = {tool for tool, _ in more.results}
        rec.trace.journeys = list(outcome.steps)
        rec.trace.final_guideline_ids = [m.ranked.guideline.id for m in matched]
        return matched

    async def _decide(
        self, ctx: TurnContext, rec: TraceRecorder, terms: str = ""
    ) -> tuple[
        list[Match],
        Clarification | None,
        list[variables.VariableValue],
        tuple[JourneyPlan, JourneyOutcome],
    ]:
        """Retrieve, match and resolve: which guidelines and journey steps the reply follows,
        and why."""
        trace = rec.trace
        by_id = {g.id: g for g in ctx.guidelines}
        coded = {gid for gid in self.hooks.matchers if gid in by_id}
        async with rec.stage("retrieve"):
            # Conditions about the agent's own reply are checked against the draft instead.
            checkable = [
                g
                for g in ctx.guidelines
                if not g.always and g.id not in coded and not about_reply(g)
            ]
            # Context variables (tool-backed ones refreshed when stale) load while ranking runs.
            async with asyncio.TaskGroup() as group:
                values_task = group.create_task(
                    variables.resolve_values(
                        self.store, ctx, registry=self.tools, timeout_s=self.options.tool_timeout_s
                    )
                )
                ranked = await self.retriever.rank(ctx, checkable)
            values = values_task.result()
            if values:
                trace.composition["variables"] = [v.describe() for v in values]
            specs = self.tool_stage.specs()
            # Journeys in play; guidelines scoped to the other journeys are not checked.
            journeys = journey_plan.plan(ctx, ranked)
            ranked = [r for r in ranked if r.guideline.id not in journeys.hidden]
            chosen = select_candidates(
                ranked,
                journey_scope=journeys.scope,
                k=self.options.detailed_k,
                recent_matches=ctx.recent_matches(),
                dependency_closure=dependency_targets(ctx.relationships, ctx.guidelines),
                # Their arguments are inferred in the same wave, which needs a detailed check.
                forced={g.id: "has tools" for g in checkable if any(t in specs for t in g.tools)},
            )
        # The trace's candidate records (one per guideline) are written when the trace is
        # saved, after the reply: building a thousand of them is not the customer's wait.
        limit = None if self.model_matcher is not None else self.options.trace_candidates
        self._deferred[trace.id] = lambda: setattr(trace, "candidates", chosen.candidates()[:limit])
        match_ctx = MatchContext.of(ctx)
        async with rec.stage("match"):
            code_task = asyncio.ensure_future(
                self.hooks.run_matchers(match_ctx, guideline_ids=sorted(coded))
            )
            if self.model_matcher is not None:
                named = [
                    t
                    for r in chosen.detailed
                    for t in (r.guideline.condition, r.guideline.action or "")
                ]
                shown = await variables.relevant(values, ctx, self.cache, texts=named)
                listed = await self.tool_stage.with_choices(specs, chosen.detailed, ctx, trace)
                conditions = {g.id: g.condition for g in ctx.guidelines}
                titles = {j.id: j.title for j in ctx.journeys}
                outcome = await self.model_matcher.match(
                    ctx,
                    chosen.detailed,
                    chosen.screened,
                    rec,
                    applied_before=ctx.applied_before,
                    tools=listed,
                    notes=variables.for_prompt(shown),
                    glossary=terms,
                    journeys=[
                        (i.number, journey_plan.render(i, specs, conditions, titles))
                        for i in journeys.listed
                    ],
                )
                verdicts = outcome.verdicts
                answers: dict[int, JourneyCheck] | None = outcome.journeys
                if outcome.failures:
                    trace.composition["match_failures"] = outcome.failures
            else:
                verdicts = self.offline_matcher.match(ranked)
                answers = None
            code = await code_task
        if code.errors:
            trace.composition["matcher_errors"] = code.errors
        verdicts += [
            MatchVerdict(
                guideline_id=gid,
                condition=by_id[gid].condition,
                action=by_id[gid].action,
                applies=applies,
                score=1.0 if applies else 0.0,
                rationale="decided by its code matcher",
                method="code",
            )
            for gid, applies in code.items()
        ]
        async with rec.stage("journeys"):
            moved = await self.follower.decide(
                ctx, journeys, verdicts, answers, specs, offset=trace.customer_event_offset
            )
        # Guidelines scoped to a journey that is not live now do not apply.
        live = {jid for jid, run in moved.progress.runs.items() if run.live}
        off_scope = {
            g.id
            for g in ctx.guidelines
            for t in g.tags
            if t.startswith("journey:") and t.removeprefix("journey:") not in live
        }
        # A followed journey is a synthetic guideline; relationships with its tag apply to it.
        projected = {m.ranked.guideline.id: m for m in moved.projected.values()}
        by_id_all = {**by_id, **{gid: m.ranked.guideline for gid, m in projected.items()}}
        scores = {
            v.guideline_id: v.score or 0.0
            for v in verdicts
            if v.applies and v.guideline_id not in off_scope
        }
        scores.update({gid: m.verdict.score or 1.0 for gid, m in projected.items()})
        async with rec.stage("resolve"):
            resolution = resolve(
                scores,
                by_id_all,
                journey_relationships(ctx.relationships, journeys.graphs),
            )
        for jid, m in list(moved.projected.items()):
            if m.ranked.guideline.id not in resolution.active:
                self.follower.suppress(ctx, journeys, moved, jid)
        trace.journeys = moved.steps
        trace.matches = [v for v in verdicts if v.applies] + [
            v for v in verdicts if not v.applies and (v.tier == 1 or v.method != "model")
        ][: max(self.options.trace_candidates, len(chosen.detailed))]
        trace.resolution = resolution.steps
        trace.final_guideline_ids = resolution.active
        ranked_by_id = {r.guideline.id: r for r in ranked}
        verdict_by_id = {v.guideline_id: v for v in verdicts}
        matched = []
        for gid in resolution.active:
            if gid in projected:
                if gid in {m.ranked.guideline.id for m in moved.projected.values()}:
                    matched.append(projected[gid])
                    trace.matches.append(projected[gid].verdict)
                continue
            g = by_id[gid]
            score = resolution.scores.get(gid, 0.0)
            verdict = verdict_by_id.get(gid) or MatchVerdict(
                guideline_id=gid,
                condition=g.condition,
                action=g.action,
                applies=True,
                score=score,
                rationale="activated by a relationship (see resolution)",
                method="resolution",
            )
            if gid not in verdict_by_id:
                trace.matches.append(verdict)  # so the trace names what a relationship added
            matched.append(Match(ranked_by_id.get(gid) or Ranked(g, score, score), verdict))
        if errors := await self.hooks.fire_selected(
            match_ctx, [m.ranked.guideline for m in matched]
        ):
            trace.composition["hook_errors"] = errors
        return matched, resolution.clarification, values, (journeys, moved)


def _shielded(work: Awaitable[Event]) -> Awaitable[Event]:
    """``asyncio.shield``, whose work's outcome is still taken when the waiter was cancelled
    (a refused reply raises ``Superseded`` after the turn already stopped)."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return asyncio.shield(task)


async def _completed(turn: Turn, ending: Awaitable[None]) -> None:
    """Write a turn's ending even when a stop lands meanwhile (a newer message superseded the
    turn as it failed): a turn always ends with its terminal status."""
    task = asyncio.ensure_future(ending)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        if turn.stop is None:
            raise  # not ours: the process is shutting down


def transient_guidelines(retrieved: RetrievedSet, trace: Trace) -> list[Match]:
    """The guidelines retrievers said apply this turn, as matches (they are not checked)."""
    found = []
    for i, (name, g) in enumerate(retrieved.guidelines()):
        guideline = Guideline(id=f"retriever:{name}:{i}", condition=g.condition, action=g.action)
        verdict = MatchVerdict(
            guideline_id=guideline.id,
            condition=g.condition,
            action=g.action,
            applies=True,
            score=1.0,
            rationale=f"given by the retriever {name!r} for this turn",
            method="retriever",
        )
        trace.matches.append(verdict)
        trace.final_guideline_ids.append(guideline.id)
        found.append(Match(Ranked(guideline, 1.0, 1.0), verdict))
    return found


def _with_journeys(matched: Sequence[Match], outcome: JourneyOutcome) -> list[Match]:
    """``matched`` with each journey's synthetic guideline as ``outcome`` now projects it."""
    synthetic = {m.ranked.guideline.id: m for m in outcome.projected.values()}
    kept = [
        m
        for m in matched
        if not m.ranked.guideline.id.startswith("journey:") or m.ranked.guideline.id in synthetic
    ]
    seen = {m.ranked.guideline.id for m in kept}
    result = [synthetic.get(m.ranked.guideline.id, m) for m in kept]
    return result + [m for gid, m in synthetic.items() if gid not in seen]


def dependency_targets(
    relationships: Sequence[Relationship], guidelines: Sequence[Guideline]
) -> Callable[[Collection[str]], set[str]]:
    """For candidate selection: the guidelines that the given ones depend on (tags expanded)."""
    members = guidelines_by_tag(guidelines)
    edges: dict[str, set[str]] = {}
    for r in relationships:
        if r.kind not in (RelationshipKind.DEPENDENCY, RelationshipKind.DEPENDENCY_ANY):
            continue
        if r.source.kind is not EndpointKind.GUIDELINE:
            continue
        ends = members.get(r.target.id, []) if r.target.kind is EndpointKind.TAG else [r.target.id]
        edges.setdefault(r.source.id, set()).update(ends)

    def depended_on(ids: Collection[str]) -> set[str]:
        return {t for gid in ids for t in edges.get(gid, ())}

    return depended_on


def guideline_texts(guidelines: Iterable[Guideline]) -> list[str]:
    """Conditions and actions: a context variable they name is always relevant."""
    return [t for g in guidelines for t in (g.condition, g.action or "") if t]
