"""Stage 4, match: decide which candidate guidelines apply now.

With a model: structured checks in the style of attentive reasoning queries (restate the
condition, cite the evidence, decide), batched by a token budget and run in parallel, with a
stable prompt prefix. Offline (no model): a calibrated similarity threshold decides, and the
trace says so.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import count
from typing import Any, Literal

from pydantic import BaseModel, Field

from tactful.domain import Criticality, MatchMethod, MatchVerdict, ProposedToolCall, ToolSpec
from tactful.engine.context import TurnContext
from tactful.engine.match_batches import MatchBatch, ScreenListing, plan_batches
from tactful.engine.retrieve import Ranked
from tactful.engine.trace import TraceRecorder
from tactful.errors import ModelError
from tactful.llm.base import Generator, Prompt

MATCH_STAGE = "match"
# Measured on the Voltmart example and the labeled set: see docs/offline-tier.md.


@dataclass(frozen=True)
class Match:
    ranked: Ranked
    verdict: MatchVerdict


class OfflineMatcher:
    """Matches by similarity alone: at or above ``threshold``, and within ``margin`` of the best.

    The margin keeps a message about one topic from dragging in every loosely similar rule.
    """

    method = MatchMethod.OFFLINE_SIMILARITY

    def __init__(self, threshold: float, margin: float = 0.12, max_matches: int = 4) -> None:
        self.threshold = threshold
        self.margin = margin
        self.max_matches = max_matches

    def match(self, candidates: Sequence[Ranked]) -> list[MatchVerdict]:
        """Verdicts in order of focus on the latest message; observations take no slot."""
        ordered = sorted(candidates, key=lambda r: -r.focus)
        best = ordered[0].focus if ordered else 0.0
        verdicts = []
        slots = self.max_matches
        for r in ordered:
            close = r.focus >= self.threshold and r.focus >= best - self.margin
            applies = close and (slots > 0 or r.guideline.is_observation)
            if applies and not r.guideline.is_observation:
                slots -= 1
            why = (
                f"similarity {r.focus:.3f} "
                + (">=" if r.focus >= self.threshold else "<")
                + f" threshold {self.threshold:.2f}"
            )
            if r.focus >= self.threshold and not applies:
                why += f"; outside the top {self.max_matches} or {self.margin:.2f} of the best"
            verdicts.append(
                MatchVerdict(
                    guideline_id=r.guideline.id,
                    condition=r.guideline.condition,
                    action=r.guideline.action,
                    applies=applies,
                    score=r.focus,
                    rationale=why + " (offline tier: no model decides)",
                    method=self.method,
                )
            )
        return verdicts


class ProposedArgument(BaseModel):
    """One argument of a proposed tool call, and where its value came from."""

    name: str
    value: str | int | float | bool | None = None
    source: Literal["customer", "context", "inferred", "missing"] = Field(
        description="customer: the customer said it; context: the profile or earlier results "
        "hold it; inferred: a guess; missing: nobody said it (value null)"
    )


class ProposedCall(BaseModel):
    tool: str = Field(description="The tool's name as listed")
    arguments: list[ProposedArgument] = Field(default_factory=list)


class GuidelineCheck(BaseModel):
    """The model's structured answer for one guideline (attentive-reasoning style)."""

    guideline: int = Field(description="The guideline's number as listed")
    condition_restated: str = Field(description="The condition in your own words")
    evidence: str = Field(description="What in the conversation supports or refutes it")
    applies: bool = Field(description="Whether the condition holds at the latest customer turn")
    reapply: bool | None = Field(
        default=None,
        description="Only for guidelines marked as applied earlier: must its action be "
        "carried out again now (true for continuous behaviour or a new occasion, false for a "
        "one-shot action already done)",
    )
    tool_calls: list[ProposedCall] = Field(
        default_factory=list,
        description="Only for a guideline that lists tools and applies: the calls its action "
        "needs, with every listed argument and its source",
    )


class JourneyCheck(BaseModel):
    """The model's answer for one listed journey: is the customer on it, and which step now."""

    journey: int = Field(description="The journey's number as listed (J1 is 1)")
    status: Literal["not started", "following", "interrupted", "dropped"]
    evidence: str = Field(description="The decisive words, quoted")
    step: int | None = Field(default=None, description="When following: the step to carry out now")
    tool_calls: list[ProposedCall] = Field(
        default_factory=list, description="For a tool step: its calls, as for guidelines"
    )


