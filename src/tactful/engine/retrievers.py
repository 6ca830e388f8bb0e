"""Retrievers: Python functions that fetch data for this turn's reply (an FAQ, a stock level,
an account summary), attached to an agent (every turn, run while matching runs), a guideline
(while it is active) or a journey (while it is followed).

A retriever gets a ``RetrieverContext`` and returns data (anything printable), or a
``RetrieverResult`` with data and optionally templates (offered as canned responses this turn),
fields (for templates) and transient guidelines (applied this turn as they are). Like code
matchers they live in memory: a program attaches them again when it starts. A retriever that
fails or times out is left out of the turn and named in the trace; it never breaks the turn.

A tool's result may bring templates and guidelines too (``ToolResult.canned_responses`` and
``guidelines``): the tool stage makes them a ``Retrieved`` owned by ``tool:<tool id>``
(``brought_by``), and the turn takes them as it takes a retriever's.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from tactful.domain import (
    CannedResponse,
    Guideline,
    MatchMethod,
    MatchVerdict,
    RetrieverRun,
    Trace,
)

# Defined with the domain (tools return it too); a retriever's, so it is exported from here.
from tactful.domain.guidelines import TransientGuideline as TransientGuideline
from tactful.engine.hooks import MatchContext
from tactful.engine.match import Match
from tactful.engine.options import RETRIEVER_TIMEOUT_S
from tactful.engine.retrieve import Ranked

log = logging.getLogger("tactful.retrievers")

# How much of a retriever's data a prompt shows.
PROMPT_CHARS = 1500

RetrieverContext = MatchContext


# The condition a transient guideline given without one is shown with.
THIS_TURN = "this turn (it applies whatever was said)"


class RetrieverResult(BaseModel):
    """What a retriever found for this turn."""

    data: Any = None
    # Templates offered as canned responses this turn (Jinja2, like any canned response).
    canned_responses: list[str | CannedResponse] = Field(default_factory=list)
    # Values templates may use ({{stock_level}}).
    fields: dict[str, Any] = Field(default_factory=dict)
    guidelines: list[TransientGuideline] = Field(default_factory=list)


Retriever = Callable[[RetrieverContext], Any | Awaitable[Any]]


@dataclass
class Retrieved:
    """One retriever's outcome this turn."""

    name: str
    owner: str  # "agent:<id>", "guideline:<id>", "journey:<id>" or "tool:<tool id>"
    result: RetrieverResult | None
    error: str | None = None
    took_ms: float = 0.0

    @property
    def kind(self) -> str:
        """What gave it: "retriever", or "tool" (a tool's result brought it)."""
        return "tool" if self.owner.startswith("tool:") else "retriever"

    def describe(self) -> RetrieverRun:
        """For the trace: what it gave is counted (its data went to the prompt)."""
        got = self.result
        return RetrieverRun(
            name=self.name,
            owner=self.owner,
            ok=self.error is None,
            took_ms=round(self.took_ms, 1),
            error=self.error or None,
            templates=len(got.canned_responses) if got is not None else None,
            fields=sorted(got.fields) if got is not None else None,
            guidelines=len(got.guidelines) if got is not None else None,
        )


