"""Journeys: procedures (state machines) the agent follows like an SOP, and the rules a journey's
graph passes before it is stored (``validate``), whichever way it is defined."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, Field

from tactful.domain.agents import CompositionMode
from tactful.domain.common import Entity, new_id
from tactful.domain.guidelines import Guideline


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


def condition_observation(
    guidelines: Iterable[Guideline], condition: str, tags: Collection[str]
) -> Guideline | None:
    """The stored observation a journey starting on ``condition`` reuses: the first with that
    condition, no action and exactly the journey's ``tags`` (in any order). None when there is
    none: the journey then gets a new observation with that condition and those tags. The SDK
    and REST both follow this rule, so the same journey stores the same observations."""
    wanted = set(tags)
    for g in guidelines:
        if g.action is None and g.condition == condition and set(g.tags) == wanted:
            return g
    return None


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


# -- graph rules --------------------------------------------------------------------------------


def _describe(state: JourneyState) -> str:
    if state.action:
        return f"{state.id!r} ({state.action!r})"
    return repr(state.id)


def validate(
    journey: Journey,
    *,
    known_tools: Collection[str] | None = None,
    known_canned_responses: Collection[str] | None = None,
    journeys: Mapping[str, Journey] | None = None,
    complete: bool = True,
) -> list[str]:
    """The problems of ``journey``'s graph, one sentence each; empty when it is valid.

    ``known_tools``: the tool ids tool states may name; ``known_canned_responses``: the canned
    response ids states may name; ``journeys``: the other journeys by id, which sub-journeys
    and cross-journey transitions may name (each unchecked when None). With
    ``complete=False`` (a graph under construction) fork states may still lack their branches.
    The initial state may have no action: it only marks where the journey starts.
    """
    problems: list[str] = []
    counts = Counter(s.id for s in journey.states)
    for state_id, n in counts.items():
        if n > 1:
            problems.append(f"state id {state_id!r} is used by {n} states")
    states = {s.id: s for s in journey.states}

    if not journey.initial_state_id:
        problems.append("the journey has no initial state")
    elif journey.initial_state_id not in states:
        problems.append(f"the initial state {journey.initial_state_id!r} is not a state")

    outgoing: dict[str, list[str]] = defaultdict(list)
    conditional: Counter[str] = Counter()
    for t in journey.transitions:
        if t.target_journey_id == journey.id:
            problems.append(
                f"transition {t.id!r} names its own journey as target_journey_id; leave "
                "target_journey_id out for a transition within the journey"
            )
            continue
        gaps = [] if t.source in states else [f"source {t.source!r} is not a state"]
        if t.target_journey_id is None:
            if t.target not in states:
                gaps.append(f"target {t.target!r} is not a state")
                if len(gaps) == 2:
                    gaps = [f"source {t.source!r} and target {t.target!r} are not a state"]
        elif journeys is not None:
            other = journeys.get(t.target_journey_id)
            if other is None:
                problems.append(
                    f"transition {t.id!r} leads to unknown journey {t.target_journey_id!r}"
                )
            elif t.target not in {s.id for s in other.states}:
                gaps.append(f"target {t.target!r} is not a state of journey {other.id!r}")
        if gaps:
            problems.append(f"transition {t.id!r} is dangling: its {' and its '.join(gaps)}")
        source = states.get(t.source)
        if source is not None and source.kind is StateKind.END:
            problems.append(f"transition {t.id!r} leaves the end state {t.source!r}")
        if source is not None and t.condition:
            conditional[t.source] += 1
        # A cross-journey transition leaves the journey: it makes no local state reachable.
        if not gaps and t.target_journey_id is None:
            outgoing[t.source].append(t.target)

    if journey.initial_state_id in states:
        seen = {journey.initial_state_id}
        todo = [journey.initial_state_id]
        while todo:
            for target in outgoing[todo.pop()]:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        for state_id in states:
            if state_id not in seen:
                problems.append(
                    f"state {_describe(states[state_id])} is unreachable from the initial state"
                )

    known = None if known_tools is None else set(known_tools)
    canned = None if known_canned_responses is None else set(known_canned_responses)
    for state in states.values():
        if state.kind is StateKind.TOOL:
            if not state.tools:
                problems.append(f"tool state {state.id!r} names no tools")
            elif known is not None:
                for tool in state.tools:
                    if tool not in known:
                        problems.append(f"tool state {state.id!r} names unknown tool {tool!r}")
        elif state.kind is StateKind.FORK:
            if complete and conditional[state.id] < 2:
                problems.append(
                    f"fork state {state.id!r} needs at least two outgoing conditional "
                    f"transitions (it has {conditional[state.id]})"
                )
        elif state.kind is StateKind.JOURNEY:
            problems.extend(_sub_journey_problems(journey, state, journeys))
        elif (
            state.kind is StateKind.CHAT
            and not (state.action or "").strip()
            and state.id != journey.initial_state_id
        ):
            problems.append(f"chat state {state.id!r} has no action")
        if state.sub_journey_id and state.kind is not StateKind.JOURNEY:
            problems.append(
                f"{state.kind.value} state {state.id!r} names a sub-journey; only a journey "
                "state runs one"
            )
        if canned is not None:
            for canned_id in state.canned_responses:
                if canned_id not in canned:
                    problems.append(
                        f"state {state.id!r} names unknown canned response {canned_id!r}"
                    )
    return problems


def _sub_journey_problems(
    journey: Journey, state: JourneyState, journeys: Mapping[str, Journey] | None
) -> list[str]:
    sub = state.sub_journey_id
    if not sub:
        return [f"journey state {state.id!r} names no sub-journey"]
    if sub == journey.id:
        return [f"journey state {state.id!r} runs its own journey as a sub-journey"]
    if journeys is None:
        return []
    if sub not in journeys:
        return [f"state {state.id!r} names unknown sub-journey {sub!r}"]
    # Sub-journeys that lead back to this journey would wait on each other for ever.
    seen = {sub}
    todo = [sub]
    while todo:
        current = journeys.get(todo.pop())
        for s in current.states if current is not None else []:
            nested = s.sub_journey_id
            if s.kind is not StateKind.JOURNEY or not nested or nested in seen:
                continue
            if nested == journey.id:
                return [f"journey state {state.id!r} runs {sub!r}, which runs this journey in turn"]
            seen.add(nested)
            todo.append(nested)
    return []
