"""The turn pipeline: the stages of ``ARCHITECTURE.md`` in order, one call each, typed results.

1. Ingest happens at the edge (``Engine.post_customer_message``): the message, its
   acknowledgement and its turn are written together; the runner claims the turn and
   ``TurnLifecycle`` runs it here.
2. ``context``: the agent's definitions, the customer, the timeline up to this turn's message.
   A message moderation flagged may end the turn here, refused or handed off with no model
   call (``engine.moderation``).
3. ``retrieve``: rank guidelines, terms, capabilities and journeys; load context variables;
   pick the guidelines checked in detail and those screened.
4. ``match``: the model's checks (or the offline threshold), code matchers, journey steps.
5. ``resolve``: relationships decide what is active, deterministically.
6. ``act``: the tools the active guidelines and journeys allow, and the retrievers.
7. ``compose``: the reply, free or from canned responses, streamed where it can be.
8. ``emit``: the message, the journey progress, the trace, then ``ready``.

Each stage's time is in the trace under its name (``glossary``, ``capabilities`` and
``journeys`` are timed apart inside ``retrieve`` and ``match``). An agent's stage hooks run
around the stages and may end the turn early (``engine.stage_hooks``, docs/hooks.md); each
stage's result is a type of ``engine.stages``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tactful.domain import (
    Clarification,
    Event,
    MatchMethod,
    MatchVerdict,
    MessageOutputMode,
    ReplyMethod,
    StreamedReply,
    TermFound,
)
from tactful.engine import capabilities, glossary, variables
from tactful.engine.candidates import select_candidates
from tactful.engine.compose import Composer
from tactful.engine.context import SnapshotCache, TurnContext, load_context
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.emit import ReplyStream, conclude, emit_reply, session_labels, shielded
from tactful.engine.handoff import Handoffs
from tactful.engine.hooks import Hooks, MatchContext
from tactful.engine.journeys import (
    Follower,
    journey_relationships,
    journeys_after_tools,
    off_scope_of,
)
from tactful.engine.journeys import plan as journey_plan
from tactful.engine.match import JourneyCheck, OfflineMatcher
from tactful.engine.moderation import ModerationPolicy
from tactful.engine.options import EngineOptions
from tactful.engine.preamble import Preamble
from tactful.engine.prepared import PreparedSnapshots
from tactful.engine.proactive import read_request, requested_guidelines, without_answered
from tactful.engine.resolve import Resolution, resolve
from tactful.engine.resolved import resolved_matches
from tactful.engine.retrieve import Retriever
from tactful.engine.retrievers import RetrievedSet, Retrievers, transient_guidelines
from tactful.engine.runner import Turn
from tactful.engine.self_check import about_reply
from tactful.engine.stage_hooks import Bailed, TurnHooks, end_bailed
from tactful.engine.stages import Action, Composed, Decision, Matching, Retrieval
from tactful.engine.timeline import Timeline
from tactful.engine.tool_stage import ToolStage
from tactful.engine.tools import ToolFindings
from tactful.engine.trace import TraceRecorder
from tactful.llm.base import Generator


class Pipeline:
    """One turn's stages over the ports."""

    def __init__(
        self,
        timeline: Timeline,
        cache: EmbeddingCache,
        generator: Generator | None,
        options: EngineOptions,
        *,
        hooks: Hooks,
        retrievers: Retrievers,
        tool_stage: ToolStage,
        handoffs: Handoffs,
    ) -> None:
        self.timeline = timeline
        self.store = timeline.store
        self.cache = cache
        self.generator = generator
        self.options = options
        self.hooks = hooks
        self.retrievers = retrievers
        self.tool_stage = tool_stage
        # Agent definitions in memory, read again when the store's revision moves, and what
        # every turn works out from them.
        self.snapshots = SnapshotCache()
        self.prepared = PreparedSnapshots()
        self.retriever = Retriever(cache)
        self.offline_matcher = OfflineMatcher(options.offline_threshold)
        self.model_matcher = tool_stage.model_matcher
        self.composer = Composer(cache, generator, options.template_limits)
        self.follower = Follower(cache, options.journey_condition_threshold, hooks)
        self.moderation = ModerationPolicy(timeline, options.moderation, handoffs)
        self.handoffs = handoffs

    async def run(self, turn: Turn, rec: TraceRecorder) -> None:
        """The stages in order, for one claimed turn (its claim wrote ``processing``); a stage
        hook that bails ends it early."""
        try:
            await self.run_stages(turn, rec)
        except Bailed as bailed:
            await end_bailed(self.timeline, self.handoffs, turn, rec, bailed.bail)

    async def run_stages(self, turn: Turn, rec: TraceRecorder) -> None:
        """The stages in order, each between its stage hooks."""
        trace = rec.trace
        ctx = await self.context(turn, rec)
        # A message moderation flagged may be refused or handed off here, before any model call.
        if await self.moderation.handle(turn, ctx, rec):
            return
        stages = TurnHooks(self.hooks, ctx, rec)
        await stages.fire("after", "context")
        preamble = Preamble(self.timeline.append, ctx, trace)
        if trace.attempt > 1 or ctx.proactive is not None:
            # Run again after a worker died: its preamble may be out already. A proactive
            # turn keeps nobody waiting.
            preamble.stop()
        else:
            preamble.start()
        # The agent's retrievers run while the turn decides what applies.
        agent_retrieval = asyncio.create_task(
            self.retrievers.run(MatchContext.of(ctx), [f"agent:{ctx.agent.id}"]),
            name=f"retrieve:{trace.id}",
        )
        try:
            retrieval = await stages.run("retrieve", self.retrieve(ctx, rec))
            matching = await stages.run("match", self.match(ctx, retrieval, rec))
            decision = await stages.run("resolve", self.resolve(ctx, retrieval, matching, rec))
            action = await stages.run(
                "act", self.act(ctx, retrieval, matching, decision, rec, preamble, agent_retrieval)
            )
            composed = await stages.run(
                "compose",
                self.compose(turn, ctx, retrieval, matching, decision, action, rec, preamble),
            )
            preamble.stop()
            if ctx.proactive is not None and composed.reply.method is ReplyMethod.NO_MATCH:
                # Nothing to say unprompted: the turn ends without a message.
                await conclude(self.timeline, rec, turn)
                return
            await stages.run("emit", self.emit(turn, ctx, matching, action, composed, rec))
            await conclude(self.timeline, rec, turn)
        finally:
            preamble.stop()
            agent_retrieval.cancel()

    # -- 2. context -----------------------------------------------------------------------------

    async def context(self, turn: Turn, rec: TraceRecorder) -> TurnContext:
        async with rec.stage("context"):
            # What this turn answers: the timeline up to its own customer message.
            ctx = await load_context(
                self.store, turn.session_id, self.snapshots, up_to=turn.record.customer_offset
            )
            if not ctx.answers(turn.record.customer_offset):
                # No customer message there: a proactive turn, opened by its request.
                ctx.proactive = await read_request(self.store, turn)
        rec.trace.agent_id = ctx.agent.id
        rec.trace.proactive = ctx.proactive
        return ctx

    # -- 3. retrieve ----------------------------------------------------------------------------

    async def retrieve(self, ctx: TurnContext, rec: TraceRecorder) -> Retrieval:
        trace = rec.trace
        async with rec.stage("glossary"):
            terms = await glossary.relevant_terms(ctx, self.cache)
        if terms:
            trace.composition.glossary = [
                TermFound(term=t.term.name, why=t.why, score=round(t.score, 4)) for t in terms
            ]
        async with rec.stage("capabilities"):
            offered = await capabilities.relevant_capabilities(ctx, self.cache)
        if offered:
            trace.composition.capabilities = capabilities.traced(offered)
        prepared = self.prepared.get(ctx)
        coded = sorted(gid for gid in self.hooks.matchers if gid in prepared.by_id)
        async with rec.stage("retrieve"):
            checkable = prepared.checkable(coded)
            # Context variables (tool-backed ones refreshed when stale) load while ranking runs.
            async with asyncio.TaskGroup() as group:
                values_task = group.create_task(
                    variables.resolve_values(
                        self.store,
                        ctx,
                        registry=self.tool_stage.registry,
                        timeout_s=self.options.tool_timeout_s,
                    )
                )
                ranked = await self.retriever.rank(ctx, checkable)
            values = values_task.result()
            if values:
                trace.composition.variables = [v.describe() for v in values]
            specs = self.tool_stage.specs()
            # Journeys in play; guidelines scoped to the other journeys are not checked.
            journeys = journey_plan.plan(ctx, ranked, journey_of=prepared.journey_of)
            if journeys.hidden:
                ranked = ranked.without(journeys.hidden)
            chosen = select_candidates(
                ranked,
                journey_scope=journeys.scope,
                k=self.options.detailed_k,
                max_forced=self.options.max_forced,
                recent_matches=ctx.recent_matches(),
                # Conditions about the conversation's course are forced once they can hold.
                prior=ctx.prior_roles(),
                dependency_closure=prepared.dependencies,
                # Their arguments are inferred in the same wave, which needs a detailed check.
                forced=prepared.forced(specs),
                fixed=prepared.fixed,
            )
        # The trace's candidate records (one per guideline) are written when the trace is
        # saved, after the reply: building a thousand of them is not the customer's wait.
        limit = None if self.model_matcher is not None else self.options.trace_candidates
        rec.defer(lambda: setattr(trace, "candidates", chosen.candidates(limit)))
        return Retrieval(ranked, chosen, journeys, values, terms, specs, coded, offered)

    # -- 4. match -------------------------------------------------------------------------------

    async def match(self, ctx: TurnContext, found: Retrieval, rec: TraceRecorder) -> Matching:
        trace = rec.trace
        async with rec.stage("match"):
            code_task = asyncio.ensure_future(
                self.hooks.run_matchers(MatchContext.of(ctx), guideline_ids=found.coded)
            )
            try:
                verdicts, answers = await self._verdicts(ctx, found, rec)
            except BaseException:
                code_task.cancel()
                raise
            code = await code_task
        if code.errors:
            trace.composition.matcher_errors = code.errors
        verdicts += [
            MatchVerdict(
                guideline_id=gid,
                condition=ctx.guideline(gid).condition,
                action=ctx.guideline(gid).action,
                applies=applies,
                score=1.0 if applies else 0.0,
                rationale="decided by its code matcher",
                method=MatchMethod.CODE,
            )
            for gid, applies in code.items()
        ]
        async with rec.stage("journeys"):
            moved = await self.follower.decide(
                ctx,
                found.journeys,
                verdicts,
                answers,
                found.specs,
                offset=trace.customer_event_offset,
            )
        return Matching(verdicts, moved)

    async def _verdicts(
        self, ctx: TurnContext, found: Retrieval, rec: TraceRecorder
    ) -> tuple[list[MatchVerdict], dict[int, JourneyCheck] | None]:
        """The model's verdicts (detailed and screened, with journey steps), or the offline
        threshold's."""
        if self.model_matcher is None:
            return self.offline_matcher.match(found.ranked), None
        detailed = found.chosen.detailed
        named = [t for r in detailed for t in (r.guideline.condition, r.guideline.action or "")]
        shown = await variables.relevant(found.values, ctx, self.cache, texts=named)
        listed = await self.tool_stage.with_choices(found.specs, detailed, ctx, rec.trace)
        conditions = self.prepared.get(ctx).conditions
        titles = {j.id: j.title for j in ctx.journeys}
        outcome = await self.model_matcher.match(
            ctx,
            detailed,
            found.chosen.screened,
            rec,
            applied_before=ctx.applied_before,
            tools=listed,
            notes=variables.for_prompt(shown),
            glossary=found.glossary,
            capabilities=found.capabilities,
            journeys=[
                (i.number, journey_plan.render(i, found.specs, conditions, titles))
                for i in found.journeys.listed
            ],
        )
        if outcome.failures:
            rec.trace.composition.match_failures = outcome.failures
        verdicts = outcome.verdicts
        if outcome.failed_ids:
            verdicts = self._degraded(found, verdicts, outcome.failed_ids, rec)
        return verdicts, outcome.journeys

    def _degraded(
        self,
        found: Retrieval,
        verdicts: list[MatchVerdict],
        failed: set[str],
        rec: TraceRecorder,
    ) -> list[MatchVerdict]:
        """The guidelines whose model check failed are decided as the offline tier decides
        (ranking and threshold, over the whole ranking), and the trace says so."""
        offline = {v.guideline_id: v for v in self.offline_matcher.match(found.ranked)}
        decided = []
        for v in verdicts:
            fallback = offline.get(v.guideline_id) if v.guideline_id in failed else None
            if fallback is not None:
                fallback.rationale = f"the model check failed; {fallback.rationale}"
                v = fallback
            decided.append(v)
        reason = f"the model failed for {len(failed)} guideline(s); the offline tier decided them"
        rec.trace.composition.match_degraded = reason
        errors = rec.trace.composition.match_failures
        why = f" ({errors[0]})" if errors else ""
        rec.degraded(f"matching: {reason}{why}")
        return decided

    # -- 5. resolve -----------------------------------------------------------------------------

    async def resolve(
        self, ctx: TurnContext, found: Retrieval, matching: Matching, rec: TraceRecorder
    ) -> Decision:
        trace, moved = rec.trace, matching.journeys
        # Guidelines scoped to a journey that is not live now do not apply.
        prepared = self.prepared.get(ctx)
        outside = off_scope_of(prepared.journey_tags, moved)
        # A followed journey is a synthetic guideline; relationships with its tag apply to it.
        projected = {m.ranked.guideline.id: m for m in moved.projected.values()}
        scores = {
            v.guideline_id: v.score or 0.0
            for v in matching.verdicts
            if v.applies and v.guideline_id not in outside
        }
        scores.update({gid: m.verdict.score or 1.0 for gid, m in projected.items()})
        async with rec.stage("resolve"):
            resolution: Resolution = resolve(
                scores,
                prepared.roster.plus({gid: m.ranked.guideline for gid, m in projected.items()}),
                journey_relationships(ctx.relationships, found.journeys.graphs),
            )
        for jid, m in list(moved.projected.items()):
            if m.ranked.guideline.id not in resolution.active:
                self.follower.suppress(ctx, found.journeys, moved, jid)
        trace.journeys = moved.steps
        verdicts = matching.verdicts
        trace.matches = [v for v in verdicts if v.applies] + [
            v for v in verdicts if not v.applies and (v.tier == 1 or v.method != "model")
        ][: max(self.options.trace_candidates, len(found.chosen.detailed))]
        trace.resolution = resolution.steps
        trace.final_guideline_ids = resolution.active
        matched = resolved_matches(
            ctx, resolution, found.ranked, verdicts, moved, trace, journeys=set(projected)
        )
        if ctx.proactive is not None:
            # What the agent already said since the customer's latest message is not said
            # again on the offline tier's similarity; what the request asks for is.
            matched = without_answered(ctx, matched, trace)
            matched += requested_guidelines(ctx.proactive, trace)
        errors = await self.hooks.fire_selected(
            MatchContext.of(ctx), [m.ranked.guideline for m in matched]
        )
        trace.composition.hook_errors.extend(errors)
        return Decision(matched, resolution.clarification)

    # -- 6. act: tools and retrievers -----------------------------------------------------------

    async def act(
        self,
        ctx: TurnContext,
        found: Retrieval,
        matching: Matching,
        decision: Decision,
        rec: TraceRecorder,
        preamble: Preamble,
        agent_retrieval: asyncio.Task[RetrievedSet],
    ) -> Action:
        trace = rec.trace
        matched = decision.matched
        # The retrievers of the active guidelines and followed journeys run while tools run.
        owners = [
            gid if gid.startswith("journey:") else f"guideline:{gid}"
            for gid in (m.ranked.guideline.id for m in matched)
        ]
        scoped = asyncio.create_task(self.retrievers.run(MatchContext.of(ctx), owners))
        try:
            async with rec.stage("tools"):
                # A proactive turn speaks; it calls no tools (nothing new was asked).
                findings = (
                    ToolFindings()
                    if ctx.proactive is not None
                    else await self.tool_stage.run(
                        ctx, matched, trace, before=preamble.before_tools
                    )
                )
                matched = await journeys_after_tools(
                    self.follower,
                    self.tool_stage,
                    ctx,
                    rec,
                    matched,
                    findings,
                    (found.journeys, matching.journeys),
                )
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
                relevant = await variables.relevant(found.values, ctx, self.cache, texts=named)
                findings.notes = variables.for_prompt(relevant)
            scoped_found = await scoped
        finally:
            scoped.cancel()
        # Both retrievals ran concurrently with earlier stages; each one's time is traced.
        retrieved = await agent_retrieval
        retrieved.extend(scoped_found)
        action = Action(matched, findings, retrieved)
        self._retrieved(action, retrieved, found, rec)
        return action

    def _retrieved(
        self, action: Action, retrieved: RetrievedSet, found: Retrieval, rec: TraceRecorder
    ) -> None:
        """What the retrievers (and tools' results) gave, into the trace, the template fields
        and the guidelines."""
        trace = rec.trace
        retrieved.extend(action.findings.brought)
        action.retrieved = retrieved
        if retrieved.items:
            trace.composition.retrievers = [r.describe() for r in retrieved.items]
        # Templates may use every variable found; a retriever's field wins over a variable,
        # and a tool's result over both.
        action.findings.fields = {
            **variables.fields(found.values),
            **retrieved.fields(),
            **action.findings.fields,
        }
        action.matched = action.matched + transient_guidelines(retrieved, trace)

    # -- 7. compose -----------------------------------------------------------------------------

    async def compose(
        self,
        turn: Turn,
        ctx: TurnContext,
        found: Retrieval,
        matching: Matching,
        decision: Decision,
        action: Action,
        rec: TraceRecorder,
        preamble: Preamble,
    ) -> Composed:
        trace = rec.trace
        participant = {"id": ctx.agent.id, "display_name": ctx.agent.name}
        stream = (
            ReplyStream(self.timeline, turn, participant, preamble)
            if self._streams(ctx, decision.clarification)
            else None
        )
        retrieved = action.retrieved
        async with rec.stage("compose"):
            reply = await self.composer.compose(
                ctx,
                action.matched,
                rec,
                clarification=decision.clarification,
                tools=action.findings,
                paused=matching.journeys.paused,
                glossary=found.glossary,
                capabilities=found.capabilities,
                retrieved=retrieved.for_prompt(),
                extra_templates=retrieved.templates(),
                stream=stream,
                reply_rules=self.prepared.get(ctx).reply_rules,
            )
        if stream is not None and stream.event is not None:
            trace.composition.streamed = StreamedReply(chunks=len(stream.chunks), ok=reply.streamed)
        composition = trace.composition
        composition.method = reply.method
        composition.canned_response_id = reply.canned_response_id
        composition.canned_response_ids = reply.canned_response_ids
        composition.applied_guideline_ids = reply.applied_guideline_ids
        composition.take(reply.details)
        data: dict[str, Any] = {
            "message": reply.text,
            "participant": participant,
            "canned_responses": reply.canned_response_ids,
            "guidelines": reply.applied_guideline_ids,
        }
        if stream is not None and stream.event is not None:
            # The streamed event becomes the whole reply; None marks the end of its chunks.
            # (A stream that failed midway is replaced by the reply the turn degraded to.)
            pieces = stream.chunks if reply.streamed else [reply.text]
            data["chunks"] = [*pieces, None]
        return Composed(reply, data, stream)

    def _streams(self, ctx: TurnContext, clarification: Clarification | None) -> bool:
        """Whether this turn's reply may stream: the agent asks for it, the model can, and no
        rule about the reply itself needs to review the draft before it goes out."""
        return (
            ctx.agent.message_output_mode is MessageOutputMode.STREAM
            and self.generator is not None
            and self.generator.supports_streaming
            and clarification is None
            and not any(g.action and about_reply(g) for g in ctx.guidelines)
            # A hook after compose reviews the draft before it goes out.
            and not self.hooks.stage_hooks(ctx.agent.id, "after", "compose")
        )

    # -- 8. emit --------------------------------------------------------------------------------

    async def emit(
        self,
        turn: Turn,
        ctx: TurnContext,
        matching: Matching,
        action: Action,
        composed: Composed,
        rec: TraceRecorder,
    ) -> Event:
        outcome = matching.journeys
        streamed = composed.stream.event if composed.stream is not None else None
        labels = session_labels(m.ranked.guideline for m in action.matched)
        rec.trace.session_labels = labels
        message = await shielded(
            emit_reply(
                self.timeline,
                turn,
                composed.data,
                outcome.progress if outcome.changed(ctx.progress) else None,
                streamed=streamed,
                labels=labels,
                trace=rec.trace,
            )
        )
        rec.trace.message_event_id = message.id
        # The next turn's window holds this reply: embed it now, off that turn's path.
        self.cache.warm_later([str(composed.data.get("message") or "")])
        rec.trace.composition.hook_errors.extend(
            await self.hooks.fire_message(MatchContext.of(ctx), message)
        )
        return message
