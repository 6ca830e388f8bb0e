"""Stage 4, match: decide which candidate guidelines apply now.

With a model: structured checks in the style of attentive reasoning queries (restate the
condition, cite the evidence, decide), batched by a token budget and run in parallel, with a
stable prompt prefix. Offline (no model): a calibrated similarity threshold decides, and the
trace says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

from tactful.domain import MatchVerdict
from tactful.engine.context import TurnContext
from tactful.engine.retrieve import Ranked
from tactful.engine.trace import TraceRecorder
from tactful.llm.base import Generator, Prompt
from tactful.llm.scripted import count_tokens

MATCH_STAGE = "match"
# Measured on the Voltmart example and the labeled set: see docs/offline-tier.md.
DEFAULT_OFFLINE_THRESHOLD = 0.40


@dataclass(frozen=True)
class Match:
    ranked: Ranked
    verdict: MatchVerdict


class OfflineMatcher:
    """Matches by similarity alone: at or above ``threshold``, and within ``margin`` of the best.

    The margin keeps a message about one topic from dragging in every loosely similar rule.
    """

    method = "offline-similarity"

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


class GuidelineCheck(BaseModel):
    """The model's structured answer for one guideline."""

    guideline_id: str
    condition_restated: str = Field(description="The condition in your own words")
    evidence: str = Field(description="What in the conversation supports or refutes it")
    applies: bool = Field(description="Whether the condition holds at the latest customer turn")


class MatchAnswer(BaseModel):
    checks: list[GuidelineCheck]


_MATCH_INSTRUCTIONS = """You check which behavioral guidelines apply to the current moment of a \
customer-service conversation. For EACH guideline listed, answer with its id, restate its \
condition, cite the evidence from the conversation, and say whether the condition holds at the \
latest customer message. Judge only the condition, not whether the action is a good idea. \
Answer in JSON matching the schema."""


def _conversation(ctx: TurnContext) -> str:
    lines = [f"{u.role}: {u.text}" for u in ctx.window()]
    return "\n".join(lines) or "(no messages yet)"


class ModelMatcher:
    """Structured checks over the candidates, batched by token budget, batches in parallel."""

    method = "model"

    def __init__(self, generator: Generator, *, batch_tokens: int = 1200) -> None:
        self.generator = generator
        self.batch_tokens = batch_tokens

    def batches(self, candidates: Sequence[Ranked]) -> list[list[Ranked]]:
        batches: list[list[Ranked]] = []
        current: list[Ranked] = []
        used = 0
        for r in candidates:
            cost = count_tokens(r.guideline.condition) + 8
            if current and used + cost > self.batch_tokens:
                batches.append(current)
                current, used = [], 0
            current.append(r)
            used += cost
        if current:
            batches.append(current)
        return batches

    def prompt(self, ctx: TurnContext, batch: Sequence[Ranked]) -> Prompt:
        # Stable prefix (instructions + agent) first, so provider prompt caches hit.
        system = f"{_MATCH_INSTRUCTIONS}\n\nAgent: {ctx.agent.name}. {ctx.agent.description or ''}"
        items = "\n".join(f"- id={r.guideline.id}: {r.guideline.condition}" for r in batch)
        customer = f"Customer: {ctx.customer.name}"
        user = f"{customer}\n\nConversation:\n{_conversation(ctx)}\n\nGuidelines:\n{items}"
        return Prompt(system=system, user=user)

    async def match(
        self, ctx: TurnContext, candidates: Sequence[Ranked], rec: TraceRecorder
    ) -> list[MatchVerdict]:
        batches = self.batches(candidates)
        answers = await asyncio.gather(
            *(
                rec.generate(self.generator, self.prompt(ctx, b), MatchAnswer, stage=MATCH_STAGE)
                for b in batches
            )
        )
        verdicts: list[MatchVerdict] = []
        for batch, answer in zip(batches, answers, strict=True):
            by_id = {c.guideline_id: c for c in answer.content.checks}
            for r in batch:
                check = by_id.get(r.guideline.id)
                verdicts.append(
                    MatchVerdict(
                        guideline_id=r.guideline.id,
                        condition=r.guideline.condition,
                        action=r.guideline.action,
                        applies=bool(check and check.applies),
                        score=r.score,
                        rationale=check.evidence if check else "the model gave no verdict",
                        method=self.method,
                    )
                )
        return verdicts
