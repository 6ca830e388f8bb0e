"""Sessions: one conversation between an agent and a customer."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from tactful.domain.common import Entity
from tactful.domain.handoff import Handoff


class SessionMode(StrEnum):
    AUTO = "auto"
    MANUAL = "manual"


class ConsumptionOffsets(BaseModel):
    client: int = 0


class Session(Entity):
    collection: ClassVar[str] = "sessions"
    agent_id: str
    customer_id: str
    mode: SessionMode = SessionMode.AUTO
    title: str | None = Field(default=None, max_length=500)
    metadata: dict[str, Any] = Field(default_factory=dict)
    labels: list[str] = Field(default_factory=list)
    consumption_offsets: ConsumptionOffsets = Field(default_factory=ConsumptionOffsets)
    # Started by an anonymous browser (guest sessions): its unguessable id is the capability
    # to use it, and only while its agent still takes guest sessions.
    guest: bool = False
    # Per-session agent state: guidelines applied so far, active journeys (later issues).
    agent_state: dict[str, Any] = Field(default_factory=dict)
    # In manual mode: why, since when and by whom it was handed to a person, and who took it
    # (``tactful.domain.handoff``). None in automatic mode.
    handoff: Handoff | None = None