class MatchAnswer(BaseModel):
    checks: list[GuidelineCheck] = Field(
        default_factory=list, description="One entry per guideline under DETAILED CHECKS"
    )
    flagged: list[GuidelineCheck] = Field(
        default_factory=list,
        description="Entries only for guidelines under SCREEN whose condition holds now",
    )


class JourneyMatchAnswer(MatchAnswer):
    """The answer schema of the one batch that lists journeys (other batches, and agents
    without journeys, are not sent the journey part of the schema)."""

    journeys: list[JourneyCheck] = Field(
        default_factory=list, description="One entry per journey under JOURNEYS"
    )


_JOURNEY_INSTRUCTIONS = (
    'Procedures followed step by step. Answer in "journeys" for each: its status (following: '
    "the customer is on it now; interrupted: the latest message turns elsewhere for now; "
    "dropped: given up; not started: its start condition does not hold, or it was completed "
    "and not asked for anew) and, when following, the step to carry out now: stay until the "
    "step's question is answered, skip steps already answered, go back when an earlier answer "
    "changes, an end step when done."
)


_MATCH_INSTRUCTIONS = (
    "You decide which behavioral guidelines apply at the current moment of a customer-service "
    "conversation, for the agent's next reply.\n\n"
    "A condition holds when it is true at the latest customer message, given the whole "
    "conversation and the customer's profile. Requests stay open until the agent has answered "
    "them and the customer moved on. Facts, once the customer stated them, stay true. Judge only "
    "the condition, never whether the action is a good idea.\n\n"
    "The guidelines come in two lists:\n"
    '- DETAILED CHECKS: answer for EVERY one in "checks": its number, the condition restated, '
    "the evidence from the conversation (quote it), and whether it applies. For a guideline "
    'marked "applied earlier", also say in "reapply" whether its action must be carried out '
    "again now: true for continuous behaviour (tone, style, standing rules) or a new occasion, "
    "false for a one-shot action that is already done.\n"
    '- SCREEN: read them all, but answer in "flagged" only for those whose condition holds now, '
    "with the same fields.\n"
    'A detailed guideline may list "tools". When it applies, give in "tool_calls" the calls its '
    "action needs, with every argument: its value and its source. Never invent a value: an "
    'argument nobody gave has source "missing" and value null.\n\n'
    "Keep every field short: restate a condition in a few words, quote only the decisive "
    'words as evidence, and for a guideline that plainly does not apply write "not mentioned". '
    "Answer with one JSON object matching the schema."
)

_WINDOW_MESSAGES = 10
_MESSAGE_CHARS = 600
_EARLIER_ACTIONS = 10


def _conversation(ctx: TurnContext) -> str:
    window = ctx.window(_WINDOW_MESSAGES)
    lines = [f"{u.role}: {u.text[:_MESSAGE_CHARS]}{u.note}" for u in window]
    text = "\n".join(lines) or "(no messages yet)"
    # Older agent replies fall out of the window; what they did stays visible, in a few words.
    in_window = sum(1 for u in window if u.role == "agent")
    older = ctx.applied_history[: max(0, len(ctx.applied_history) - in_window)]
    # By id, not a map of every guideline's action (this runs once per batch).
    by_id = ctx.guidelines_by_id
    done = list(
        dict.fromkeys(
            action for ids in older for gid in ids if gid in by_id and (action := by_id[gid].action)
        )
    )
    if done:
        earlier = "\n".join(f"- {a}" for a in done[-_EARLIER_ACTIONS:])
        text = f"Earlier in this session the agent already did:\n{earlier}\n\n{text}"
    return text


def prompt_head(
    ctx: TurnContext, notes: str = "", glossary: str = "", capabilities: str = ""
) -> str:
    """The start of every match prompt of a turn (a cacheable prefix): the agent, what it can
    do that bears on the turn, the customer, what is known about them, the glossary and the
    conversation."""
    profile = ", ".join(f"{k}: {v}" for k, v in ctx.customer.metadata.items())
    return (
        f"Agent: {ctx.agent.name}. {ctx.agent.description or ''}\n"
        f"{f'What the agent can do:{chr(10)}{capabilities}{chr(10)}' if capabilities else ''}"
        f"Customer: {ctx.customer.name}{f' ({profile})' if profile else ''}\n"
        f"{f'Known about this customer:{chr(10)}{notes}{chr(10)}' if notes else ''}"
        f"{f'Glossary:{chr(10)}{glossary}{chr(10)}' if glossary else ''}\n"
        f"Conversation (latest last):\n{_conversation(ctx)}\n\n"
    )


