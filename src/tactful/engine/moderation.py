"""Moderation of customer messages, over the moderation port (docs/moderation.md).

As a message is posted (``check``): ``auto`` runs the content moderator, ``paranoid`` the
jailbreak check too (concurrently), ``none`` nothing. The message's data gets Parlant's
``flagged`` and ``tags``, and the whole record under ``moderation`` (staff see it). A check that
fails or outlasts its timeout lets the message through unflagged, and says so in the record.

As the turn answering it starts (``ModerationPolicy.handle``): the record goes into the trace,
and a flagged message is refused (the agent's refusal, no model call), handed off (the session
goes to manual mode, with a ``custom`` event saying why) or let through with a warning (the
match and compose prompts say it was flagged: ``Utterance.note``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from tactful.domain import (
    ModerationAction,
    ModerationMode,
    ModerationRecord,
    ReplyMethod,
)
from tactful.engine.context import TurnContext
from tactful.engine.emit import conclude, emit_reply, shielded
from tactful.engine.handoff import Handoffs
from tactful.engine.options import ModerationOptions
from tactful.engine.runner import Turn
from tactful.engine.timeline import Timeline
from tactful.engine.trace import TraceRecorder
from tactful.moderation.base import ModerationCheck, Moderator

log = logging.getLogger("tactful.engine")


@dataclass
class Moderators:
    """The checks a server runs: ``content`` for ``auto`` (None: nothing), and ``jailbreak``,
    which ``paranoid`` adds (None: nothing)."""

    content: Moderator | None = None
    jailbreak: Moderator | None = None

    def for_mode(self, mode: ModerationMode) -> list[Moderator]:
        if mode is ModerationMode.NONE:
            return []
        wanted = [self.content]
        if mode is ModerationMode.PARANOID:
            wanted.append(self.jailbreak)
        return [m for m in wanted if m is not None]

    async def aclose(self) -> None:
        for moderator in (self.content, self.jailbreak):
            if moderator is not None:
                try:
                    await moderator.aclose()
                except Exception:
                    log.warning("could not close moderator %s", moderator.name, exc_info=True)


async def check(
    moderators: Moderators, text: str, mode: ModerationMode, *, timeout_s: float
) -> ModerationRecord | None:
    """The record of checking ``text`` as ``mode`` asks (None for ``none``). Never raises for
    a moderator's failure: the record's ``error`` says which failed, and why."""
    if mode is ModerationMode.NONE:
        return None
    chosen = moderators.for_mode(mode)
    started = time.perf_counter()
    results = await asyncio.gather(*(_bounded(m, text, timeout_s) for m in chosen))
    tags: dict[str, None] = {}
    reasons: list[str] = []
    errors: list[str] = []
    for moderator, result in zip(chosen, results, strict=True):
        if isinstance(result, str):
            errors.append(f"{moderator.name}: {result}")
            continue
        if result.flagged:
            tags.update(dict.fromkeys(result.tags))
            reasons.append(result.reason or f"{moderator.name} flagged it")
    if not chosen:
        errors.append(f"no moderator is configured for {mode.value}")
    return ModerationRecord(
        mode=mode,
        flagged=bool(reasons),
        tags=list(tags),
        reason="; ".join(reasons),
        checked_by=[m.name for m in chosen],
        error="; ".join(errors) or None,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
    )


async def _bounded(moderator: Moderator, text: str, timeout_s: float) -> ModerationCheck | str:
    """The moderator's answer, or why there is none (it failed, or took over ``timeout_s``)."""
    try:
        return await asyncio.wait_for(moderator.check(text), timeout_s)
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except Exception as e:
        log.warning("moderator %s failed: %s: %s", moderator.name, type(e).__name__, e)
        return str(e) or type(e).__name__


def message_data(record: ModerationRecord | None) -> dict[str, Any]:
    """What a checked customer message's data gains: Parlant's ``flagged`` and ``tags``, and
    the record (nothing for an unchecked one)."""
    if record is None:
        return {}
    return {
        "flagged": record.flagged,
        "tags": list(record.tags),
        "moderation": record.model_dump(mode="json", exclude_none=True),
    }


class ModerationPolicy:
    """What the turn answering a flagged customer message does (``handle``)."""

    def __init__(self, timeline: Timeline, options: ModerationOptions, handoffs: Handoffs) -> None:
        self.timeline = timeline
        self.options = options
        self.handoffs = handoffs

    def action_for(self, ctx: TurnContext) -> ModerationAction:
        return ctx.agent.moderation_action or self.options.action

    async def handle(self, turn: Turn, ctx: TurnContext, rec: TraceRecorder) -> bool:
        """Trace the message's moderation and act on a flag: True when the turn is over
        (refused, or handed off), False when it goes on."""
        record = ctx.moderation
        if record is None:
            return False
        record = record.model_copy()
        rec.trace.moderation = record
        if record.error:
            rec.degraded(f"moderation: {record.error}; the message went on as far as checked")
        if not record.flagged:
            return False
        record.action = self.action_for(ctx)
        if record.action is ModerationAction.WARN:
            return False
        if record.action is ModerationAction.REFUSE:
            await self._refuse(turn, ctx, rec, record)
        else:
            await self._hand_off(turn, ctx, rec, record)
        return True

    async def _refuse(
        self, turn: Turn, ctx: TurnContext, rec: TraceRecorder, record: ModerationRecord
    ) -> None:
        text = ctx.agent.moderation_refusal or self.options.refusal
        data = {
            "message": text,
            "participant": {"id": ctx.agent.id, "display_name": ctx.agent.name},
            "canned_responses": [],
            "guidelines": [],
        }
        composition = rec.trace.composition
        composition.method = ReplyMethod.REFUSAL
        composition.reason = f"moderation flagged the message ({', '.join(record.tags)})"
        message = await shielded(emit_reply(self.timeline, turn, data, None))
        rec.trace.message_event_id = message.id
        await conclude(self.timeline, rec, turn)

    async def _hand_off(
        self, turn: Turn, ctx: TurnContext, rec: TraceRecorder, record: ModerationRecord
    ) -> None:
        """The session waits for a person (``engine.handoff``: manual mode, its handoff record
        and the ``requested`` step on the timeline, with the reason), written in the
        transaction that marks the turn as answered (a newer message no longer supersedes it)."""
        reason = f"moderation flagged the message ({', '.join(record.tags) or 'flagged'})"
        async with self.timeline.store.transaction():
            await turn.start_emitting()
            written = await self.handoffs.hand_off_within(
                turn.session_id, reason=reason, by="moderation", trace_id=turn.trace_id
            )
        self.timeline.publish(written)
        rec.trace.composition.handoff = "moderation"
        rec.trace.composition.handoff_reason = reason
        await conclude(self.timeline, rec, turn)
