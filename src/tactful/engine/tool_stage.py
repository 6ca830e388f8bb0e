"""Stage 6, tools, in a turn: run the planned calls, write the tool event, re-evaluate what the
results can change, and give choice providers' options to the match prompt."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from tactful.domain import (
    EndpointKind,
    Event,
    EventKind,
    EventSource,
    Reevaluation,
    RelationshipKind,
    SessionControl,
    ToolCallRecord,
    ToolSpec,
    Trace,
)
from tactful.domain.relationships import guidelines_by_tag
from tactful.engine.context import TurnContext, Utterance
from tactful.engine.handoff import Handoffs
from tactful.engine.match import Match, ModelMatcher
from tactful.engine.resolve import resolve
from tactful.engine.retrieve import Ranked
from tactful.engine.retrievers import brought_by
from tactful.engine.tool_updates import ToolUpdates
from tactful.engine.tools import ToolFindings, plan_tool_calls
from tactful.engine.trace import TraceRecorder
from tactful.store.base import Store
from tactful.tools.base import ToolContext
from tactful.tools.registry import ToolRegistry
from tactful.tools.runner import ToolCall, ToolOutcome, run_tools

log = logging.getLogger("tactful.engine")


def _key(call: ToolCall | ToolOutcome) -> tuple[str, str]:
    return call.tool_id, json.dumps(call.arguments, sort_keys=True, default=str)


Append = Callable[..., Awaitable[Event]]


class ToolStage:
    """The tool stage of the turn, over the registry of tools this process can run."""

    def __init__(
        self,
        registry: ToolRegistry,
        store: Store,
        append: Append,
        *,
        timeout_s: float,
        model_matcher: ModelMatcher | None,
        handoffs: Handoffs | None = None,
        updates: ToolUpdates | None = None,
    ) -> None:
        self.registry = registry
        # How a tool changes its customer's and session's metadata, tags and labels.
        self.updates = updates
        # How a tool's ``SessionControl.HANDOFF`` hands the session to a person.
        self.handoffs = handoffs
        self.store = store
        self._append = append
        self.timeout_s = timeout_s
        self.model_matcher = model_matcher

    def specs(self) -> dict[str, ToolSpec]:
        """The tools that can run in this process, by id."""
        return {spec.id: spec for spec in self.registry.specs()}

    async def run(
        self,
        ctx: TurnContext,
        matched: Sequence[Match],
        trace: Trace,
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> ToolFindings:
        """Run the calls the active guidelines need, in parallel; write one ``tool`` event.
        ``before`` is awaited just before calls run (the turn sends its preamble then)."""
        specs = self.specs()
        planned = plan_tool_calls(matched, specs, ctx)
        findings = ToolFindings.of(planned, specs)
        runnable = [p for p in planned if p.blocked is None]
        if planned:
            trace.composition.tool_plan.extend(p.describe() for p in planned)
        if not runnable:
            return findings
        if before is not None:
            await before()
        session_id = ctx.session.id

        context = self.context(ctx, trace)
        wanted = [ToolCall(tool_id=p.tool_id, arguments=p.arguments) for p in runnable]
        done = await self._recorded(session_id, trace, specs) if trace.attempt > 1 else {}
        to_run = [c for c in wanted if _key(c) not in done]
        ran = await run_tools(self.registry, to_run, context, default_timeout_s=self.timeout_s)
        fresh = dict(zip((_key(c) for c in to_run), ran, strict=True))
        outcomes = [done.get(_key(c)) or fresh[_key(c)] for c in wanted]
        if done:
            trace.composition.tool_calls_reused = sorted(k[0] for k in done)
        calls = [o.model_dump(mode="json") for o in outcomes]
        trace.composition.tool_calls.extend(ToolCallRecord.model_validate(c) for c in calls)
        await self._append(
            session_id,
            EventKind.TOOL,
            EventSource.AI_AGENT,
            {"tool_calls": calls},
            trace_id=trace.id,
        )
        for o in outcomes:
            if o.result is None:
                findings.errors.append((o.tool_id, o.error or "failed"))
                continue
            findings.results.append((o.tool_id, o.result.data))
            findings.fields.update(o.result.fields)
            r = o.result
            if brought := brought_by(o.tool_id, r.canned_responses, r.guidelines, o.duration_ms):
                findings.brought.items.append(brought)
            if o.result.control is SessionControl.HANDOFF:
                await self._hand_off(session_id, o, trace)
        return findings

    async def _hand_off(self, session_id: str, outcome: ToolOutcome, trace: Trace) -> None:
        """The tool handed the session to a person: manual mode, with its reason in the trace,
        the session's handoff and the timeline."""
        assert outcome.result is not None and self.handoffs is not None
        reason = outcome.result.handoff_reason or (
            f"the tool {outcome.tool_id} handed the conversation to a person"
        )
        await self.handoffs.hand_off(
            session_id, reason=reason, by=f"tool:{outcome.tool_id}", trace_id=trace.id
        )
        trace.composition.handoff = outcome.tool_id
        trace.composition.handoff_reason = reason

    async def _recorded(
        self, session_id: str, trace: Trace, specs: dict[str, ToolSpec]
    ) -> dict[tuple[str, str], ToolOutcome]:
        """This turn's consequential calls that succeeded in an earlier run of it (its worker
        died after recording them): they are not made again."""
        found: dict[tuple[str, str], ToolOutcome] = {}
        events = await self.store.list_events(session_id, kinds=[EventKind.TOOL], trace_id=trace.id)
        for event in events:
            data = event.data if isinstance(event.data, dict) else {}
            for raw in data.get("tool_calls", []):
                try:
                    outcome = ToolOutcome.model_validate(raw)
                except ValueError:
                    continue
                spec = specs.get(outcome.tool_id)
                if spec is not None and spec.consequential and outcome.result is not None:
                    found[_key(outcome)] = outcome
        return found

    def context(self, ctx: TurnContext, trace: Trace) -> ToolContext:
        session_id = ctx.session.id

        async def emit(kind: str, data: Any) -> None:
            await self._append(
                session_id, EventKind(kind), EventSource.AI_AGENT, data, trace_id=trace.id
            )

        return ToolContext(
            agent_id=ctx.agent.id,
            session_id=session_id,
            customer_id=ctx.customer.id,
            customer_name=ctx.customer.name,
            customer_metadata=dict(ctx.customer.metadata),
            agent=ctx.agent,
            session=ctx.session,
            customer=ctx.customer,
            _emit=emit,
            _update=(
                self.updates.for_turn(session_id, ctx.customer.id, trace)
                if self.updates is not None
                else None
            ),
        )

    async def with_choices(
        self, specs: dict[str, ToolSpec], detailed: Sequence[Ranked], ctx: TurnContext, trace: Trace
    ) -> dict[str, ToolSpec]:
        """Specs of the tools listed this turn, with their choice providers' current options
        as ``enum`` (so the model picks from them)."""
        out = dict(specs)
        listed = {t for r in detailed for t in r.guideline.tools if t in specs}
        for tid in sorted(listed):
            spec = specs[tid]
            properties = spec.parameters.get("properties", {})
            dynamic = [n for n, schema in properties.items() if schema.get("x-tactful-choices")]
            if not dynamic:
                continue
            service = self.registry.get(tid).service
            parameters = copy.deepcopy(spec.parameters)
            for name in dynamic:
                try:
                    choices = await service.choices_for(spec.name, name, self.context(ctx, trace))
                except Exception as e:
                    log.warning("choices of %s.%s failed: %s", tid, name, e)
                    continue
                if choices:
                    parameters["properties"][name]["enum"] = list(choices)
            out[tid] = spec.model_copy(update={"parameters": parameters})
        return out

    async def reevaluate(
        self, ctx: TurnContext, matched: list[Match], findings: ToolFindings, rec: TraceRecorder
    ) -> tuple[list[Match], ToolFindings]:
        """Check again the guidelines a tool's result can change (reevaluation relationships
        from the tool), with the results in view, within the agent's iteration bound; run the
        tools of guidelines that become active."""
        trace = rec.trace
        by_id = {g.id: g for g in ctx.guidelines}
        members = guidelines_by_tag(ctx.guidelines)
        ran = {tool for tool, _ in findings.results}
        iterations = 1
        steps: list[Reevaluation] = []
        while self.model_matcher is not None and iterations < ctx.agent.max_engine_iterations:
            targets = sorted(
                {
                    gid
                    for r in ctx.relationships
                    if r.kind is RelationshipKind.REEVALUATION
                    and r.source.kind is EndpointKind.TOOL
                    and r.source.id in ran
                    for gid in (
                        members.get(r.target.id, [])
                        if r.target.kind is EndpointKind.TAG
                        else [r.target.id]
                    )
                    if gid in by_id
                }
            )
            if not targets:
                break
            iterations += 1
            seen = Utterance(
                role="agent", text=f"[tool results]\n{findings.for_prompt()}", offset=-1
            )
            after = replace(ctx, messages=[*ctx.messages, seen])
            outcome = await self.model_matcher.match(
                after,
                [Ranked(by_id[g], 1.0, 1.0) for g in targets],
                [],
                rec,
                applied_before=ctx.applied_before,
                tools=self.specs(),
            )
            scores = {m.ranked.guideline.id: m.verdict.score or 0.0 for m in matched}
            verdicts = {m.ranked.guideline.id: m.verdict for m in matched}
            for v in outcome.verdicts:
                if v.applies:
                    scores[v.guideline_id], verdicts[v.guideline_id] = v.score or 1.0, v
                else:
                    scores.pop(v.guideline_id, None)
            # Journey steps (synthetic guidelines) are not rechecked: they stay as they are.
            steps_of_journeys = [m for m in matched if m.ranked.guideline.id not in by_id]
            resolution = resolve(scores, by_id, ctx.relationships)
            before = {m.ranked.guideline.id for m in matched}
            matched = [
                Match(Ranked(by_id[g], resolution.scores.get(g, 0.0)), verdicts[g])
                for g in resolution.active
                if g in verdicts
            ] + steps_of_journeys
            trace.final_guideline_ids = [m.ranked.guideline.id for m in matched]
            trace.resolution += resolution.steps
            trace.matches += outcome.verdicts
            newly = [m for m in matched if m.ranked.guideline.id not in before]
            steps.append(
                Reevaluation(
                    iteration=iterations,
                    rechecked=targets,
                    now_active=[m.ranked.guideline.id for m in newly],
                    no_longer_active=sorted(before - {m.ranked.guideline.id for m in matched}),
                )
            )
            more = await self.run(ctx, newly, trace) if newly else ToolFindings()
            findings.merge(more)
            ran = {tool for tool, _ in more.results}
        if steps:
            trace.composition.reevaluations = steps
        return matched, findings