def _detailed_lines(
    detailed: Sequence[Ranked], applied_before: Collection[str], tools: Mapping[str, ToolSpec]
) -> list[str]:
    """The DETAILED CHECKS list: numbered from 1, with marks and the tools each one lists."""
    lines = []
    for n, r in enumerate(detailed, 1):
        marks = []
        if r.guideline.id in applied_before:
            marks.append("applied earlier")
        if r.guideline.criticality is Criticality.HIGH:
            marks.append("high criticality: require explicit evidence")
        mark = f" [{'; '.join(marks)}]" if marks else ""
        lines.append(f"{n}.{mark} {r.guideline.condition}")
        listed = [tools[t] for t in r.guideline.tools if t in tools]
        if listed:
            lines.append(f"   tools: {'; '.join(map(describe_tool, listed))}")
    return lines


@dataclass
class MatchOutcome:
    verdicts: list[MatchVerdict]
    failures: list[str]
    # The answers about listed journeys, by their listed number.
    journeys: dict[int, JourneyCheck] = field(default_factory=dict)
    # Guidelines whose batch failed (the caller may decide them another way).
    failed_ids: set[str] = field(default_factory=set)


class ModelMatcher:
    """Two-tier structured matching in one wave: detailed checks and a compact screen, spread
    over at most ``max_batches`` parallel calls sized by a token budget.

    Every batch shares the same system prompt and, within a turn, the same conversation
    prefix, so that provider prompt caches hit. Numbers stand in for guideline ids in prompts
    (cheaper, and the model cannot invent an id).
    """

    method = MatchMethod.MODEL

    def __init__(
        self, generator: Generator, *, batch_tokens: int = 3000, max_batches: int = 3
    ) -> None:
        self.generator = generator
        self.batch_tokens = batch_tokens
        self.max_batches = max_batches
        # Conditions come back every turn: each is counted once.
        self._tokens = lru_cache(maxsize=65536)(generator.count_tokens)
        self._listing = ScreenListing(self._tokens)

    def plan(self, detailed: Sequence[Ranked], screened: Sequence[Ranked]) -> list[MatchBatch]:
        """Spread the work over as few batches as the budget allows (at most max_batches)."""
        return plan_batches(
            detailed,
            screened,
            self._tokens,
            batch_tokens=self.batch_tokens,
            max_batches=self.max_batches,
            listing=self._listing,
        )

    def prompt(
        self,
        ctx: TurnContext,
        batch: MatchBatch,
        applied_before: Collection[str],
        tools: Mapping[str, ToolSpec] | None = None,
        notes: str = "",
        journeys: Sequence[tuple[int, str]] = (),
        glossary: str = "",
        *,
        head: str | None = None,
        capabilities: str = "",
    ) -> tuple[Prompt, dict[int, Ranked]]:
        """One batch's prompt and the guideline behind each listed number. ``head``: the part
        shared by every batch of the turn (``prompt_head``), when worked out already."""
        head = prompt_head(ctx, notes, glossary, capabilities) if head is None else head
        numbers = dict(enumerate([*batch.detailed, *batch.screened], 1))
        detailed = "\n".join(_detailed_lines(batch.detailed, applied_before, tools or {}))
        first = len(batch.detailed) + 1
        conditions = self._listing.conditions(batch.screened)
        screen = "\n".join(map("{}. {}".format, count(first), conditions))
        user = f"{head}DETAILED CHECKS:\n{detailed or '(none)'}\n\nSCREEN:\n{screen or '(none)'}"
        if journeys:
            written = "\n".join(text for _, text in journeys)
            user += f"\n\nJOURNEYS:\n{_JOURNEY_INSTRUCTIONS}\n{written}"
        return Prompt(system=_MATCH_INSTRUCTIONS, user=user), numbers

    async def match(
        self,
        ctx: TurnContext,
        detailed: Sequence[Ranked],
        screened: Sequence[Ranked],
        rec: TraceRecorder,
        *,
        applied_before: Collection[str] = (),
        tools: Mapping[str, ToolSpec] | None = None,
        notes: str = "",
        journeys: Sequence[tuple[int, str]] = (),
        glossary: str = "",
        capabilities: str = "",
    ) -> MatchOutcome:
        """Check ``detailed`` and screen ``screened``; ``tools`` (id -> spec) are listed under
        the detailed guidelines that carry them, so argument inference rides in this wave.
        ``journeys`` (number, text as ``journeys.plan.render`` writes it) ride in the first
        batch; their answers come back in ``MatchOutcome.journeys``. ``glossary`` and
        ``capabilities``: this turn's relevant terms and capabilities, one line each."""
        batches = self.plan(detailed, screened)
        if journeys and not batches:
            batches = [MatchBatch([], [])]
        head = prompt_head(ctx, notes, glossary, capabilities)
        prompts = [
            self.prompt(
                ctx, b, applied_before, tools, journeys=journeys if i == 0 else (), head=head
            )
            for i, b in enumerate(batches)
        ]
        schemas = [
            JourneyMatchAnswer if i == 0 and journeys else MatchAnswer for i in range(len(prompts))
        ]
        answers = await asyncio.gather(
            *(
                rec.generate(self.generator, p, schema, stage=MATCH_STAGE)
                for (p, _), schema in zip(prompts, schemas, strict=True)
            ),
            return_exceptions=True,
        )
        outcome = MatchOutcome([], [])
        for i, (batch, (_, numbers), answer) in enumerate(
            zip(batches, prompts, answers, strict=True)
        ):
            if isinstance(answer, BaseException):
                if not isinstance(answer, ModelError):
                    raise answer
                # Fail closed: this batch's guidelines are not matched; the turn goes on.
                outcome.failures.append(f"batch {i + 1} failed closed: {answer}")
                for r in [*batch.detailed, *batch.screened]:
                    outcome.failed_ids.add(r.guideline.id)
                    outcome.verdicts.append(
                        self._verdict(
                            r,
                            None,
                            tier=1 if r in batch.detailed else 2,
                            applied_before=applied_before,
                            missing=f"batch failed closed: {answer}",
                        )
                    )
                continue
            if isinstance(answer.content, JourneyMatchAnswer):
                known = {n for n, _ in journeys}
                outcome.journeys = {
                    j.journey: j for j in answer.content.journeys if j.journey in known
                }
            outcome.verdicts += self._answered(batch, numbers, answer.content, applied_before)
        return outcome

    def _answered(
        self,
        batch: MatchBatch,
        numbers: Mapping[int, Ranked],
        answer: MatchAnswer,
        applied_before: Collection[str],
    ) -> list[MatchVerdict]:
        """A verdict for every detailed guideline and every flagged screened one, in listed
        order (a screened one not flagged gets none: the trace's candidates list it)."""
        by_number = {c.guideline: c for c in answer.checks}
        flagged = {c.guideline: c for c in answer.flagged}
        detailed = len(batch.detailed)
        screened = sorted(n for n in flagged if detailed < n <= len(numbers))
        verdicts = []
        for n in [*range(1, detailed + 1), *screened]:
            check = by_number.get(n) if n <= detailed else None
            verdicts.append(
                self._verdict(
                    numbers[n],
                    flagged.get(n) if check is None else check,
                    tier=1 if n <= detailed else 2,
                    applied_before=applied_before,
                    missing="no verdict given",
                )
            )
        return verdicts

    def _verdict(
        self,
        r: Ranked,
        check: GuidelineCheck | None,
        *,
        tier: int,
        applied_before: Collection[str],
        missing: str,
    ) -> MatchVerdict:
        before = r.guideline.id in applied_before
        if check is None:
            applies, rationale, restated, evidence, reapply = False, missing, "", "", None
        else:
            reapply = check.reapply if before else None
            # Applied earlier: active again only when the model says it must be re-applied.
            applies = check.applies and (not before or bool(check.reapply))
            restated, evidence = check.condition_restated, check.evidence
            rationale = evidence
            if check.applies and before and not check.reapply:
                rationale = f"{evidence} (applied earlier; not to be repeated)"
        # Built without validation (one per guideline checked or screened; the values are
        # typed already).
        return MatchVerdict.model_construct(
            guideline_id=r.guideline.id,
            condition=r.guideline.condition,
            action=r.guideline.action,
            applies=applies,
            score=r.score,
            rationale=rationale,
            method=self.method,
            condition_restated=restated,
            evidence=evidence,
            applied_before=before,
            reapply=reapply,
            tier=tier,
            tool_calls=traced_calls(check.tool_calls) if check and applies else [],
        )


