"""Traces: why the agent said what it said in one turn.

The whole record is typed (sections as models, states as ``StrEnum``s whose JSON is the same
strings), so ``/openapi.json`` describes it completely; the Python client reads these models.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import BaseModel, BeforeValidator, Field

from tactful.domain.common import Entity
from tactful.domain.composition import Composition, ProposedToolCall
from tactful.domain.journeys import RunStatus
from tactful.domain.moderation import ModerationRecord
from tactful.domain.proactive import ProactiveRequest


def _blank_is_none(value: object) -> object:
    # Records written before a state was an enum could leave it "" (unknown).
    return None if value == "" else value


class TraceStatus(StrEnum):
    """Where a turn's trace stands."""

    RUNNING = "running"
    DONE = "done"
    # The turn failed (``Trace.error`` says why).
    ERROR = "error"
    # A newer customer message superseded the turn.
    CANCELLED = "cancelled"
    # The session or its agent was deleted while the turn ran.
    DROPPED = "dropped"


class MatchMethod(StrEnum):
    """What decided a guideline's verdict."""

    MODEL = "model"
    # The offline tier: similarity to the conversation against a threshold.
    OFFLINE_SIMILARITY = "offline-similarity"
    # Offline rules (a journey's tool state, say).
    OFFLINE = "offline"
    # The guideline's code matcher.
    CODE = "code"
    # A relationship activated it (see the resolution steps).
    RESOLUTION = "resolution"
    # A retriever gave it for this turn.
    RETRIEVER = "retriever"
    # A followed journey's step, as a synthetic guideline.
    JOURNEY = "journey"
    # An action asked for with a request to speak (a proactive turn).
    REQUESTED = "requested"


class ResolutionRule(StrEnum):
    """The relationship rule that took a resolution step."""

    ALWAYS = "always"
    ENTAILMENT = "entailment"
    DEPENDENCY = "dependency"
    DEPENDENCY_ANY = "dependency_any"
    PRIORITY = "priority"
    EXCLUSION = "exclusion"
    NUMERIC_PRIORITY = "numeric_priority"
    DISAMBIGUATION = "disambiguation"


