"""Stage 7, compose: write the reply, freely (with a model) or from canned responses.

Offline (no model) and in strict mode only canned responses are sent: the best template of the
matched guidelines whose fields are all present this turn, else the agent's no-match reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from tactful.domain import GUEST_CUSTOMER_ID, CannedResponse, CompositionMode
from tactful.engine import canned
from tactful.engine.context import TurnContext
from tactful.engine.match import Match
from tactful.engine.resolve import Clarification
from tactful.engine.retrieve import EmbeddingCache
from tactful.engine.tools import ToolFindings
from tactful.engine.trace import TraceRecorder
from tactful.errors import ModelError
from tactful.llm.base import Generator, Prompt

COMPOSE_STAGE = "compose"
TOOL_RESULT_BONUS = 0.5


@dataclass
class Reply:
    text: str
    method: str  # "fluid", "canned" or "no-match"
    applied_guideline_ids: list[str]
    canned_response_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class ReplyAnswer(BaseModel):
    message: str = Field(min_length=1, description="The agent's next message to the customer")


def template_fields(ctx: TurnContext) -> dict[str, Any]:
    """What templates may refer to this turn (tool results join in a later stage)."""
    customer: dict[str, Any] = dict(ctx.customer.metadata)
    fields: dict[str, Any] = {"agent_name": ctx.agent.name}
    # An anonymous guest has no name: templates that greet by name are disqualified for it.
    if ctx.customer.id != GUEST_CUSTOMER_ID:
        customer["name"] = ctx.customer.name
        fields["customer_name"] = ctx.customer.name
    agent = {"name": ctx.agent.name}
    return {
        "std": {"customer": customer, "agent": agent},
        "customer": customer,
        "agent": agent,
        **fields,
    }


class Composer:
    def __init__(self, cache: EmbeddingCache, generator: Generator | None) -> None:
        self.cache = cache
        self.generator = generator

    async def compose(
        self,
        ctx: TurnContext,
        matched: Sequence[Match],
        rec: TraceRecorder,
        *,
        clarification: Clarification | None = None,
        tools: ToolFindings | None = None,
        paused: Sequence[str] = (),
    ) -> Reply:
        """``paused``: journeys the customer interrupted ("title: step"), so that a fluid
        reply can offer to go back to them."""
        actionable = [m for m in matched if m.ranked.guideline.action]
        mode = ctx.agent.composition_mode
        for m in actionable:
            g_mode = m.ranked.guideline.composition_mode
            if g_mode is not None and g_mode.strictness > mode.strictness:
                mode = g_mode
        rec.trace.composition["mode"] = mode.value
        if clarification is not None:
            return await self.clarify(ctx, matched, clarification, mode, rec)
        if self.generator is None or mode is not CompositionMode.FLUID:
            reply = await self.from_canned(ctx, actionable, tools)
            if reply.method != "no-match" or self.generator is None:
                return reply
            if mode is CompositionMode.STRICT:
                return reply
        try:
            return await self.fluid(ctx, actionable, rec, tools, paused)
        except ModelError as e:
            # A failed model degrades the turn to canned responses; it never kills it.
            reply = await self.from_canned(ctx, actionable, tools)
            reply.details["degraded"] = f"model failed while composing: {e}"
            return reply

    async def clarify(
        self,
        ctx: TurnContext,
        matched: Sequence[Match],
        clarification: Clarification,
        mode: CompositionMode,
        rec: TraceRecorder,
    ) -> Reply:
        """Several intents fit an ambiguous message: ask which one instead of guessing."""
        by_id = {g.id: g for g in ctx.guidelines}
        options = [by_id[o] for o in clarification.option_ids if o in by_id]
        asking = [m for m in matched if m.ranked.guideline.id == clarification.observation_id]
        # The ambiguity's own canned responses come first (the only choice in strict mode).
        reply = await self.from_canned(ctx, asking)
        reply.details["clarification"] = clarification.model_dump()
        if reply.method == "canned" or mode is CompositionMode.STRICT:
            return reply
        described = [o.description or o.condition for o in options]
        if self.generator is not None and mode is CompositionMode.FLUID:
            prompt = self.prompt(ctx, [])
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
                    method="clarification",
                    applied_guideline_ids=[clarification.observation_id],
                    details={"clarification": clarification.model_dump()},
                )
            except ModelError as e:
                rec.trace.composition["degraded"] = f"model failed while composing: {e}"
        text = (
            "Just to be sure I help with the right thing, which one do you mean: "
            + "; or ".join(d.rstrip(".") for d in described)
        )
        return Reply(
            text=text + "?",
            method="clarification",
            applied_guideline_ids=[clarification.observation_id],
            details={"clarification": clarification.model_dump()},
        )

    async def from_canned(
        self, ctx: TurnContext, actionable: Sequence[Match], tools: ToolFindings | None = None
    ) -> Reply:
        by_id = {c.id: c for c in ctx.canned_responses}
        # Tool results' fields join the turn's fields: {{transaction_id}} becomes sendable.
        fields = {**(tools.fields if tools else {}), **template_fields(ctx)}
        considered: list[tuple[Match, CannedResponse, str]] = []
        disqualified: list[dict[str, Any]] = []
        for m in actionable:
            for cid in m.ranked.guideline.canned_responses:
                response = by_id.get(cid)
                if response is None:
                    continue
                text, missing = canned.render(response.value, fields)
                if text is None:
                    disqualified.append({"id": cid, "missing_fields": missing})
                    continue
                considered.append((m, response, text))
        if not considered:
            return Reply(
                text=ctx.agent.no_match_reply,
                method="no-match",
                applied_guideline_ids=[],
                details={"disqualified": disqualified, "reason": "no qualifying canned response"},
            )
        query = ctx.last_customer_message or " "
        texts = [" ".join([r.value, *r.signals]) for _, r, _ in considered]
        vectors = await self.cache.embed([query, *texts])
        fit = vectors[1:] @ vectors[0]
        # The matcher's own score (offline: focus on the latest message) ranks the guidelines.
        strength = [
            m.verdict.score if m.verdict.score is not None else m.ranked.score
            for m, _, _ in considered
        ]
        # A template built on what a tool returned this turn says more than one that could
        # be sent any time (the "please send your order number" kind): it is preferred.
        fresh = set(tools.fields) if tools else set()
        uses_results = [bool(canned.template_fields(r.value) & fresh) for _, r, _ in considered]
        scores = np.array(strength) + 0.5 * fit + TOOL_RESULT_BONUS * np.array(uses_results)
        best = int(np.argmax(scores))
        m, response, text = considered[best]
        return Reply(
            text=text,
            method="canned",
            applied_guideline_ids=[m.ranked.guideline.id],
            canned_response_id=response.id,
            details={
                "candidates": [
                    {
                        "id": r.id,
                        "guideline_id": mm.ranked.guideline.id,
                        "score": round(float(s), 4),
                    }
                    for (mm, r, _), s in zip(considered, scores, strict=True)
                ],
                "disqualified": disqualified,
            },
        )

    def prompt(
        self,
        ctx: TurnContext,
        actionable: Sequence[Match],
        tools: ToolFindings | None = None,
        paused: Sequence[str] = (),
    ) -> Prompt:
        system = (
            f"You are {ctx.agent.name}, a customer-service agent. {ctx.agent.description or ''}\n"
            "Write the agent's next message. Follow every guideline given; do not invent facts, "
            "prices, policies or order details that are not in the conversation. Answer in JSON."
        )
        rules = "\n".join(
            f"- When {m.ranked.guideline.condition}, then {m.ranked.guideline.action}"
            for m in actionable
        )
        terms = "\n".join(f"- {t.name}: {t.description}" for t in ctx.terms[:20])
        history = "\n".join(f"{u.role}: {u.text}" for u in ctx.window())
        user = (
            f"Customer: {ctx.customer.name}\n\nGuidelines to follow now:\n{rules or '- (none)'}\n\n"
            f"Glossary:\n{terms or '- (none)'}\n\nConversation:\n{history}"
        )
        if tools and tools.notes:
            user += f"\n\nWhat we know (context variables):\n{tools.notes}"
        if tools and tools.for_prompt():
            user += f"\n\nTools this turn:\n{tools.for_prompt()}"
        if paused:
            waiting = "\n".join(f"- {p}" for p in paused)
            user += (
                "\n\nProcedures on hold (the customer turned to something else; answer that, "
                f"then offer to carry on where it stopped):\n{waiting}"
            )
        return Prompt(system=system, user=user)

    async def fluid(
        self,
        ctx: TurnContext,
        actionable: Sequence[Match],
        rec: TraceRecorder,
        tools: ToolFindings | None = None,
        paused: Sequence[str] = (),
    ) -> Reply:
        assert self.generator is not None
        answer = await rec.generate(
            self.generator,
            self.prompt(ctx, actionable, tools, paused),
            ReplyAnswer,
            stage=COMPOSE_STAGE,
        )
        return Reply(
            text=answer.content.message,
            method="fluid",
            applied_guideline_ids=[m.ranked.guideline.id for m in actionable],
        )