def traced_calls(calls: Sequence[ProposedCall]) -> list[ProposedToolCall]:
    """The model's proposed calls as the trace records them."""
    return [ProposedToolCall.model_validate(c.model_dump()) for c in calls]


_LISTED = re.compile(r"^(\d+)\.(?: \[([^\]]*)\])? (.*)$")


@dataclass(frozen=True)
class ListedGuideline:
    """A guideline as a match prompt lists it (for test doubles and benchmarks)."""

    number: int
    condition: str
    detailed: bool
    marks: tuple[str, ...] = ()


def listed_guidelines(prompt_user: str) -> list[ListedGuideline]:
    """Parse the DETAILED CHECKS and SCREEN lists out of a match prompt's user part."""
    listed = []
    section = ""
    for line in prompt_user.splitlines():
        if line in ("DETAILED CHECKS:", "SCREEN:"):
            section = line
            continue
        found = _LISTED.match(line) if section else None
        if found:
            marks = tuple(m.strip() for m in (found.group(2) or "").split(";") if m.strip())
            listed.append(
                ListedGuideline(
                    number=int(found.group(1)),
                    condition=found.group(3),
                    detailed=section == "DETAILED CHECKS:",
                    marks=marks,
                )
            )
    return listed


_JOURNEY_HEAD = re.compile(r'^J(\d+)\. "(.*)" \[([^\]]*)\]$')
_JOURNEY_STEP = re.compile(r"^   (\d+)\. (.*?)(?: \| (.*))?$")


