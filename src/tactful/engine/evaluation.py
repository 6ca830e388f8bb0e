"""Guidelines checked against each other when they are defined: near-duplicates and
contradictions, reported, never blocking (``docs/evaluations.md``).

Offline, the embeddings and the words decide: two guidelines whose conditions are close
(cosine ``Thresholds.condition``) and whose actions are close too are ``similar`` (meant to
differ?), or a ``duplicate`` when their texts are the same or nearly so in meaning; close
conditions where one action forbids what the other does are a ``possible_contradiction``.
Embeddings cannot tell a paraphrase from a variant that differs in one detail ("within 30
days" / "after 30 days" are closer than most paraphrases), so offline findings say "check",
not "wrong". With a model, the closest pairs with close conditions (at most
``max_model_pairs``, a bounded cost) are asked about one by one: a duplicate, a contradiction,
or distinct (then not reported). A model failure leaves that pair's offline finding, and says so.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from tactful.domain import Guideline
from tactful.domain.evaluations import (
    DecidedBy,
    Finding,
    FindingKind,
    GuidelineRef,
    ProposedGuideline,
)
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.lexical import tokenize
from tactful.errors import ModelError
from tactful.llm.base import Generator, Prompt, Vectors

EVALUATION_STAGE = "evaluation"


@dataclass(frozen=True)
class Thresholds:
    """Cosine similarities (calibrated on all-MiniLM-L6-v2: on the labeled Voltmart set of 320
    guidelines, 11 pairs are ``similar``, each two variants of one situation, and a paraphrase of
    one of them is found)."""

    condition: float = 0.75
    action: float = 0.65
    # Both at least this: a duplicate in meaning, without a model.
    duplicate: float = 0.97
    # An action that forbids what the other does, when the two are at least this close.
    negated_action: float = 0.6


_NEGATIONS = frozenset(
    {"not", "no", "never", "don't", "dont", "doesn't", "cannot", "can't", "won't", "avoid",
     "refuse", "without", "nor", "neither"}
)  # fmt: skip
_WORDS = re.compile(r"[a-z']+")


def _negated(text: str | None) -> bool:
    return bool(text) and any(w in _NEGATIONS for w in _WORDS.findall((text or "").lower()))


def _normalized(text: str | None) -> str:
    return " ".join(_WORDS.findall((text or "").lower()))


def _jaccard(x: set[str], y: set[str]) -> float:
    return len(x & y) / len(x | y) if x | y else 0.0


def _overlap(a: str | None, b: str | None) -> float:
    """Jaccard of the two texts' stemmed words (stop words left out)."""
    return _jaccard(set(tokenize(a or "")), set(tokenize(b or "")))


class PairVerdict(BaseModel):
    """The model's answer about two guidelines."""

    relation: Literal["duplicate", "contradiction", "distinct"]
    explanation: str = Field(max_length=1000)


_INSTRUCTIONS = (
    "You review the rules a customer-facing AI agent follows. Each rule is a condition (when "
    "it applies) and an action (what the agent then does); a rule without an action is an "
    "observation. Compare the two rules you are given and answer with one JSON object:\n"
    '- "duplicate": they apply in the same situations and ask for the same behaviour;\n'
    '- "contradiction": some situation satisfies both conditions, and the agent cannot follow '
    "both actions in it;\n"
    '- "distinct": anything else (different situations, or compatible actions).\n'
    'Say why in "explanation", in one sentence.'
)


@dataclass(frozen=True)
class _Pair:
    first: int
    second: int
    condition: float
    action: float | None


