"""The templates a turn offers: the active guidelines' own, those retrievers give, and the
free-standing ones closest to the conversation; each rendered with this turn's fields (the
customer, the agent, variables, tool results) or disqualified with the reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tactful.domain import GUEST_CUSTOMER_ID, CannedResponse, TemplateConsidered
from tactful.engine import canned
from tactful.engine.context import TurnContext
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.match import Match
from tactful.engine.tools import ToolFindings
from tactful.llm.base import Vectors


def turn_fields(ctx: TurnContext) -> dict[str, Any]:
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


@dataclass
class Candidate:
    """A template considered this turn: where it comes from, and whether it can be sent."""

    response: CannedResponse
    # The active guideline it belongs to, or None for a retrieved free-standing template.
    guideline_id: str | None
    text: str | None  # rendered (generative fields shown as placeholders); None: disqualified
    missing: list[str]
    generative: frozenset[str]
    similarity: float = 0.0
    # Why it is disqualified (missing fields, a limit, a refused operation, an error).
    reason: str | None = None

    def describe(self) -> TemplateConsidered:
        """For the trace."""
        return TemplateConsidered(
            id=self.response.id,
            guideline_id=self.guideline_id,
            qualified=self.text is not None,
            missing_fields=self.missing,
            reason=self.reason,
            similarity=round(self.similarity, 4),
        )


class TemplateOffer:
    """Gathers and renders the templates a turn may send, within ``limits``."""

    def __init__(self, cache: EmbeddingCache, limits: canned.TemplateLimits) -> None:
        self.cache = cache
        self.limits = limits

    def fields(self, ctx: TurnContext, tools: ToolFindings | None) -> dict[str, Any]:
        # Tool results' fields join the turn's fields: {{transaction_id}} becomes sendable.
        return {**(tools.fields if tools is not None else {}), **turn_fields(ctx)}

    async def candidates(
        self,
        ctx: TurnContext,
        actionable: Sequence[Match],
        tools: ToolFindings | None,
        *,
        retrieve: int,
        query: str | None = None,
        extra: Sequence[CannedResponse] = (),
        free_only: bool = True,
    ) -> list[Candidate]:
        """The active guidelines' templates, then ``extra`` ones (retrievers'), then the
        ``retrieve`` free-standing templates closest to the conversation (with ``free_only``
        false, the closest of every other template: a proactive turn's request is no
        guideline's, its words may be anywhere), each rendered or disqualified; ``similarity``
        is to ``query`` (default: the latest message and the active actions)."""
        query = query if query is not None else self._query(ctx, actionable)
        by_id = {c.id: c for c in ctx.canned_responses}
        fields = self.fields(ctx, tools)
        chosen: list[tuple[CannedResponse, str | None]] = []
        seen: set[str] = set()
        for m in actionable:
            for cid in m.ranked.guideline.canned_responses:
                if cid in by_id and cid not in seen:
                    seen.add(cid)
                    chosen.append((by_id[cid], m.ranked.guideline.id))
        for response in extra:
            chosen.append((response, None))
            seen.add(response.id)
        target: Vectors | None = None  # the query's embedding, once
        if retrieve > 0:
            attached: set[str] = set()
            if free_only:
                attached = {cid for g in ctx.guidelines for cid in g.canned_responses}
                attached |= {
                    cid for j in ctx.journeys for s in j.states for cid in s.canned_responses
                }
            free = [c for c in ctx.canned_responses if c.id not in attached | seen]
            if free:
                target = (await self.cache.embed_messages([query]))[0]
                fit = await self.cache.embed([template_text(c) for c in free]) @ target
                for i in np.argsort(-fit)[:retrieve]:
                    chosen.append((free[int(i)], None))
        wanted = [canned.generative_fields(r.value) for r, _ in chosen]
        # Generative fields show as <name> placeholders; every render in one worker-thread hop.
        jobs = [
            (r.value, {n: f"<{n}>" for n in w}) for (r, _), w in zip(chosen, wanted, strict=True)
        ]
        renderings = await canned.render_each(jobs, fields, self.limits)
        found = [
            Candidate(response, gid, done.text, done.missing, w, reason=done.reason)
            for (response, gid), w, done in zip(chosen, wanted, renderings, strict=True)
        ]
        if found:
            if target is None:
                target = (await self.cache.embed_messages([query]))[0]
            texts = [template_text(c.response) for c in found]
            for c, s in zip(found, await self.cache.embed(texts) @ target, strict=True):
                c.similarity = float(s)
        return found

    @staticmethod
    def _query(ctx: TurnContext, actionable: Sequence[Match]) -> str:
        actions = " ".join(m.ranked.guideline.action or "" for m in actionable)
        return f"{ctx.last_customer_message} {actions}".strip() or " "


def template_text(response: CannedResponse) -> str:
    """What a canned response is embedded as: its template and its signals."""
    return " ".join([response.value, *response.signals])