@dataclass(frozen=True)
class ListedJourney:
    """A journey as a match prompt lists it (for test doubles and benchmarks)."""

    number: int
    title: str
    status: str
    # Step number -> "kind: text" (ask, tool, fork, end, journey; exits to other journeys).
    steps: dict[int, str]

    def step(self, text: str) -> int:
        """The number of the first step whose text contains ``text`` (case-insensitive)."""
        for n, line in self.steps.items():
            if text.casefold() in line.casefold():
                return n
        raise KeyError(f"no step of {self.title!r} says {text!r}: {self.steps}")


def listed_journeys(prompt_user: str) -> list[ListedJourney]:
    """Parse the JOURNEYS list out of a match prompt's user part."""
    journeys: list[ListedJourney] = []
    section = False
    for line in prompt_user.splitlines():
        if line == "JOURNEYS:":
            section = True
            continue
        if not section:
            continue
        head = _JOURNEY_HEAD.match(line)
        if head:
            journeys.append(
                ListedJourney(int(head.group(1)), head.group(2), head.group(3), steps={})
            )
            continue
        found = _JOURNEY_STEP.match(line)
        if found and journeys:
            journeys[-1].steps[int(found.group(1))] = found.group(2)
    return journeys


def answer_listed(
    prompt_user: str,
    decide: Callable[[ListedGuideline], str | None],
    *,
    reapply: bool | None = None,
    journeys: Callable[[ListedJourney], JourneyCheck | None] | None = None,
) -> JourneyMatchAnswer:
    """A well-formed answer to a match prompt, for test doubles and benchmarks.

    ``decide`` returns the evidence when a listed guideline applies, else None; guidelines
    marked "applied earlier" get ``reapply``. ``journeys`` answers each listed journey (None:
    "not started").
    """
    answered: list[JourneyCheck] = []
    for j in listed_journeys(prompt_user):
        answer = journeys(j) if journeys else None
        answered.append(
            answer
            if answer is not None
            else JourneyCheck(journey=j.number, status="not started", evidence="not mentioned")
        )
    checks, flagged = [], []
    for g in listed_guidelines(prompt_user):
        evidence = decide(g)
        check = GuidelineCheck(
            guideline=g.number,
            condition_restated=g.condition,
            evidence=evidence if evidence is not None else "not mentioned",
            applies=evidence is not None,
            reapply=reapply if "applied earlier" in g.marks else None,
        )
        if g.detailed:
            checks.append(check)
        elif check.applies:
            flagged.append(check)
    return JourneyMatchAnswer(checks=checks, flagged=flagged, journeys=answered)


def describe_tool(spec: ToolSpec) -> str:
    """A tool as a match prompt lists it: name(arguments) and what it does; hidden arguments
    (filled from context by the engine) are left out."""
    properties: dict[str, Any] = spec.parameters.get("properties", {})
    args = []
    for name, schema in properties.items():
        if schema.get("x-tactful-hidden"):
            continue
        kind = schema.get("type", "string")
        need = "required" if name in spec.required else "optional"
        extra = []
        if schema.get("description"):
            extra.append(str(schema["description"]))
        if schema.get("enum"):
            extra.append("one of " + ", ".join(map(str, schema["enum"])))
        if schema.get("examples"):
            extra.append("e.g. " + ", ".join(map(str, schema["examples"][:2])))
        more = f" - {'; '.join(extra)}" if extra else ""
        args.append(f"{name}: {kind}, {need}{more}")
    return f"{spec.name}({', '.join(args)}): {spec.description}".rstrip(": ")
