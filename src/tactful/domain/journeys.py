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
    # Runs another journey (``sub_journey_id``) to its end, then continues from here.
    JOURNEY = "journey"


class JourneyState(BaseModel):
    id: str = Field(default_factory=new_id)
    kind: StateKind = StateKind.CHAT
    action: str | None = None
    tools: list[str] = Field(default_factory=list)
    composition_mode: CompositionMode | None = None
    sub_journey_id: str | None = None
    # Canned responses this state prefers (ids).
    canned_responses: list[str] = Field(default_factory=list)


class JourneyTransition(BaseModel):
    id: str = Field(default_factory=new_id)
    source: str
    target: str
    condition: str | None = None
    # A cross-journey transition: ``target`` is a state of this other journey. Taking it ends
    # this journey and continues in the other one at that state.
    target_journey_id: str | None = None


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


def journey_tag(journey_id: str) -> str:
    """The tag that scopes guidelines and canned responses to a journey (Parlant's form).

    In a relationship, this tag stands for the journey itself: active while it is followed.
    """
    return f"journey:{journey_id}"


class RunStatus(StrEnum):
    ACTIVE = "active"
    # Interrupted: the customer turned to something else; the journey keeps its place.
    PAUSED = "paused"
    # Waiting for a sub-journey to end.
    WAITING = "waiting"
    ENDED = "ended"


class JourneyRun(BaseModel):
    """One session's way through one journey."""

    journey_id: str
    status: RunStatus = RunStatus.ACTIVE
    # States entered, oldest first; the current state is the last. A backtrack enters an
    # earlier state again, so a state may appear more than once.
    path: list[str] = Field(default_factory=list)
    # Why it ended: "completed", "dropped", "continued in <journey id>".
    ended_reason: str | None = None
    # The journey that started this one as a sub-journey (it continues when this one ends).
    parent_journey_id: str | None = None
    # The customer message offset of the turn that last changed this run.
    updated_offset: int = 0

    @property
    def current(self) -> str | None:
        return self.path[-1] if self.path else None

    @property
    def live(self) -> bool:
        return self.status is not RunStatus.ENDED


class JourneyProgress(Entity):
    """Every journey run of one session; ``id`` is the session's id.

    Kept apart from the session document, so the engine's writes never race a session PATCH.
    """

    collection: ClassVar[str] = "journey_progress"
    runs: dict[str, JourneyRun] = Field(default_factory=dict)
