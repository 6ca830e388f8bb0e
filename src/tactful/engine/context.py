"""Stage 2, context: everything a turn needs, read once from the store (no model call)."""

from __future__ import annotations

import gc
import re
from dataclasses import dataclass, field
from functools import cached_property

from tactful.domain import (
    Agent,
    CannedResponse,
    Capability,
    ContextVariable,
    Customer,
    Event,
    EventKind,
    EventSource,
    Guideline,
    Journey,
    JourneyProgress,
    ProactiveRequest,
    Relationship,
    Session,
    Term,
    agent_tag,
)
from tactful.domain.moderation import ModerationRecord, moderation_note
from tactful.store.base import Store

HISTORY_WINDOW = 8

# A message that asks something: a question mark, or a sentence opening on a question word or a
# request ("how do I…", "can you…", "I want to…"), typed without the mark as chat often is.
_ASKS = re.compile(
    r"\?|(?:^|[.!;:]\s+|\n)\s*(?:how|what|when|where|why|which|who|whose|is|are|was|were|do|"
    r"does|did|can|could|will|would|should|may|might|have|has|i (?:want|need|would like)|"
    r"i'd like|please)\b",
    re.IGNORECASE,
)

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
    # The categories moderation flagged in a customer message (empty: not flagged).
    flags: tuple[str, ...] = ()

    @property
    def note(self) -> str:
        """What the prompts add after the message: why moderation flagged it, if it did."""
        return moderation_note(self.flags) if self.flags else ""


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
    # What the agent can do for a customer (those relevant to the turn are offered).
    capabilities: list[Capability] = field(default_factory=list)
    # The agent snapshot the definitions above were copied from (None: built by hand), so
    # that work done once per snapshot is found again.
    snapshot: AgentSnapshot | None = None
    # How moderation checked the customer message this turn answers (None: not checked).
    moderation: ModerationRecord | None = None
    # A proactive turn: what asked the agent to speak without a new customer message.
    proactive: ProactiveRequest | None = None

    def guideline(self, guideline_id: str) -> Guideline:
        return self.guidelines_by_id[guideline_id]

    @cached_property
    def guidelines_by_id(self) -> dict[str, Guideline]:
        return {g.id: g for g in self.guidelines}

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

    def answers(self, offset: int) -> bool:
        """Whether the turn answers a customer message at ``offset`` (not: a proactive turn)."""
        return bool(self.messages) and self.messages[-1].offset == offset

    def window(self, size: int = HISTORY_WINDOW) -> list[Utterance]:
        return self.messages[-size:]

    def recent_customer_messages(self, count: int = 3) -> list[str]:
        return [u.text for u in self.messages if u.role == "customer"][-count:]

    def prior_roles(self) -> set[str]:
        """Who wrote before the latest customer message (everyone's messages if none)."""
        last = max((i for i, u in enumerate(self.messages) if u.role == "customer"), default=None)
        return {u.role for u in self.messages[:last]}

    def earlier_customer_questions(
        self, *, after: int = 3, within: int = HISTORY_WINDOW, count: int = 3
    ) -> list[str]:
        """The customer's questions and requests before their latest ``after`` messages, among
        their last ``within`` messages (at most ``count``, oldest first).

        A customer who comes back to an earlier question ("going back to points: is it a 500
        minimum?") refers to it without repeating it, often after more than ``after`` messages.
        """
        customer = [u.text for u in self.messages if u.role == "customer"]
        earlier = customer[-within:-after] if after > 0 else customer[-within:]
        return [t for t in earlier if _ASKS.search(t)][-count:] if count > 0 else []


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
    flags: tuple[str, ...] = ()
    if role == "customer" and event.data.get("flagged") is True:
        tags = event.data.get("tags")
        flags = tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else ()
        flags = flags or ("unsafe content",)
    return Utterance(role=role, text=text, offset=event.offset, flags=flags)


def _moderation_of(events: list[Event], offset: int | None) -> ModerationRecord | None:
    """The moderation record of the customer message at ``offset`` (the turn's), if checked."""
    if offset is None or not events or events[-1].offset != offset:
        return None
    data = events[-1].data
    found = data.get("moderation") if isinstance(data, dict) else None
    if not isinstance(found, dict):
        return None
    try:
        return ModerationRecord.model_validate(found)
    except ValueError:
        return None


@dataclass(frozen=True)
class AgentSnapshot:
    """What defines one agent, read at one definitions revision. Shared between turns: the
    engine reads it and never changes it (a turn gets its own lists)."""

    revision: int
    agent: Agent
    guidelines: tuple[Guideline, ...]
    canned_responses: tuple[CannedResponse, ...]
    terms: tuple[Term, ...]
    relationships: tuple[Relationship, ...]
    journeys: tuple[Journey, ...]
    # The context variables' definitions (their values are per customer: read every turn).
    variables: tuple[ContextVariable, ...] = ()
    capabilities: tuple[Capability, ...] = ()


