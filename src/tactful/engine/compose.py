"""Stage 7, compose: write the reply, freely (with a model) or from canned responses.

The composition mode comes from the agent, the active guidelines and the followed journeys'
states; the strictest wins, and the trace names the rule that decided:

- fluid: the model writes the reply from the guidelines, glossary, variables and tool results;
- canned-fluid: the model sends the templates that answer exactly, else writes the reply itself
  (one call either way);
- composited: the model writes the reply in the style and wording of the closest templates;
- strict: only templates are sent; when none qualifies, the agent's no-match reply.

Templates are the active guidelines' own and, with a model, the agent's free-standing ones that
are closest to the conversation (by cached embeddings: thousands cost no more than ten). A
template whose fields are not all present this turn is disqualified, and the trace lists it
with the missing fields. The model may combine several templates in one reply and fills their
``{{generative.*}}`` fields. Offline (no model) the best qualifying template of the active
guidelines is sent, else the no-match reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, Field

from tactful.domain import (
    CannedResponse,
    Clarification,
    Composition,
    CompositionMode,
    Guideline,
    ReplyMethod,
    SelfCheck,
    TemplateDropped,
    TemplateScore,
)
from tactful.engine import canned
from tactful.engine.context import TurnContext
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.match import Match
from tactful.engine.self_check import about_reply, check_draft
from tactful.engine.templates import TemplateOffer
from tactful.engine.tools import ToolFindings
from tactful.engine.trace import TraceRecorder
from tactful.engine.writing import TurnExtras, writing_prompt
from tactful.errors import ModelError
from tactful.llm.base import Generator, OnText, Prompt

COMPOSE_STAGE = "compose"
TOOL_RESULT_BONUS = 0.5
# Free-standing templates (attached to no guideline or journey step) offered to the model.
RETRIEVED_TEMPLATES = 10
# How close (cosine, all-MiniLM-L6-v2) a template must be to a proactive turn's request to say
# it on the offline tier (the Voltmart example: "ask if there is anything else you can do"
# finds its "Anything else I can do for you today?" at 0.49; "check whether the customer is
# still there" finds nothing over 0.41, and says nothing).
ASKED_SIMILARITY = 0.45
# Closest templates shown as the style to follow in composited mode.
STYLE_TEMPLATES = 3
SEPARATOR = "\n\n"
# Reply methods where the model wrote the words (the self-check reviews those).
WRITTEN = (ReplyMethod.FLUID, ReplyMethod.COMPOSITED)


@dataclass
class Reply:
    text: str
    method: ReplyMethod
    applied_guideline_ids: list[str]
    canned_response_ids: list[str] = field(default_factory=list)
    # The trace's composition fields this reply sets (the fields given are copied in).
    details: Composition = field(default_factory=Composition)
    # The text went out piece by piece as the model wrote it.
    streamed: bool = False

    @property
    def canned_response_id(self) -> str | None:
        return self.canned_response_ids[0] if self.canned_response_ids else None


class ReplyAnswer(BaseModel):
    message: str = Field(min_length=1, description="The agent's next message to the customer")


class TemplateChoice(BaseModel):
    """The model's choice among numbered templates (canned-fluid and strict modes)."""

    templates: list[int] = Field(
        default_factory=list,
        description="Numbers of the templates to send, in order; several only when the "
        "guidelines call for several things; empty when none answers exactly",
    )
    generative_fields: dict[str, str] = Field(
        default_factory=dict,
        description="A value for each generative field of the chosen templates, by name",
    )
    message: str | None = Field(
        default=None,
        description="Only when no template answers exactly and writing is allowed: the reply",
    )


@dataclass(frozen=True)
class ModeDecision:
    mode: CompositionMode
    # Which setting decided: "agent", "guideline <id>" or "journey <title> (state <label>)".
    rule: str


