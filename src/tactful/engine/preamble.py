"""Preambles: a short acknowledgement sent early when the full reply will take long.

No model call: the text comes from the agent's preamble texts. It goes out when tools are about
to run (they are the slow part of a turn) or when the reply is not out ``preamble_after_ms``
after the customer's message, whichever comes first; at most once per turn, and never after the
reply has started to go out. The reply itself is never delayed for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from tactful.domain import Event, EventKind, EventSource, PreambleSent, Trace
from tactful.engine.context import TurnContext

Append = Callable[..., Awaitable[Event]]


class Preamble:
    """A short acknowledgement sent before a reply that takes long: when tools are about to
    run, or when the reply is not out ``after_ms`` after the customer's message. Chosen from
    the agent's preamble texts with no model call (they take turns); at most one per turn,
    never after the reply, and never a delay for the reply itself."""

    def __init__(self, append: Append, ctx: TurnContext, trace: Trace) -> None:
        self.append = append
        self.ctx = ctx
        self.trace = trace
        self.done = False
        self._timer: asyncio.Task[None] | None = None
        self._started = time.perf_counter()

    def start(self) -> None:
        if self.ctx.agent.preambles:
            self._timer = asyncio.create_task(self._deadline(), name=f"preamble:{self.trace.id}")

    async def _deadline(self) -> None:
        await asyncio.sleep(self.ctx.agent.preamble_after_ms / 1000)
        await self.send(f"the reply was not out after {self.ctx.agent.preamble_after_ms} ms")

    async def before_tools(self) -> None:
        await self.send("tools are about to run")

    async def send(self, why: str) -> None:
        preambles = self.ctx.agent.preambles
        if self.done or not preambles:
            return
        self.done = True
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
        # They take turns across the session's replies, so the same words do not repeat.
        text = preambles[len(self.ctx.applied_history) % len(preambles)]
        event = await self.append(
            self.ctx.session.id,
            EventKind.MESSAGE,
            EventSource.AI_AGENT,
            {
                "message": text,
                "participant": {"id": self.ctx.agent.id, "display_name": self.ctx.agent.name},
                "canned_responses": [],
                "guidelines": [],
            },
            trace_id=self.trace.id,
            metadata={"preamble": True},
        )
        self.trace.composition.preamble = PreambleSent(
            text=text,
            why=why,
            event_offset=event.offset,
            after_ms=round((time.perf_counter() - self._started) * 1000, 1),
        )

    def stop(self) -> None:
        """The reply is going out (or the turn ended): no preamble from now on."""
        self.done = True
        if self._timer is not None:
            self._timer.cancel()
