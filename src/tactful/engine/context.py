"""Stage 2, context: everything a turn needs, read once from the store (no model call)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tactful.domain import (
    Agent,
    CannedResponse,
    Customer,
    Event,
    EventKind,
    EventSource,
    Guideline,
    Journey,
    JourneyProgress,
    Relationship,
    Session,
    Term,
    agent_tag,
)
from tactful.store.base import Store

HISTORY_WINDOW = 8

_AGENT_SOURCES = {
    EventSource.AI_AGENT,
    EventSource.HUMAN_AGENT,
    EventSource.HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT,
}


@dataclass(frozen=True)
class Utterance:
    """One message of the conversation as prompts and retrieval see it."""

    role: str  # "customer" or "agent"
    text: str
    offset: int


@dataclass
class TurnContext:
    agent: Agent
    session: Session
    customer: Customer
    messages: list[Utterance]
    guidelines: list[Guideline]
    canned_responses: list[CannedResponse]
    terms: list[Term]
    relationships: list[Relationship] = field(default_factory=list)
    # The guideline ids each earlier agent reply applied, oldest first.
    applied_history: list[list[str]] = field(default_factory=list)
    # The agent's journeys and this session's way through them.
    journeys: list[Journey] = field(default_factory=list)
    progress: JourneyProgress = field(default_factory=lambda: JourneyProgress(id="unsaved"))

    @property
    def applied_before(self) -> set[str]:
        return {gid for ids in self.applied_history for gid in ids}

    def recent_matches(self, turns: int = 3) -> set[str]:
        return {gid for ids in self.applied_history[-turns:] for gid in ids}

    @property
    def last_customer_message(self) -> str:
        for u in reversed(self.messages):
            if u.role == "customer":
                return u.text
        return ""

    def window(self, size: int = HISTORY_WINDOW) -> list[Utterance]:
        return self.messages[-size:]

    def recent_customer_messages(self, count: int = 3) -> list[str]:
        return [u.text for u in self.messages if u.role == "customer"][-count:]


def in_agent_scope(tags: list[str], agent: Agent) -> bool:
    """Untagged definitions are global; tagged ones need the agent's tag or a tag it carries."""
    return not tags or agent_tag(agent.id) in tags or bool(set(tags) & set(agent.tags))


def _utterance(event: Event) -> Utterance | None:
    if event.kind is not EventKind.MESSAGE or not isinstance(event.data, dict):
        return None
    text = event.data.get("message")
    if not isinstance(text, str):
        return None
    role = "agent" if event.source in _AGENT_SOURCES else "customer"
    if event.source is EventSource.SYSTEM:
        return None
    return Utterance(role=role, text=text, offset=event.offset)


async def load_context(store: Store, session_id: str) -> TurnContext:
    session = await store.get(Session, session_id)
    agent = await store.get(Agent, session.agent_id)
    customer = await store.find(Customer, session.customer_id) or Customer(
        id=session.customer_id, name="Guest"
    )
    events = await store.list_events(session_id, kinds=[EventKind.MESSAGE])
    messages = [u for u in map(_utterance, events) if u is not None]
    applied_history = [
        [g for g in e.data.get("guidelines", []) if isinstance(g, str)]
        for e in events
        if e.source is EventSource.AI_AGENT
        and isinstance(e.data, dict)
        and not e.metadata.get("preamble")
    ]
    guidelines = [
        g for g in await store.list(Guideline) if g.enabled and in_agent_scope(g.tags, agent)
    ]
    canned = [c for c in await store.list(CannedResponse) if in_agent_scope(c.tags, agent)]
    terms = [t for t in await store.list(Term) if in_agent_scope(t.tags, agent)]
    relationships = await store.list(Relationship)
    journeys = [j for j in await store.list(Journey) if in_agent_scope(j.tags, agent)]
    progress = await store.find(JourneyProgress, session_id) or JourneyProgress(id=session_id)
    return TurnContext(
        agent=agent,
        session=session,
        customer=customer,
        messages=messages,
        guidelines=guidelines,
        canned_responses=canned,
        terms=terms,
        relationships=relationships,
        applied_history=applied_history,
        journeys=journeys,
        progress=progress,
    )
