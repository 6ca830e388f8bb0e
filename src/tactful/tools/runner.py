"""Running one turn's tool calls: validated first, all at once, each cut at its timeout.

A tool's failure is an outcome, never an exception: the turn goes on and the trace says why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from tactful.domain import utcnow
from tactful.errors import NotFoundError
from tactful.tools.base import ToolArgumentsError, ToolContext, ToolError, ToolResult
from tactful.tools.registry import ToolRegistry

log = logging.getLogger("tactful.tools")


class ToolCall(BaseModel):
    """A call the engine decided to make: which tool, with which arguments."""

    tool_id: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolOutcome(BaseModel):
    """What became of one call: a result or an error (never both), and when it ran."""

    tool_id: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: ToolResult | None = None
    error: str | None = None
    started: datetime
    ended: datetime
    duration_ms: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


async def _run_one(
    registry: ToolRegistry, call: ToolCall, context: ToolContext, default_timeout_s: float
) -> ToolOutcome:
    started = utcnow()
    clock = time.perf_counter()
    result: ToolResult | None = None
    error: str | None = None
    timed_out = False
    try:
        entry = registry.get(call.tool_id)
    except NotFoundError:
        entry = None
        error = f"unknown tool {call.tool_id!r}"
    if entry is not None:
        # Each call has its own context, naming its tool (its changes say which tool made them).
        context = replace(context, tool_id=call.tool_id)
        timeout_s = entry.timeout_s if entry.timeout_s is not None else default_timeout_s
        try:
            # One budget for the check and the call: a choice provider may do I/O too.
            async with asyncio.timeout(timeout_s) as budget:
                await entry.service.check_arguments(entry.spec, call.arguments, context)
                result = await entry.service.call(entry.spec.name, call.arguments, context)
        except ToolArgumentsError as e:
            error = f"invalid arguments: {'; '.join(e.problems)}"
        except ToolError as e:
            error = str(e) or type(e).__name__
        except TimeoutError as e:
            if budget.expired():
                timed_out = True
                error = f"timed out after {timeout_s:g} s"
            else:
                error = f"TimeoutError: {e}" if str(e) else "TimeoutError"
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the turn itself is cancelled: not this tool's outcome
            error = "CancelledError: the tool was cancelled"
        except Exception as e:
            # A service broke its contract (ToolError only): still an outcome, never a crash.
            log.warning("tool %s raised %s", call.tool_id, type(e).__name__, exc_info=True)
            error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return ToolOutcome(
        tool_id=call.tool_id,
        arguments=call.arguments,
        result=result,
        error=error,
        started=started,
        ended=utcnow(),
        duration_ms=(time.perf_counter() - clock) * 1000,
        timed_out=timed_out,
    )


async def run_tools(
    registry: ToolRegistry,
    calls: Sequence[ToolCall],
    context: ToolContext,
    *,
    default_timeout_s: float,
) -> list[ToolOutcome]:
    """Run ``calls`` concurrently, each validated first and cut at its timeout (the tool's own
    ``timeout_s``, else ``default_timeout_s``: the engine's, from the settings). Outcomes come
    back in the order of ``calls``.

    Never raises for a tool: invalid arguments (the tool is not called), unknown tools,
    errors and timeouts are outcomes. Cancelling the caller cancels every call.
    """
    if not calls:
        return []
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(_run_one(registry, call, context, default_timeout_s))
            for call in calls
        ]
    return [t.result() for t in tasks]
