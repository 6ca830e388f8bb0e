"""Journeys: procedures (state machines) the agent follows like an SOP."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, Field

from tactful.domain.agents import CompositionMode
from tactful.domain.common import Entity, new_id


class StateKind(StrEnum):
    CHAT = "chat"
    TOOL = "tool"
    FORK = "fork"
    END = "end"


class JourneyState(BaseModel):
    id: str = Field(default_factory=new_id)
    kind: StateKind = StateKind.CHAT
    action: str | None = None
    tools: list[str] = Field(default_factory=list)
    composition_mode: CompositionMode | None = None
    sub_journey_id: str | None = None


class JourneyTransition(BaseModel):
    id: str = Field(default_factory=new_id)
    source: str
    target: str
    condition: str | None = None


class Journey(Entity):
    collection: ClassVar[str] = "journeys"
    title: str = Field(min_length=1, max_length=500)
    description: str = ""
    conditions: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    priority: int = 0
    composition_mode: CompositionMode | None = None
    initial_state_id: str = ""
    states: list[JourneyState] = Field(default_factory=list)
    transitions: list[JourneyTransition] = Field(default_factory=list)
