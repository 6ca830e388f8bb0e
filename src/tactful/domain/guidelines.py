"""Guidelines: a condition and an action; without an action, an observation."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from tactful.domain.agents import CompositionMode
from tactful.domain.common import Entity


class Criticality(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Guideline(Entity):
    collection: ClassVar[str] = "guidelines"
    condition: str = Field(min_length=1, max_length=4000)
    action: str | None = Field(default=None, max_length=4000)
    description: str | None = None
    priority: int = 0
    criticality: Criticality = Criticality.MEDIUM
    enabled: bool = True
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    composition_mode: CompositionMode | None = None
    labels: list[str] = Field(default_factory=list)
    # Tool ids ("service:tool") this guideline makes available while it is active.
    tools: list[str] = Field(default_factory=list)
    # Example customer utterances that help retrieval find this guideline.
    examples: list[str] = Field(default_factory=list)
    # Canned responses this guideline prefers.
    canned_responses: list[str] = Field(default_factory=list)
    # Author's override of the always-check classification (None: classified automatically).
    always_check: bool | None = None
    # Always-match marker: the guideline applies on every turn, with no check.
    always: bool = False
    # Whether the condition is about the agent's own reply ("the agent is about to promise a
    # date"): checked against the draft, not before it (None: classified from the wording).
    about_reply: bool | None = None

    @property
    def is_observation(self) -> bool:
        return self.action is None


class TransientGuideline(BaseModel):
    """A guideline a retriever or a tool says applies this turn: it is not matched, it is
    applied as it is. Without a condition it applies to this turn whatever was said."""

    condition: str = Field(default="", max_length=4000)
    action: str = Field(min_length=1, max_length=4000)
