"""One step of a scenario against a running server: post it, wait for the agent's turn, and
gather what the turn did (``TurnRecord``) for the expectations to check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tactful.domain import (
    Event,
    EventKind,
    EventSource,
    ProactiveKind,
    ProactiveRequest,
    RequestedAction,
    Session,
    SessionMode,
    SessionStatus,
    ToolCallRecord,
    Trace,
)
from tactful.domain.journeys import Journey, JourneyProgress, JourneyRun
from tactful.engine.journeys.graph import JourneyGraph
from tactful.scenarios.spec import Step
from tactful.server import Server


@dataclass(frozen=True)
class StateName:
    """A journey state as the trace labels it ("2 (Ask for the order number)")."""

    number: str
    what: str

    def __str__(self) -> str:
        return f"{self.number} ({self.what})"

    def named_by(self, given: str) -> bool:
        """Whether ``given`` names this state: its number, or words of what it does."""
        return given == self.number or given.casefold() in self.what.casefold()


@dataclass
class TurnRecord:
    """What the agent did after one step: its replies, events, trace and where the session
    stands (journeys, mode)."""

    index: int
    step: Step
    events: list[Event] = field(default_factory=list)
    trace: Trace | None = None
    journeys: dict[str, JourneyRun] = field(default_factory=dict)
    # Each journey's current state as people name it: its number and what it does.
    states: dict[str, StateName] = field(default_factory=dict)
    mode: SessionMode = SessionMode.AUTO

    @property
    def replies(self) -> list[str]:
        return [
            str(e.data.get("message", ""))
            for e in self.events
            if e.kind is EventKind.MESSAGE
            and e.source is EventSource.AI_AGENT
            and isinstance(e.data, dict)
        ]

    @property
    def reply(self) -> str:
        return "\n".join(self.replies)

    @property
    def tool_calls(self) -> list[ToolCallRecord]:
        calls = []
        for event in self.events:
            if event.kind is EventKind.TOOL and isinstance(event.data, dict):
                raw: list[Any] = event.data.get("tool_calls", [])
                calls += [ToolCallRecord.model_validate(c) for c in raw]
        return calls

    @property
    def status(self) -> SessionStatus | None:
        statuses = [
            str(e.data.get("status"))
            for e in self.events
            if e.kind is EventKind.STATUS
            and e.source is EventSource.AI_AGENT
            and isinstance(e.data, dict)
        ]
        return SessionStatus(statuses[-1]) if statuses else None

    @property
    def handed_off(self) -> bool:
        return self.mode is SessionMode.MANUAL or bool(
            self.trace is not None and self.trace.composition.handoff
        )


async def take_step(server: Server, session_id: str, index: int, step: Step) -> TurnRecord:
    """Post ``step`` on the session and wait until the agent's turn (if any) is over."""
    engine = server.runtime.engine
    store = server.runtime.store
    record = TurnRecord(index=index, step=step)
    if step.event is not None:
        posted = await engine.timeline.append(
            session_id, EventKind.CUSTOM, EventSource.CUSTOMER, step.event.data
        )
    elif step.agent_speaks is not None:
        actions = [RequestedAction(action=a) for a in step.agent_speaks]
        kind = ProactiveKind.UTTERANCE if actions else ProactiveKind.GREETING
        posted = await engine.speak(session_id, ProactiveRequest(kind=kind, actions=actions))
    else:
        assert step.customer is not None
        posted = await engine.post_customer_message(
            session_id, step.customer, moderation=step.moderation
        )
    await engine.wait_idle(session_id)
    record.events = await store.list_events(session_id, min_offset=posted.offset + 1)
    record.trace = await _trace(server, session_id, posted, record.events)
    progress = await store.find(JourneyProgress, session_id)
    record.journeys = dict(progress.runs) if progress is not None else {}
    record.states = await _state_names(server, record.journeys)
    record.mode = (await store.get(Session, session_id)).mode
    return record


async def _trace(
    server: Server, session_id: str, posted: Event, events: list[Event]
) -> Trace | None:
    store = server.runtime.store
    for event in reversed(events):
        if event.trace_id:
            found = await store.find(Trace, event.trace_id)
            if found is not None:
                return found
    traces = await store.list(Trace, session_id=session_id)
    return next((t for t in traces if t.customer_event_offset == posted.offset), None)


async def _state_names(server: Server, runs: dict[str, JourneyRun]) -> dict[str, StateName]:
    names = {}
    for journey_id, run in runs.items():
        journey = await server.runtime.store.find(Journey, journey_id)
        if journey is None or run.current is None:
            continue
        named = JourneyGraph(journey).naming(run.current)
        if named is not None:
            names[journey_id] = StateName(*named)
    return names
