"""Evaluations: a check, at definition time, of guidelines against each other (near-duplicates,
contradictions). It reports; it never blocks a definition."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from tactful.domain.common import Entity


class EvaluationStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class FindingKind(StrEnum):
    # The same condition and action (in words, or nearly so in meaning).
    DUPLICATE = "duplicate"
    # Close conditions and close actions: meant to differ? (no model said which)
    SIMILAR = "similar"
    # The model says both can hold at once and their actions cannot both be followed.
    CONTRADICTION = "contradiction"
    # Close conditions, and one action forbids what the other does (found in words, offline).
    POSSIBLE_CONTRADICTION = "possible_contradiction"


class DecidedBy(StrEnum):
    TEXT = "text"
    EMBEDDINGS = "embeddings"
    MODEL = "model"


class ProposedGuideline(BaseModel):
    """A guideline to evaluate before (or instead of) storing it. ``updated_id``: the stored
    guideline it would replace (not compared with itself)."""

    condition: str = Field(min_length=1, max_length=4000)
    action: str | None = Field(default=None, max_length=4000)
    updated_id: str | None = Field(default=None, max_length=128)


class GuidelineRef(BaseModel):
    """One side of a finding: a stored guideline (``guideline_id``) or one of the evaluation's
    own payloads (``payload``, its index)."""

    guideline_id: str | None = None
    payload: int | None = None
    condition: str
    action: str | None = None


class Finding(BaseModel):
    kind: FindingKind
    first: GuidelineRef
    second: GuidelineRef
    condition_similarity: float
    # None: neither has an action (two observations).
    action_similarity: float | None = None
    decided_by: DecidedBy
    reason: str


class Evaluation(Entity):
    collection: ClassVar[str] = "evaluations"
    # The agent whose guidelines the payloads are compared with (None: every stored guideline).
    agent_id: str | None = None
    status: EvaluationStatus = EvaluationStatus.PENDING
    progress: float = 0.0
    error: str | None = None
    # As the request gave them (Parlant's payload shape), and as evaluated.
    payloads: list[dict[str, Any]] = Field(default_factory=list)
    proposed: list[ProposedGuideline] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
