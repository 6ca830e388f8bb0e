"""Stage 6, tools: decide which calls the active guidelines make, with which arguments.

Argument values come from the matching wave (each with its source) or, on the offline tier,
from patterns in what the customer wrote. A call runs only with every required argument
present, and a consequential tool only on arguments the customer or the context really gave:
a value the model inferred, or one it says the customer gave that the customer never wrote,
counts as a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import to_jsonable_python

from tactful.domain import (
    ArgumentSource,
    MatchMethod,
    PlannedToolCall,
    ProposedArgument,
    ToolSpec,
    tool_id,
)
from tactful.engine.context import TurnContext
from tactful.engine.match import Match
from tactful.engine.retrievers import RetrievedSet

HIDDEN = "x-tactful-hidden"


@dataclass
class PlannedCall:
    """A tool call a guideline needs this turn, and why it will not run if it won't."""

    guideline_id: str
    tool_id: str
    arguments: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, ArgumentSource] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    guessed: list[str] = field(default_factory=list)
    blocked: str | None = None

    def describe(self) -> PlannedToolCall:
        """For the trace (argument values as JSON)."""
        return PlannedToolCall(
            guideline_id=self.guideline_id,
            tool_id=self.tool_id,
            arguments=to_jsonable_python(self.arguments, fallback=str),
            sources=dict(self.sources),
            missing=list(self.missing),
            guessed=list(self.guessed),
            blocked=self.blocked,
        )


def context_values(ctx: TurnContext) -> dict[str, Any]:
    """What hidden arguments may be filled from: the customer's profile and the session."""
    return {
        **ctx.customer.metadata,
        "customer_id": ctx.customer.id,
        "customer_name": ctx.customer.name,
        "session_id": ctx.session.id,
        "agent_id": ctx.agent.id,
    }


def _said(ctx: TurnContext) -> str:
    return "\n".join(u.text for u in ctx.messages if u.role == "customer").casefold()


def from_patterns(spec: ToolSpec, ctx: TurnContext) -> dict[str, ProposedArgument]:
    """Offline tier: string arguments with a JSON-schema ``pattern`` found in the customer's
    messages (latest first)."""
    found: dict[str, ProposedArgument] = {}
    texts = [u.text for u in reversed(ctx.messages) if u.role == "customer"]
    for name, schema in spec.parameters.get("properties", {}).items():
        pattern = schema.get("pattern")
        if not pattern or schema.get(HIDDEN):
            continue
        unanchored = pattern.removeprefix("^").removesuffix("$")
        for text in texts:
            hit = re.search(unanchored, text)
            if hit:
                found[name] = ProposedArgument(
                    name=name, value=hit.group(0), source=ArgumentSource.CUSTOMER
                )
                break
    return found


def plan_tool_calls(
    matches: Sequence[Match],
    specs: Mapping[str, ToolSpec],
    ctx: TurnContext,
) -> list[PlannedCall]:
    """The calls of the active guidelines, arguments checked, blocked ones saying why."""
    planned: list[PlannedCall] = []
    said = _said(ctx)
    known = context_values(ctx)
    for m in matches:
        g = m.ranked.guideline
        for wanted in g.tools:
            spec = specs.get(wanted)
            if spec is None:
                planned.append(PlannedCall(g.id, wanted, blocked=f"unknown tool {wanted!r}"))
                continue
            proposals = [c for c in m.verdict.tool_calls if c.tool == spec.name]
            if m.verdict.method is MatchMethod.MODEL and not proposals:
                continue  # the model judged that this turn's action needs no call
            given = (
                {a.name: a for a in proposals[0].arguments}
                if proposals
                else from_patterns(spec, ctx)
            )
            planned.append(_check(g.id, spec, given, known, said))
    return planned


def _check(
    guideline_id: str,
    spec: ToolSpec,
    given: Mapping[str, ProposedArgument],
    known: Mapping[str, Any],
    said: str,
) -> PlannedCall:
    call = PlannedCall(guideline_id, tool_id(spec.service_name, spec.name))
    for name, schema in spec.parameters.get("properties", {}).items():
        if schema.get(HIDDEN):
            # Hidden arguments come from context only, never from the model.
            if name in known:
                call.arguments[name], call.sources[name] = known[name], ArgumentSource.CONTEXT
            continue
        arg = given.get(name)
        if arg is None or arg.source is ArgumentSource.MISSING or arg.value is None:
            continue
        value, source = arg.value, arg.source
        if source is ArgumentSource.CUSTOMER and str(value).casefold() not in said:
            # The customer never wrote it: a guess, whatever the model says.
            source = ArgumentSource.INFERRED
        call.arguments[name], call.sources[name] = value, source
        if source is ArgumentSource.INFERRED:
            call.guessed.append(name)
    call.missing = [p for p in spec.required if p not in call.arguments]
    if call.missing:
        call.blocked = f"missing required arguments: {', '.join(call.missing)}"
    elif spec.consequential and call.guessed:
        call.blocked = (
            f"consequential tool: will not run on guessed arguments: {', '.join(call.guessed)}"
        )
    return call


@dataclass
class ToolFindings:
    """What the tool stage tells the composer: results, errors, and what to ask for."""

    # (tool id, data) of calls that succeeded; (tool id, error) of calls that failed.
    results: list[tuple[str, Any]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    # (tool id, argument, its description) the customer still has to give.
    missing: list[tuple[str, str, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    # Values canned responses may use ({{transaction_id}}).
    fields: dict[str, Any] = field(default_factory=dict)
    # Context variables relevant to the reply, one "- name: value" line each.
    notes: str = ""
    # Templates and guidelines tools' results brought: the turn takes them as retrievers'.
    brought: RetrievedSet = field(default_factory=RetrievedSet)

    def __bool__(self) -> bool:
        return bool(self.results or self.errors or self.missing or self.refused or self.notes)

    def merge(self, more: ToolFindings) -> None:
        """Add what a later run of the tool stage found."""
        self.results += more.results
        self.errors += more.errors
        self.missing += more.missing
        self.refused += more.refused
        self.fields.update(more.fields)
        self.brought.extend(more.brought)

    def for_prompt(self) -> str:
        lines = []
        for tool, data in self.results:
            lines.append(f"- {tool} returned: {data}")
        for tool, error in self.errors:
            lines.append(
                f"- {tool} FAILED: {error}. Apologize briefly and offer an alternative; "
                "do not pretend it worked."
            )
        for tool, name, description in self.missing:
            what = f"{name} ({description})" if description else name
            lines.append(f"- {tool} needs {what}: ask the customer for exactly that.")
        for reason in self.refused:
            lines.append(f"- not done: {reason}. Ask the customer to confirm the details.")
        return "\n".join(lines)

    @classmethod
    def of(cls, planned: Sequence[PlannedCall], specs: Mapping[str, ToolSpec]) -> ToolFindings:
        """The part known before anything runs: what is missing, what was refused."""
        findings = cls()
        for p in planned:
            spec = specs.get(p.tool_id)
            properties = spec.parameters.get("properties", {}) if spec else {}
            for name in p.missing:
                description = str(properties.get(name, {}).get("description", ""))
                findings.missing.append((p.tool_id, name, description))
            if p.blocked and not p.missing:
                findings.refused.append(f"{p.tool_id}: {p.blocked}")
        return findings
