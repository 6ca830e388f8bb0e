"""Stage hooks around one turn's stages (docs/hooks.md).

``TurnHooks.run`` wraps a stage of the pipeline: the agent's ``before`` hooks, the stage, its
``after`` hooks, in registration order, each within the hook timeout; when the stage raised,
its ``error`` hooks see the error and the error goes on (the turn fails as it would have). A
hook's failure is logged and traced (``composition.hook_errors``), never the turn's. A hook
that returns a ``Bail`` stops the chain and the turn: ``Bailed`` goes up to ``Pipeline.run``,
which ends the turn with ``end_bailed``: silently, or handing the session to a person, with
the bail in the trace and on the ``ready`` status. An agent without stage hooks pays nothing.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from tactful.domain import Event, Guideline, TurnBail
from tactful.engine.context import TurnContext
from tactful.engine.emit import conclude
from tactful.engine.handoff import Handoffs
from tactful.engine.hooks import Hooks, MatchContext, TurnView, When
from tactful.engine.runner import Superseded, Turn
from tactful.engine.stages import Action, Composed, Decision
from tactful.engine.timeline import Timeline
from tactful.engine.trace import TraceRecorder

T = TypeVar("T")


class Bailed(Exception):
    """A stage hook ended the turn (``bail`` says which, where and why)."""

    def __init__(self, bail: TurnBail) -> None:
        super().__init__(f"{bail.hook} bailed {bail.when} {bail.stage}: {bail.reason}")
        self.bail = bail


class TurnHooks:
    """One turn's stage hooks, and what the turn has produced so far for their views."""

    def __init__(self, hooks: Hooks, ctx: TurnContext, rec: TraceRecorder) -> None:
        self.hooks = hooks
        self.rec = rec
        self.active = any(hooks.stages.get(ctx.agent.id, {}).values())
        self.seen = MatchContext.of(ctx) if self.active else None
        self.guidelines: tuple[Guideline, ...] = ()
        self.draft: str | None = None
        self.message: Event | None = None

    async def run(self, stage: str, work: Coroutine[Any, Any, T]) -> T:
        """``work`` (the stage) between its hooks; raises ``Bailed`` when one bails (``work``
        does not run when a ``before`` hook bailed)."""
        if not self.active:
            return await work
        try:
            await self.fire("before", stage)
        except Bailed:
            work.close()
            raise
        try:
            result = await work
        except Superseded:
            raise
        except Exception as e:
            await self.fire("error", stage, error=e)
            raise
        self._take(result)
        await self.fire("after", stage)
        return result

    async def fire(self, when: When, stage: str, *, error: Exception | None = None) -> None:
        """Run the hooks of one moment; raises ``Bailed`` when one bails."""
        base = self.seen
        if base is None or not self.hooks.stage_hooks(
            base.agent_id, when, "*" if when == "error" else stage
        ):
            return
        view = TurnView(
            **{name: getattr(base, name) for name in MatchContext.__dataclass_fields__},
            trace_id=self.rec.trace.id,
            stage=stage,
            when=when,
            guidelines=self.guidelines,
            draft=self.draft,
            message=self.message,
            error=error,
        )
        async with self.rec.stage(f"hooks {when} {stage}"):
            bailed, errors = await self.hooks.run_stage(view)
        self.rec.trace.composition.hook_errors.extend(errors)
        if bailed is not None:
            name, bail = bailed
            record = TurnBail(
                hook=name, stage=stage, when=when, reason=bail.reason, hand_off=bail.hand_off
            )
            self.rec.trace.bailed = record
            raise Bailed(record)

    def _take(self, result: object) -> None:
        """What a stage produced, for the views of the hooks that follow."""
        if isinstance(result, Decision | Action):
            self.guidelines = tuple(
                m.ranked.guideline.model_copy(deep=True) for m in result.matched
            )
        elif isinstance(result, Composed):
            self.draft = result.reply.text or None
        elif isinstance(result, Event):
            self.message = result.model_copy(deep=True)


async def end_bailed(
    timeline: Timeline, handoffs: Handoffs, turn: Turn, rec: TraceRecorder, bail: TurnBail
) -> None:
    """End a turn a stage hook bailed out of: hand the session to a person when the hook asked
    (in the transaction that marks the turn as answered, as moderation does), then the trace
    and ``ready``, whose data says ``bailed``."""
    if bail.hand_off:
        reason = bail.reason or f"{bail.hook} handed off {bail.when} {bail.stage}"
        async with timeline.store.transaction():
            await turn.start_emitting()
            written = await handoffs.hand_off_within(
                turn.session_id, reason=reason, by="hook", trace_id=turn.trace_id
            )
        timeline.publish(written)
        rec.trace.composition.handoff = f"hook {bail.hook}"
        rec.trace.composition.handoff_reason = reason
    await conclude(timeline, rec, turn, bailed=bail.model_dump(mode="json"))