@dataclass(frozen=True)
class Evaluator:
    """Finds near-duplicates and contradictions among guidelines (see the module's docstring)."""

    cache: EmbeddingCache
    generator: Generator | None = None
    thresholds: Thresholds = Thresholds()
    max_model_pairs: int = 20
    timeout_s: float | None = None

    async def evaluate(
        self, existing: Sequence[Guideline], proposed: Sequence[ProposedGuideline] = ()
    ) -> list[Finding]:
        """``proposed`` against ``existing`` and against each other; with no ``proposed``,
        ``existing`` among themselves. Findings closest first, contradictions before the rest."""
        replaced = {p.updated_id for p in proposed if p.updated_id}
        kept = [g for g in existing if g.id not in replaced]
        refs = [
            GuidelineRef(guideline_id=g.id, condition=g.condition, action=g.action) for g in kept
        ] + [
            GuidelineRef(payload=i, condition=p.condition, action=p.action)
            for i, p in enumerate(proposed)
        ]
        if len(refs) < 2:
            return []
        conditions = await self.cache.embed([r.condition for r in refs])
        actions = await self.cache.embed([r.action or " " for r in refs])
        pairs = self._pairs(refs, conditions @ conditions.T, actions @ actions.T, len(kept))
        offline = {(p.first, p.second): self._offline(refs, p) for p in pairs}
        asked: dict[tuple[int, int], Finding | None] = {}
        if self.generator is not None:
            closest = sorted(pairs, key=lambda p: -(p.condition + (p.action or p.condition)))
            closest = [p for p in closest if not self._same_text(refs, p)]
            chosen = closest[: max(0, self.max_model_pairs)]
            answers = await asyncio.gather(*(self._ask(refs, p) for p in chosen))
            for p, answer in zip(chosen, answers, strict=True):
                asked[(p.first, p.second)] = self._decided(refs, p, answer, offline)
        findings = [f for key, found in offline.items() if (f := asked.get(key, found)) is not None]
        severity = {FindingKind.CONTRADICTION: 0, FindingKind.POSSIBLE_CONTRADICTION: 1}
        findings.sort(key=lambda f: (severity.get(f.kind, 2), -f.condition_similarity))
        return findings

    def _pairs(
        self, refs: Sequence[GuidelineRef], conditions: Vectors, actions: Vectors, stored: int
    ) -> list[_Pair]:
        """The pairs whose conditions are close (in meaning, or in words), each once; with
        proposed ones (indices from ``stored``), only the pairs that hold one."""
        count = len(refs)
        first, second = np.triu_indices(count, 1)
        if stored < count:
            keep = second >= stored
            first, second = first[keep], second[keep]
        similarity = conditions[first, second]
        # Close in meaning, or (a little less close) sharing most of their words.
        near = similarity >= self.thresholds.condition - 0.15
        words = [set(tokenize(r.condition)) for r in refs]
        pairs = []
        for i, j, cosine in zip(
            first[near].tolist(), second[near].tolist(), similarity[near].tolist(), strict=True
        ):
            a, b = refs[i], refs[j]
            if cosine < self.thresholds.condition and _jaccard(words[i], words[j]) < 0.6:
                continue
            if (a.action is None) != (b.action is None):
                continue  # an observation and a guideline do different jobs
            action = None if a.action is None else round(float(actions[i, j]), 4)
            pairs.append(_Pair(i, j, round(cosine, 4), action))
        return pairs

    @staticmethod
    def _same_text(refs: Sequence[GuidelineRef], p: _Pair) -> bool:
        a, b = refs[p.first], refs[p.second]
        return _normalized(a.condition) == _normalized(b.condition) and _normalized(
            a.action
        ) == _normalized(b.action)

    def _offline(self, refs: Sequence[GuidelineRef], p: _Pair) -> Finding | None:
        t = self.thresholds
        a, b = refs[p.first], refs[p.second]

        def finding(kind: FindingKind, by: DecidedBy, reason: str) -> Finding:
            return Finding(
                kind=kind,
                first=a,
                second=b,
                condition_similarity=p.condition,
                action_similarity=p.action,
                decided_by=by,
                reason=reason,
            )

        if self._same_text(refs, p):
            return finding(FindingKind.DUPLICATE, DecidedBy.TEXT, "the same words")
        action = p.action if p.action is not None else 1.0
        close = f"conditions {p.condition:.2f}" + (
            f", actions {p.action:.2f}" if p.action is not None else ""
        )
        if p.action is not None and _negated(a.action) != _negated(b.action):
            words = _overlap(a.action, b.action)
            if action >= t.negated_action or words >= 0.5:
                return finding(
                    FindingKind.POSSIBLE_CONTRADICTION,
                    DecidedBy.TEXT,
                    f"close situations ({close}) where one action forbids something and the "
                    "other does not: check they cannot both apply",
                )
        if p.condition >= t.duplicate and action >= t.duplicate:
            return finding(
                FindingKind.DUPLICATE, DecidedBy.EMBEDDINGS, f"nearly the same meaning ({close})"
            )
        if action >= t.action:
            return finding(
                FindingKind.SIMILAR,
                DecidedBy.EMBEDDINGS,
                f"close in meaning ({close}): check they are meant to differ",
            )
        return None

    async def _ask(self, refs: Sequence[GuidelineRef], p: _Pair) -> PairVerdict | ModelError:
        assert self.generator is not None
        a, b = refs[p.first], refs[p.second]

        def rule(r: GuidelineRef) -> str:
            return f"condition: {r.condition}\naction: {r.action or '(none: an observation)'}"

        prompt = Prompt(system=_INSTRUCTIONS, user=f"RULE A\n{rule(a)}\n\nRULE B\n{rule(b)}")
        try:
            answer = await self.generator.generate(
                prompt, PairVerdict, stage=EVALUATION_STAGE, timeout_s=self.timeout_s
            )
        except ModelError as e:
            return e
        return answer.content

    @staticmethod
    def _decided(
        refs: Sequence[GuidelineRef],
        p: _Pair,
        answer: PairVerdict | ModelError,
        offline: dict[tuple[int, int], Finding | None],
    ) -> Finding | None:
        found = offline[(p.first, p.second)]
        if isinstance(answer, ModelError):
            if found is None:
                return None
            return found.model_copy(
                update={"reason": f"{found.reason} (the model check failed: {answer})"}
            )
        if answer.relation == "distinct":
            return None
        return Finding(
            kind=FindingKind(answer.relation),
            first=refs[p.first],
            second=refs[p.second],
            condition_similarity=p.condition,
            action_similarity=p.action,
            decided_by=DecidedBy.MODEL,
            reason=answer.explanation,
        )