def decide_mode(ctx: TurnContext, actionable: Sequence[Match]) -> ModeDecision:
    """The strictest composition mode among the agent's and the active guidelines' (a
    followed journey's state or journey mode comes through its synthetic guideline)."""
    decision = ModeDecision(ctx.agent.composition_mode, "agent")
    for m in actionable:
        g = m.ranked.guideline
        if g.composition_mode is None or g.composition_mode.strictness <= decision.mode.strictness:
            continue
        journey_id = g.metadata.get("journey_id")
        if journey_id:
            rule = f"journey {journey_id} (state {g.metadata.get('state_id')})"
        else:
            rule = f"guideline {g.id}"
        decision = ModeDecision(g.composition_mode, rule)
    return decision


class Composer:
    """Stage 7: writes the reply, with a model or from templates rendered within ``limits``."""

    def __init__(
        self,
        cache: EmbeddingCache,
        generator: Generator | None,
        limits: canned.TemplateLimits | None = None,
    ) -> None:
        self.generator = generator
        self.limits = limits or canned.TemplateLimits()
        self.templates = TemplateOffer(cache, self.limits)

    async def compose(
        self,
        ctx: TurnContext,
        matched: Sequence[Match],
        rec: TraceRecorder,
        *,
        clarification: Clarification | None = None,
        tools: ToolFindings | None = None,
        paused: Sequence[str] = (),
        glossary: str = "",
        retrieved: str = "",
        extra_templates: Sequence[CannedResponse] = (),
        stream: OnText | None = None,
        reply_rules: Sequence[Guideline] | None = None,
        capabilities: str = "",
    ) -> Reply:
        """``paused``: journeys the customer interrupted ("title: step"), so that a fluid
        reply can offer to go back to them; ``glossary``: this turn's relevant terms;
        ``capabilities``: what the agent can do that bears on the turn;
        ``retrieved``: what retrievers found; ``extra_templates``: templates they offer;
        ``stream``: streams a fluid reply's pieces as they arrive (when the model can);
        ``reply_rules``: the guidelines about the agent's own reply that a written reply is
        checked against, when worked out ahead (``Prepared.reply_rules``; None: found here)."""
        actionable = [m for m in matched if m.ranked.guideline.action]
        extras = TurnExtras(
            paused,
            glossary,
            retrieved,
            list(extra_templates),
            stream=stream,
            capabilities=capabilities,
        )
        reply = await self._write(ctx, matched, actionable, rec, clarification, tools, extras)
        if self.generator is not None and reply.method in WRITTEN and not reply.streamed:
            rules = (
                [g for g in ctx.guidelines if g.enabled and g.action and about_reply(g)]
                if reply_rules is None
                else list(reply_rules)
            )
            if rules:
                await self._self_check(ctx, actionable, rec, tools, extras, reply, rules)
        return reply

    async def _self_check(
        self,
        ctx: TurnContext,
        actionable: Sequence[Match],
        rec: TraceRecorder,
        tools: ToolFindings | None,
        extras: TurnExtras,
        reply: Reply,
        rules: Sequence[Guideline],
    ) -> None:
        """Check the written draft against the rules about replies; revise it once if needed."""
        assert self.generator is not None
        base = writing_prompt(ctx, actionable, tools, extras)
        try:
            outcome = await check_draft(self.generator, rec, base, reply.text, rules, actionable)
        except ModelError as e:
            # The check failed: the draft goes out as written, and the trace says so.
            reply.details.self_check = SelfCheck(draft=reply.text, failed=str(e))
            rec.degraded(f"self-check: the model failed, the draft went out unchecked: {e}")
            return
        reply.details.self_check = outcome.record
        reply.text = outcome.text
        reply.applied_guideline_ids += [
            g for g in outcome.applied if g not in reply.applied_guideline_ids
        ]

    async def _write(
        self,
        ctx: TurnContext,
        matched: Sequence[Match],
        actionable: Sequence[Match],
        rec: TraceRecorder,
        clarification: Clarification | None,
        tools: ToolFindings | None,
        extras: TurnExtras,
    ) -> Reply:
        decision = decide_mode(ctx, actionable)
        rec.trace.composition.mode = decision.mode
        rec.trace.composition.mode_rule = decision.rule
        mode = decision.mode
        if clarification is not None:
            return await self.clarify(ctx, matched, clarification, mode, rec, extras)
        if self.generator is None:
            return await self.from_canned(ctx, actionable, tools, extras)
        try:
            if mode is CompositionMode.FLUID:
                return await self.fluid(ctx, actionable, rec, tools, extras)
            if mode is CompositionMode.COMPOSITED:
                return await self.composited(ctx, actionable, rec, tools, extras)
            return await self.choose(ctx, actionable, rec, mode, tools, extras)
        except ModelError as e:
            # A failed model degrades the turn to canned responses; it never kills it.
            reply = await self.from_canned(ctx, actionable, tools, extras)
            reply.details.degraded = f"model failed while composing: {e}"
            rec.degraded(f"composition: the model failed, the reply is {reply.method}: {e}")
            return reply

    # -- templates -------------------------------------------------------------------------------

    async def from_canned(
        self,
        ctx: TurnContext,
        actionable: Sequence[Match],
        tools: ToolFindings | None = None,
        extras: TurnExtras | None = None,
    ) -> Reply:
        """Without the model: the best qualifying template of the active guidelines (their
        match strength, then closeness to the latest message, then use of tool results)."""
        # A proactive turn asked for actions answers no message: the templates closest to
        # what it was asked to say may serve too, whichever guideline they belong to.
        asked = ctx.proactive is not None and bool(ctx.proactive.actions)
        found = await self.templates.candidates(
            ctx,
            actionable,
            tools,
            retrieve=RETRIEVED_TEMPLATES if asked else 0,
            # What it was asked to say, not the message answered already.
            query=_asked(ctx) if asked else ctx.last_customer_message or " ",
            extra=extras.templates if extras is not None else (),
            free_only=not asked,
        )
        usable = [c for c in found if c.text is not None and not c.generative]
        if asked:
            # A template no active guideline holds serves a request only if it is close to it:
            # better silent than a template about something else.
            usable = [
                c for c in usable if c.guideline_id is not None or c.similarity >= ASKED_SIMILARITY
            ]
        disqualified = [c.describe() for c in found if c.text is None or c.generative]
        if not usable:
            return Reply(
                text=ctx.agent.no_match_reply,
                method=ReplyMethod.NO_MATCH,
                applied_guideline_ids=[],
                details=Composition(
                    disqualified=disqualified, reason="no qualifying canned response"
                ),
            )
        strength = {
            m.ranked.guideline.id: m.verdict.score
            if m.verdict.score is not None
            else m.ranked.score
            for m in actionable
        }
        # A template built on what a tool returned this turn says more than one that could
        # be sent any time (the "please send your order number" kind): it is preferred.
        fresh = set(tools.fields) if tools else set()
        scores = [
            strength.get(c.guideline_id or "", 0.0)
            + 0.5 * c.similarity
            + TOOL_RESULT_BONUS * bool(canned.template_fields(c.response.value) & fresh)
            for c in usable
        ]
        best = usable[int(np.argmax(scores))]
        assert best.text is not None
        return Reply(
            text=best.text,
            method=ReplyMethod.CANNED,
            applied_guideline_ids=[best.guideline_id] if best.guideline_id else [],
            canned_response_ids=[best.response.id],
            details=Composition(
                candidates=[
                    TemplateScore(id=c.response.id, guideline_id=c.guideline_id, score=round(s, 4))
                    for c, s in zip(usable, scores, strict=True)
                ],
                disqualified=disqualified,
            ),
        )

    async def choose(
        self,
        ctx: TurnContext,
        actionable: Sequence[Match],
        rec: TraceRecorder,
        mode: CompositionMode,
        tools: ToolFindings | None,
        extras: TurnExtras,
    ) -> Reply:
        """Canned-fluid and strict modes: the model picks the templates (and fills their
        generative fields); in canned-fluid it writes the reply when none answers exactly."""
        assert self.generator is not None
        found = await self.templates.candidates(
            ctx, actionable, tools, retrieve=RETRIEVED_TEMPLATES, extra=extras.templates
        )
        usable = [c for c in found if c.text is not None]
        details = Composition(templates=[c.describe() for c in found])
        writing = mode is CompositionMode.CANNED_FLUID
        if not usable:
            if writing:
                reply = await self.fluid(ctx, actionable, rec, tools, extras)
                reply.details.take(details)
                reply.details.reason = "no qualifying template"
                return reply
            return self._no_match(ctx, details, "no qualifying template")
        base = writing_prompt(ctx, actionable, tools, extras)
        listed = "\n".join(
            f"{i}. {c.text}"
            + (f"  [generative: {', '.join(sorted(c.generative))}]" if c.generative else "")
            for i, c in enumerate(usable, start=1)
        )
        rule = (
            'If none answers exactly, leave "templates" empty and write the reply in "message".'
            if writing
            else 'If none answers, leave "templates" empty: the agent may only send templates.'
        )
        user = (
            f"{base.user}\n\nApproved replies (templates):\n{listed}\n\n"
            "Choose the template(s) that answer the customer now, following the guidelines; "
            "they are sent exactly as written, never translated. "
            "Choose several, in order, only when the guidelines call for several things. Fill "
            'every generative field of a chosen template in "generative_fields" (<name> marks '
            f"them). {rule}"
        )
        answer = await rec.generate(
            self.generator,
            Prompt(system=base.system, user=user),
            TemplateChoice,
            stage=COMPOSE_STAGE,
        )
        choice = answer.content
        picked = [n for n in dict.fromkeys(choice.templates) if 1 <= n <= len(usable)]
        dropped = [
            TemplateDropped(template=n, why="no such template")
            for n in dict.fromkeys(choice.templates)
            if n not in picked
        ]
        jobs = [(usable[n - 1].response.value, choice.generative_fields) for n in picked]
        renderings = await canned.render_each(jobs, self.templates.fields(ctx, tools), self.limits)
        texts, ids, applied = [], [], []
        for n, done in zip(picked, renderings, strict=True):
            c = usable[n - 1]
            if done.text is None:
                dropped.append(
                    TemplateDropped(
                        template=n,
                        id=c.response.id,
                        missing_fields=done.missing,
                        reason=done.reason,
                    )
                )
                continue
            texts.append(done.text)
            ids.append(c.response.id)
            if c.guideline_id and c.guideline_id not in applied:
                applied.append(c.guideline_id)
        details.chosen = ids
        if dropped:
            details.dropped = dropped
        if texts:
            return Reply(
                text=SEPARATOR.join(texts),
                method=ReplyMethod.CANNED,
                applied_guideline_ids=applied or [m.ranked.guideline.id for m in actionable],
                canned_response_ids=ids,
                details=details,
            )
        if writing and choice.message and choice.message.strip():
            details.reason = "no template answers exactly"
            return Reply(
                text=choice.message.strip(),
                method=ReplyMethod.FLUID,
                applied_guideline_ids=[m.ranked.guideline.id for m in actionable],
                details=details,
            )
        if writing:
            reply = await self.fluid(ctx, actionable, rec, tools, extras)
            reply.details.take(details)
            reply.details.reason = "no template chosen"
            return reply
        return self._no_match(ctx, details, "the model chose no template")

    @staticmethod
    def _no_match(ctx: TurnContext, details: Composition, reason: str) -> Reply:
        details.reason = reason
        return Reply(
            text=ctx.agent.no_match_reply,
            method=ReplyMethod.NO_MATCH,
            applied_guideline_ids=[],
            details=details,
        )

    async def composited(
        self,
        ctx: TurnContext,
        actionable: Sequence[Match],
        rec: TraceRecorder,
        tools: ToolFindings | None,
        extras: TurnExtras,
    ) -> Reply:
        """The model writes the reply in the style and wording of the closest templates."""
        assert self.generator is not None
        found = await self.templates.candidates(
            ctx, actionable, tools, retrieve=RETRIEVED_TEMPLATES, extra=extras.templates
        )
        style = sorted(
            (c for c in found if c.text is not None and not c.generative),
            key=lambda c: (c.guideline_id is None, -c.similarity),
        )[:STYLE_TEMPLATES]
        if not style:
            reply = await self.fluid(ctx, actionable, rec, tools, extras)
            reply.details.reason = "no template to take the style from"
            return reply
        base = writing_prompt(ctx, actionable, tools, extras)
        examples = "\n".join(f"- {c.text}" for c in style)
        user = (
            f"{base.user}\n\nApproved replies: write the message in their style and wording, "
            f"reusing their phrases where they fit (never their facts unless they apply):\n"
            f"{examples}"
        )
        answer = await rec.generate(
            self.generator,
            Prompt(system=base.system, user=user),
            ReplyAnswer,
            stage=COMPOSE_STAGE,
        )
        return Reply(
            text=answer.content.message,
            method=ReplyMethod.COMPOSITED,
            applied_guideline_ids=[m.ranked.guideline.id for m in actionable],
            details=Composition(style_templates=[c.response.id for c in style]),
        )

    # -- writing ---------------------------------------------------------------------------------

    async def clarify(
        self,
        ctx: TurnContext,
        matched: Sequence[Match],
        clarification: Clarification,
        mode: CompositionMode,
        rec: TraceRecorder,
        extras: TurnExtras | None = None,
    ) -> Reply:
        """Several intents fit an ambiguous message: ask which one instead of guessing."""
        by_id = {g.id: g for g in ctx.guidelines}
        options = [by_id[o] for o in clarification.option_ids if o in by_id]
        asking = [m for m in matched if m.ranked.guideline.id == clarification.observation_id]
        # The ambiguity's own canned responses come first (the only choice in strict mode).
        reply = await self.from_canned(ctx, asking)
        reply.details.clarification = clarification
        if reply.method is ReplyMethod.CANNED or mode is CompositionMode.STRICT:
            return reply
        described = [o.description or o.condition for o in options]
        if self.generator is not None:
            prompt = writing_prompt(ctx, [], extras=extras)
            question = (
                "\n\nThe latest message is ambiguous: it could mean any of these:\n"
                + "\n".join(f"- {d}" for d in described)
                + "\nDo not act on any of them yet: ask one short question to find out which."
            )
            try:
                answer = await rec.generate(
                    self.generator,
                    Prompt(system=prompt.system, user=prompt.user + question),
                    ReplyAnswer,
                    stage=COMPOSE_STAGE,
                )
                return Reply(
                    text=answer.content.message,
                    method=ReplyMethod.CLARIFICATION,
                    applied_guideline_ids=[clarification.observation_id],
                    details=Composition(clarification=clarification),
                )
            except ModelError as e:
                rec.trace.composition.degraded = f"model failed while composing: {e}"
                rec.degraded(f"clarification: the model failed, the question is a template: {e}")
        text = (
            "Just to be sure I help with the right thing, which one do you mean: "
            + "; or ".join(d.rstrip(".") for d in described)
        )
        return Reply(
            text=text + "?",
            method=ReplyMethod.CLARIFICATION,
            applied_guideline_ids=[clarification.observation_id],
            details=Composition(clarification=clarification),
        )

    async def fluid(
        self,
        ctx: TurnContext,
        actionable: Sequence[Match],
        rec: TraceRecorder,
        tools: ToolFindings | None = None,
        extras: TurnExtras | None = None,
    ) -> Reply:
        assert self.generator is not None
        applied = [m.ranked.guideline.id for m in actionable]
        if extras is not None and extras.stream is not None and self.generator.supports_streaming:
            streamed = await rec.stream(
                self.generator,
                writing_prompt(ctx, actionable, tools, extras, plain=True),
                stage=COMPOSE_STAGE,
                on_text=extras.stream,
            )
            return Reply(
                text=streamed.text.strip(),
                method=ReplyMethod.FLUID,
                applied_guideline_ids=applied,
                streamed=True,
            )
        answer = await rec.generate(
            self.generator,
            writing_prompt(ctx, actionable, tools, extras),
            ReplyAnswer,
            stage=COMPOSE_STAGE,
        )
        return Reply(
            text=answer.content.message, method=ReplyMethod.FLUID, applied_guideline_ids=applied
        )


def _asked(ctx: TurnContext) -> str:
    """A proactive turn's requested actions, as one text."""
    assert ctx.proactive is not None
    return " ".join(a.action for a in ctx.proactive.actions) or " "