@dataclass
class RetrievedSet:
    """Everything the retrievers of a turn found."""

    items: list[Retrieved] = field(default_factory=list)

    def extend(self, more: RetrievedSet) -> None:
        self.items += more.items

    @property
    def ok(self) -> list[Retrieved]:
        return [r for r in self.items if r.result is not None]

    def for_prompt(self) -> str:
        """One "- name: data" line per retriever that returned data."""
        lines = []
        for r in self.ok:
            assert r.result is not None
            if r.result.data is None:
                continue
            shown = str(r.result.data)
            if len(shown) > PROMPT_CHARS:
                shown = shown[:PROMPT_CHARS] + " ..."
            lines.append(f"- {r.name}: {shown}")
        return "\n".join(lines)

    def fields(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for r in self.ok:
            assert r.result is not None
            merged.update(r.result.fields)
        return merged

    def templates(self) -> list[CannedResponse]:
        """The templates offered, each with an id naming what gave it ("retriever:<name>:<i>",
        "tool:<tool id>:<i>"); a ``CannedResponse`` keeps its fields and signals."""
        offered = []
        pairs = [(r, t) for r in self.ok for t in (r.result.canned_responses if r.result else [])]
        for i, (r, t) in enumerate(pairs):
            id = f"{r.kind}:{r.name}:{i}"
            if isinstance(t, CannedResponse):
                offered.append(t.model_copy(update={"id": id}))
            else:
                offered.append(CannedResponse(id=id, value=t))
        return offered

    def guidelines(self) -> list[tuple[Retrieved, TransientGuideline]]:
        return [(r, g) for r in self.ok for g in (r.result.guidelines if r.result else [])]


def brought_by(
    tool_id: str,
    canned_responses: Sequence[str | CannedResponse],
    guidelines: Sequence[TransientGuideline],
    took_ms: float = 0.0,
) -> Retrieved | None:
    """What a tool's result brought into the turn, as a retriever's outcome (None: nothing)."""
    if not canned_responses and not guidelines:
        return None
    result = RetrieverResult(canned_responses=list(canned_responses), guidelines=list(guidelines))
    return Retrieved(tool_id, f"tool:{tool_id}", result, took_ms=took_ms)


class Retrievers:
    """The registry of retrievers by owner, and the helper that runs them safely."""

    def __init__(self, *, timeout: float = RETRIEVER_TIMEOUT_S) -> None:
        self.timeout = timeout
        self.by_owner: dict[str, dict[str, Retriever]] = {}

    def add(self, owner: str, name: str, retriever: Retriever) -> None:
        """Attach ``retriever`` to ``owner`` under ``name`` (replaces one of the same name)."""
        self.by_owner.setdefault(owner, {})[name] = retriever

    def owned(self, owners: Collection[str]) -> list[tuple[str, str, Retriever]]:
        return [
            (owner, name, fn)
            for owner in sorted(set(owners))
            for name, fn in sorted(self.by_owner.get(owner, {}).items())
        ]

    async def run(self, ctx: RetrieverContext, owners: Sequence[str]) -> RetrievedSet:
        """Run the retrievers of ``owners`` concurrently."""
        wanted = self.owned(owners)
        if not wanted:
            return RetrievedSet()
        outcomes = await asyncio.gather(*(self._one(o, n, fn, ctx) for o, n, fn in wanted))
        return RetrievedSet(list(outcomes))

    async def _one(self, owner: str, name: str, fn: Retriever, ctx: RetrieverContext) -> Retrieved:
        started = time.perf_counter()
        try:
            value = fn(ctx)
            if inspect.isawaitable(value):
                value = await asyncio.wait_for(value, self.timeout)
            result = value if isinstance(value, RetrieverResult) else RetrieverResult(data=value)
            return Retrieved(name, owner, result, took_ms=_ms(started))
        except TimeoutError:
            error = f"timed out after {self.timeout:g}s"
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
            log.warning("retriever %s of %s failed: %s", name, owner, error, exc_info=e)
        return Retrieved(name, owner, None, error=error, took_ms=_ms(started))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def transient_guidelines(retrieved: RetrievedSet, trace: Trace) -> list[Match]:
    """The guidelines retrievers (and tools' results) said apply this turn, as matches (they
    are not checked)."""
    return [
        given_match(
            trace,
            f"{r.kind}:{r.name}:{i}",
            g.condition or THIS_TURN,
            g.action,
            rationale=f"given by the {r.kind} {r.name!r} for this turn",
            method=MatchMethod.RETRIEVER,
        )
        for i, (r, g) in enumerate(retrieved.guidelines())
    ]


def given_match(
    trace: Trace,
    guideline_id: str,
    condition: str,
    action: str | None,
    *,
    rationale: str,
    method: MatchMethod,
) -> Match:
    """A guideline that applies this turn without a check (given by a retriever, a tool or a
    request to speak), as a match, named in the trace's matches and final set."""
    guideline = Guideline(id=guideline_id, condition=condition, action=action)
    verdict = MatchVerdict(
        guideline_id=guideline_id,
        condition=condition,
        action=action,
        applies=True,
        score=1.0,
        rationale=rationale,
        method=method,
    )
    trace.matches.append(verdict)
    trace.final_guideline_ids.append(guideline_id)
    return Match(Ranked(guideline, 1.0, 1.0), verdict)