class ResolutionEffect(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    # Removed until the customer says which of several intents they mean.
    CLARIFY = "clarify"


class JourneyStepKind(StrEnum):
    """What a turn did with a journey."""

    START = "start"
    ADVANCE = "advance"
    STAY = "stay"
    # Advanced past states the customer already answered.
    SKIP = "skip"
    BACKTRACK = "backtrack"
    PAUSE = "pause"
    # Paused, and the customer turned to another journey.
    SWITCH = "switch"
    RESUME = "resume"
    END = "end"
    DROP = "drop"
    # Ended here and continued in another journey.
    HANDOFF = "handoff"
    # Entered a sub-journey state: the sub-journey starts, its parent waits.
    SUB_JOURNEY = "sub-journey"
    # A sub-journey ended and its parent continued.
    RETURN = "return"
    # Went on after a tool state.
    CONTINUE = "continue"
    # A relationship removed the journey this turn: no step taken.
    SUPPRESSED = "suppressed"


class JourneyStepMethod(StrEnum):
    """What decided a journey step."""

    MODEL = "model"
    # Rules and similarity, no model.
    OFFLINE = "offline"
    # A code matcher chose the branch.
    CODE = "code"
    # Deterministic walking.
    ENGINE = "engine"


class ModelCall(BaseModel):
    """One call to the model: its stage, what it used, what it cost, how long it took."""

    stage: str
    # As the provider reports it ("gpt-4o-mini-2024-07-18"); the configured name if it failed.
    model: str
    # Who served it ("openai", "anthropic", ...; "" in traces from before it was recorded).
    provider: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Prompt tokens the provider served from its prompt cache.
    cached_tokens: int = 0
    latency_ms: float = 0.0
    ok: bool = True
    error: str | None = None
    # US dollars from the price table (``tactful.domain.pricing``); None when the model has no
    # price, or the call failed (a failed call reports no usage).
    cost_usd: float | None = None


class ModelUsage(BaseModel):
    """What model calls used and cost, summed (a turn's, or a session's).

    ``cost_usd`` sums the calls whose cost is known; ``cost_complete`` says whether every call
    that reported usage had a price. When calls were made and none was priced, ``cost_usd`` is
    None (unknown), never 0. Failed calls count in ``model_calls`` only.
    """

    model_calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    cost_complete: bool = True

    @classmethod
    def of(cls, calls: list[ModelCall]) -> ModelUsage:
        """The totals of ``calls``."""
        used = [c for c in calls if c.ok]
        known = [c.cost_usd for c in used if c.cost_usd is not None]
        complete = len(known) == len(used)
        return cls(
            model_calls=len(calls),
            prompt_tokens=sum(c.prompt_tokens for c in used),
            cached_tokens=sum(c.cached_tokens for c in used),
            completion_tokens=sum(c.completion_tokens for c in used),
            cost_usd=sum(known) if known or complete else None,
            cost_complete=complete,
        )


class Candidate(BaseModel):
    """A guideline retrieval put forward for matching, and why."""

    guideline_id: str
    condition: str
    score: float
    rank: int
    # 1: a detailed check; 2: the compact screen.
    tier: int = 1
    # Why it was a candidate: "top-k", "always-check: emotion", "recent match", "dependency"...
    reasons: list[str] = Field(default_factory=list)


class MatchVerdict(BaseModel):
    """One guideline's check: did its condition hold, how sure, why, and what decided."""

    guideline_id: str
    condition: str
    action: str | None = None
    applies: bool
    score: float | None = None
    rationale: str = ""
    method: Annotated[MatchMethod | None, BeforeValidator(_blank_is_none)] = None
    condition_restated: str = ""
    evidence: str = ""
    # Applied earlier in this session, and whether the model said it must be applied again.
    applied_before: bool = False
    reapply: bool | None = None
    tier: int = 1
    # For a guideline with tools: the calls the model proposed, each argument with its source
    # ("customer", "context", "inferred" or "missing").
    tool_calls: list[ProposedToolCall] = Field(default_factory=list)


class ResolutionStep(BaseModel):
    """One deterministic step of resolving relationships: what it removed or added, and why."""

    rule: ResolutionRule
    effect: ResolutionEffect
    guideline_id: str
    because: list[str] = Field(default_factory=list)
    detail: str = ""


class TurnBail(BaseModel):
    """A stage hook that ended its turn: which hook, at which stage (before or after it), why,
    and whether it handed the session to a person (docs/hooks.md)."""

    hook: str
    stage: str
    when: str
    reason: str = ""
    hand_off: bool = False


class Trace(Entity):
    collection: ClassVar[str] = "traces"
    session_id: str
    agent_id: str
    # The customer message the turn answers; for a proactive turn, the status that opened it.
    customer_event_offset: int = 0
    # What asked the agent to speak without a customer message (None: a customer message).
    proactive: ProactiveRequest | None = None
    tier: str = ""
    status: TraceStatus = TraceStatus.RUNNING
    candidates: list[Candidate] = Field(default_factory=list)
    matches: list[MatchVerdict] = Field(default_factory=list)
    resolution: list[ResolutionStep] = Field(default_factory=list)
    final_guideline_ids: list[str] = Field(default_factory=list)
    # Per journey in play: the state before and after, and why (see ``JourneyStep``).
    journeys: list[JourneyStep] = Field(default_factory=list)
    # How the reply was written, and what it drew on (tools, variables, glossary...).
    composition: Composition = Field(default_factory=Composition)
    # The moderation of the customer message this turn answers (None: it was not checked).
    moderation: ModerationRecord | None = None
    model_calls: list[ModelCall] = Field(default_factory=list)
    # Where the turn went on without (part of) its model, and why: matching decided by the
    # offline tier, a reply from canned responses (docs/models.md, "When a model fails").
    degraded: list[str] = Field(default_factory=list)
    # The model calls' totals (``ModelUsage.of(model_calls)``, kept by the trace recorder).
    usage: ModelUsage = Field(default_factory=ModelUsage)
    stage_timings_ms: dict[str, float] = Field(default_factory=dict)
    message_event_id: str | None = None
    # The labels of the turn's active guidelines and followed journeys, which it gives its
    # session with its reply; and those of them the session did not have yet.
    session_labels: list[str] = Field(default_factory=list)
    session_labels_added: list[str] = Field(default_factory=list)
    error: str | None = None
    # The stage hook that ended the turn early (None: no hook did).
    bailed: TurnBail | None = None
    # Which run of the turn this is: above 1, its turn ran again after a worker died.
    attempt: int = 1


class TransitionConsidered(BaseModel):
    """A transition out of the state a journey was at, and whether it was taken."""

    transition_id: str
    target: str
    condition: str | None = None
    taken: bool = False
    why: str = ""


class JourneyStep(BaseModel):
    """What one turn did with one journey: the state before and after, and why."""

    journey_id: str
    title: str
    kind: JourneyStepKind
    status_before: RunStatus | None = None
    status_after: RunStatus
    state_before: str | None = None
    state_after: str | None = None
    # The same states as people read them: "2 (Ask for the order number)".
    label_before: str | None = None
    label_after: str | None = None
    # States entered this turn, in order (skipped states are walked through).
    entered: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)
    considered: list[TransitionConsidered] = Field(default_factory=list)
    method: Annotated[JourneyStepMethod | None, BeforeValidator(_blank_is_none)] = None
    rationale: str = ""