class SnapshotCache:
    """Agent snapshots kept in memory, versioned by the store's definitions revision.

    A turn reads one number to know whether its agent's snapshot is current; a change by any
    process on the database bumps it, and the next turn reads the definitions again.
    """

    def __init__(self) -> None:
        self._by_agent: dict[str, AgentSnapshot] = {}
        self.loads = 0
        self._froze = False

    async def get(self, store: Store, agent_id: str) -> AgentSnapshot:
        revision = await store.definitions_revision()
        cached = self._by_agent.get(agent_id)
        if cached is not None and cached.revision == revision:
            return cached
        # Read after the revision: a change made meanwhile bumps it again, so the next turn
        # reads anew and never keeps a snapshot older than its number.
        snapshot = await _read_snapshot(store, agent_id, revision)
        self.loads += 1
        self._by_agent[agent_id] = snapshot
        # A snapshot lives until the definitions change: take it (with everything else alive
        # now) out of the collector's scans, so that a full collection during a turn does not
        # walk its definitions (measured: 100 ms at 1,000 guidelines). Given back on close.
        gc.freeze()
        self._froze = True
        return snapshot

    def close(self) -> None:
        """Give what was frozen back to the collector (kept for good otherwise), which frees
        what the closing server held in its own time. Not collected here: a full collection
        walks every object of the process, and in one that starts many servers (tests,
        scenario runs) that cost 250 ms a close (measured over tests/api: 8.5 of its 75 s).
        The price is memory held longer: that run's peak went from 233 to 414 MB."""
        if self._froze:
            gc.unfreeze()
            self._froze = False


async def _read_snapshot(store: Store, agent_id: str, revision: int) -> AgentSnapshot:
    agent = await store.get(Agent, agent_id)
    return AgentSnapshot(
        revision=revision,
        agent=agent,
        guidelines=tuple(
            g for g in await store.list(Guideline) if g.enabled and in_agent_scope(g.tags, agent)
        ),
        canned_responses=tuple(
            c for c in await store.list(CannedResponse) if in_agent_scope(c.tags, agent)
        ),
        terms=tuple(t for t in await store.list(Term) if in_agent_scope(t.tags, agent)),
        relationships=tuple(await store.list(Relationship)),
        journeys=tuple(j for j in await store.list(Journey) if in_agent_scope(j.tags, agent)),
        variables=tuple(
            v for v in await store.list(ContextVariable) if in_agent_scope(v.tags, agent)
        ),
        capabilities=tuple(
            c for c in await store.list(Capability) if in_agent_scope(c.tags, agent)
        ),
    )


async def load_context(
    store: Store,
    session_id: str,
    snapshots: SnapshotCache | None = None,
    *,
    up_to: int | None = None,
) -> TurnContext:
    """What a turn knows: the agent's definitions, the customer, and the session's messages
    (up to offset ``up_to`` when given: the customer message the turn answers)."""
    # One transaction for every read: one connection and one commit instead of six.
    async with store.transaction(read_only=True):
        return await _load_context(store, session_id, snapshots, up_to)


async def _load_context(
    store: Store, session_id: str, snapshots: SnapshotCache | None, up_to: int | None
) -> TurnContext:
    session = await store.get(Session, session_id)
    if snapshots is None:
        snapshot = await _read_snapshot(store, session.agent_id, -1)
    else:
        snapshot = await snapshots.get(store, session.agent_id)
    customer = await store.find(Customer, session.customer_id) or Customer(
        id=session.customer_id, name="Guest"
    )
    events = await store.list_events(session_id, kinds=[EventKind.MESSAGE])
    if up_to is not None:
        events = [e for e in events if e.offset <= up_to]
    messages = [u for u in map(_utterance, events) if u is not None]
    applied_history = [
        [g for g in e.data.get("guidelines", []) if isinstance(g, str)]
        for e in events
        if e.source is EventSource.AI_AGENT
        and isinstance(e.data, dict)
        and not e.metadata.get("preamble")
    ]
    progress = await store.find(JourneyProgress, session_id) or JourneyProgress(id=session_id)
    return TurnContext(
        agent=snapshot.agent,
        session=session,
        customer=customer,
        messages=messages,
        guidelines=list(snapshot.guidelines),
        canned_responses=list(snapshot.canned_responses),
        terms=list(snapshot.terms),
        relationships=list(snapshot.relationships),
        applied_history=applied_history,
        journeys=list(snapshot.journeys),
        progress=progress,
        capabilities=list(snapshot.capabilities),
        snapshot=snapshot,
        moderation=_moderation_of(events, up_to),
    )
