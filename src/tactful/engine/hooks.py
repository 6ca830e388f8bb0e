"""Code matchers and hooks: Python callables registered through the SDK, held in memory.

A code matcher decides whether one guideline applies with a predicate over the conversation
(``MatchContext``) instead of a model check. ``on_selected`` hooks run when a guideline is in a
turn's final set; ``on_message`` hooks run when an agent has sent a message; stage hooks run
before and after each stage of an agent's turns, and when a stage raised (``TurnView``,
``Bail``; run by ``engine.stage_hooks``, docs/hooks.md). Callables may be plain or async. None
of them can break a turn: an exception or a timeout is logged and comes back as an error string
for the trace.

The registry lives as long as the process (the engine holds one ``Hooks``): a program registers
its callables again when it starts, as it defines its agents again.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from tactful.domain import Event, Guideline
from tactful.engine.context import TurnContext
from tactful.engine.options import HOOK_TIMEOUT_S

log = logging.getLogger("tactful.hooks")


@dataclass(frozen=True)
class MatchContext:
    """What a code matcher or hook sees of the conversation."""

    agent_id: str
    session_id: str
    customer_id: str
    customer_name: str
    customer_metadata: Mapping[str, str] = field(default_factory=dict)
    # The latest customer message ("" when there is none).
    latest_message: str = ""
    # The conversation so far as (role, text), role "customer" or "agent", oldest first.
    messages: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, ctx: TurnContext) -> MatchContext:
        """The matcher's view of a turn's context."""
        return cls(
            agent_id=ctx.agent.id,
            session_id=ctx.session.id,
            customer_id=ctx.customer.id,
            customer_name=ctx.customer.name,
            customer_metadata=dict(ctx.customer.metadata),
            latest_message=ctx.last_customer_message,
            messages=tuple((u.role, u.text) for u in ctx.messages),
        )


@dataclass(frozen=True)
class BranchContext(MatchContext):
    """What a journey transition's code condition sees: the conversation, and the results of
    the tools that ran this turn, by tool id ("service:name") and by tool name."""

    results: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def with_results(cls, ctx: TurnContext, results: Sequence[tuple[str, Any]]) -> BranchContext:
        base = MatchContext.of(ctx)
        by_key: dict[str, Any] = {}
        for tool, data in results:
            by_key[tool] = data
            by_key[tool.rsplit(":", 1)[-1]] = data
        return cls(**{f: getattr(base, f) for f in base.__dataclass_fields__}, results=by_key)


# The stages of a turn that hooks see, in order (``engine.pipeline``; ``act`` runs the tools).
STAGES = ("context", "retrieve", "match", "resolve", "act", "compose", "emit")
# When a stage hook runs: before the stage, after it, or when it raised.
When = Literal["before", "after", "error"]


@dataclass(frozen=True)
class Bail:
    """What a stage hook returns to end the turn there: silently (no reply), or handing the
    session to a person with ``reason`` (``hand_off=True``). Returning None goes on."""

    reason: str = ""
    hand_off: bool = False


@dataclass(frozen=True)
class TurnView(MatchContext):
    """What a stage hook sees of a turn: the conversation, the stage and the moment, and what
    the turn has produced so far (copies: changing them changes nothing)."""

    trace_id: str = ""
    stage: str = ""
    when: When = "before"
    # The active guidelines (and followed journeys, as guidelines): from ``resolve`` on.
    guidelines: tuple[Guideline, ...] = ()
    # The reply as composed: from ``compose`` on (None before, or when there is nothing to say).
    draft: str | None = None
    # The agent's message as sent: after ``emit``.
    message: Event | None = None
    # What the stage raised (``when == "error"`` only).
    error: Exception | None = None


Predicate = Callable[[MatchContext], bool | Awaitable[bool]]
BranchPredicate = Callable[[BranchContext], bool | Awaitable[bool]]
SelectedHook = Callable[[MatchContext, Guideline], Awaitable[None] | None]
MessageHook = Callable[[MatchContext, Event], Awaitable[None] | None]
StageHook = Callable[[TurnView], Bail | Awaitable[Bail | None] | None]

C = TypeVar("C", bound=Callable[..., Any])


class MatcherVerdicts(dict[str, bool]):
    """Guideline id -> whether its code matcher says it applies; failed matchers say False and
    leave their error in ``errors``."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class Hooks:
    """The registry of code matchers and hooks, and the helpers that run them safely."""

    def __init__(self, *, timeout: float = HOOK_TIMEOUT_S) -> None:
        self.timeout = timeout
        self.matchers: dict[str, Predicate] = {}
        self.on_selected: dict[str, list[SelectedHook]] = {}
        self.on_message: dict[str, list[MessageHook]] = {}
        # Journey transition id -> its code condition.
        self.branches: dict[str, BranchPredicate] = {}
        # Agent id -> (when, stage) -> its stage hooks, in registration order ("error" hooks
        # under the stage "*").
        self.stages: dict[str, dict[tuple[When, str], list[StageHook]]] = {}

    # -- registration -----------------------------------------------------------------------------

    def add_matcher(self, guideline_id: str, predicate: Predicate) -> None:
        """Decide ``guideline_id`` with ``predicate`` (replaces an earlier matcher)."""
        self.matchers[guideline_id] = predicate

    def add_selected(self, guideline_id: str, hook: SelectedHook) -> None:
        """Call ``hook`` when ``guideline_id`` is selected (once, however often registered)."""
        _append_once(self.on_selected.setdefault(guideline_id, []), hook)

    def add_message(self, agent_id: str, hook: MessageHook) -> None:
        """Call ``hook`` when the agent sends a message (once, however often registered)."""
        _append_once(self.on_message.setdefault(agent_id, []), hook)

    def add_branch(self, transition_id: str, predicate: BranchPredicate) -> None:
        """Decide the journey transition ``transition_id`` with ``predicate`` (replaces)."""
        self.branches[transition_id] = predicate

    def add_stage(self, agent_id: str, when: When, stage: str, hook: StageHook) -> None:
        """Call ``hook`` ``when`` (before, after) ``stage`` of the agent's turns, or when any
        stage raised (``when="error"``, ``stage="*"``); once, however often registered."""
        if when == "error":
            stage = "*"
        elif when not in ("before", "after"):
            raise ValueError(f"a stage hook runs before, after or on error, not {when!r}")
        elif stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}")
        elif (when, stage) == ("before", "context"):
            raise ValueError(
                "no hook runs before context: the turn's agent is known once its context is "
                "loaded (use after('context'))"
            )
        _append_once(self.stages.setdefault(agent_id, {}).setdefault((when, stage), []), hook)

    def stage_hooks(self, agent_id: str, when: When, stage: str) -> list[StageHook]:
        """The agent's hooks for ``when`` and ``stage``, in registration order."""
        return list(self.stages.get(agent_id, {}).get((when, stage), []))

    # -- running ----------------------------------------------------------------------------------

    async def run_branch(self, transition_id: str, ctx: BranchContext) -> tuple[bool, str | None]:
        """A transition's code condition: (holds, error). A failing one does not hold."""
        fn = self.branches[transition_id]
        value, error = await self._call(
            f"code condition {_name(fn)} of transition {transition_id}", fn, ctx
        )
        if error is None and not isinstance(value, bool):
            error = f"code condition {_name(fn)}: returned {value!r}, not True or False"
        return value is True and error is None, error

    async def run_matchers(
        self, ctx: MatchContext, guideline_ids: Collection[str] | None = None
    ) -> MatcherVerdicts:
        """Run the code matchers (of ``guideline_ids`` only, when given) concurrently."""
        wanted = sorted(
            gid for gid in self.matchers if guideline_ids is None or gid in guideline_ids
        )
        outcomes = await asyncio.gather(
            *(
                self._call(
                    f"code matcher {_name(self.matchers[g])} of guideline {g}",
                    self.matchers[g],
                    ctx,
                )
                for g in wanted
            )
        )
        verdicts = MatcherVerdicts()
        for gid, (value, error) in zip(wanted, outcomes, strict=True):
            if error is None and not isinstance(value, bool):
                error = (
                    f"code matcher {_name(self.matchers[gid])} of guideline {gid}: "
                    f"returned {value!r}, not True or False"
                )
                log.warning("%s", error)
            if error is not None:
                verdicts.errors.append(error)
            verdicts[gid] = value is True and error is None
        return verdicts

    async def fire_selected(self, ctx: MatchContext, guidelines: Sequence[Guideline]) -> list[str]:
        """Run the ``on_selected`` hooks of the selected guidelines; returns their errors."""
        calls = [
            (f"on_selected hook {_name(hook)} of guideline {g.id}", hook, g)
            for g in guidelines
            for hook in self.on_selected.get(g.id, [])
        ]
        outcomes = await asyncio.gather(*(self._call(label, h, ctx, g) for label, h, g in calls))
        return [error for _, error in outcomes if error is not None]

    async def fire_message(self, ctx: MatchContext, event: Event) -> list[str]:
        """Run the agent's ``on_message`` hooks for a message it sent; returns their errors."""
        hooks = list(self.on_message.get(ctx.agent_id, []))
        outcomes = await asyncio.gather(
            *(
                self._call(f"on_message hook {_name(h)} of agent {ctx.agent_id}", h, ctx, event)
                for h in hooks
            )
        )
        return [error for _, error in outcomes if error is not None]

    async def run_stage(self, view: TurnView) -> tuple[tuple[str, Bail] | None, list[str]]:
        """The agent's hooks for the view's moment, one after another in registration order,
        until one bails: (that hook's name and its ``Bail``, or None; the hooks' errors). A
        failing hook is skipped; an ``error`` hook's bail is ignored (the turn fails anyway)."""
        stage = "*" if view.when == "error" else view.stage
        errors: list[str] = []
        for hook in self.stage_hooks(view.agent_id, view.when, stage):
            label = f"{view.when} {view.stage} hook {_name(hook)} of agent {view.agent_id}"
            value, error = await self._call(label, hook, view)
            if error is None and value is not None and not isinstance(value, Bail):
                error = f"{label}: returned {value!r}, not None or a Bail"
                log.warning("%s", error)
            if error is not None:
                errors.append(error)
            elif isinstance(value, Bail) and view.when != "error":
                return (_name(hook), value), errors
        return None, errors

    async def _call(self, label: str, fn: Callable[..., Any], *args: Any) -> tuple[Any, str | None]:
        """``fn(*args)``, awaited if need be, within the timeout: (value, None) or
        (None, "<label>: <error>"). The error is logged, never raised."""
        try:
            value = fn(*args)
            if inspect.isawaitable(value):
                value = await asyncio.wait_for(value, self.timeout)
            return value, None
        except TimeoutError:
            error = f"{label}: timed out after {self.timeout:g}s"
            log.warning("%s", error)
        except Exception as e:
            error = f"{label}: {type(e).__name__}: {e}"
            log.warning("%s", error, exc_info=e)
        return None, error


def _append_once(hooks: list[C], hook: C) -> None:
    if hook not in hooks:
        hooks.append(hook)
