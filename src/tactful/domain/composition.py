"""The trace's ``composition`` section: how a turn's reply was written, and what the stages
before it gathered for it (glossary terms, variables, retrievers, tool calls).

Every record is a model, so ``/openapi.json`` describes the whole trace. Values whose content
is free (tool arguments and results, variable values) are ``Json``. Traces stored before these
models load as they are: the keys are the ones the engine always wrote, and keys this model
does not know are ignored.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from tactful.domain.agents import CompositionMode
from tactful.domain.common import Json
from tactful.domain.tool_updates import ToolUpdate
from tactful.domain.tools import SessionControl


class ReplyMethod(StrEnum):
    """How the reply was written."""

    # The model wrote it.
    FLUID = "fluid"
    # Templates sent as they are.
    CANNED = "canned"
    # The model wrote it in the style and wording of the closest templates.
    COMPOSITED = "composited"
    # Nothing qualified: the agent's no-match reply.
    NO_MATCH = "no-match"
    # The message was ambiguous: a question asking which intent the customer means.
    CLARIFICATION = "clarification"
    # Moderation flagged the customer's message: the agent's refusal, with no model call.
    REFUSAL = "refusal"


class ArgumentSource(StrEnum):
    """Where a tool argument's value came from."""

    # The customer said it.
    CUSTOMER = "customer"
    # The customer's profile, the session or earlier results hold it.
    CONTEXT = "context"
    # A guess (a consequential tool never runs on one).
    INFERRED = "inferred"
    # Nobody said it.
    MISSING = "missing"


class Clarification(BaseModel):
    """Several candidate intents fit an ambiguous message: ask which one the customer means."""

    model_config = ConfigDict(frozen=True)

    # The guideline (usually an observation) that describes the ambiguity.
    observation_id: str
    # The candidate guidelines, by score (highest first) then id.
    option_ids: list[str]


class TemplateConsidered(BaseModel):
    """A template a turn considered, and why it cannot be sent if it cannot."""

    id: str
    # The active guideline it belongs to; None for a free-standing or retrieved template.
    guideline_id: str | None = None
    qualified: bool
    # Fields the template needs that this turn does not have ("customer.name").
    missing_fields: list[str] = Field(default_factory=list)
    # Why it is disqualified (missing fields, a limit, a refused operation, an error).
    reason: str | None = None
    similarity: float = 0.0


class TemplateScore(BaseModel):
    """A qualifying template scored without a model (its guideline's match strength, its
    closeness to the latest message, its use of tool results); the best is sent."""

    id: str
    guideline_id: str | None = None
    score: float


class TemplateDropped(BaseModel):
    """A template the model chose that was not sent: no such number, or it did not render."""

    # Its number in the list the model was shown.
    template: int
    id: str | None = None
    why: str | None = None
    missing_fields: list[str] = Field(default_factory=list)
    reason: str | None = None


class RuleChecked(BaseModel):
    """The self-check's verdict on one rule about the reply."""

    rule: int
    applies: bool
    follows: bool
    note: str = ""


class SelfCheck(BaseModel):
    """The written draft checked against the rules about replies, and its revision if any."""

    draft: str
    # The check itself failed (the draft went out unchecked).
    failed: str | None = None
    rules: list[RuleChecked] = Field(default_factory=list)
    # Followed guidelines the draft contradicted.
    broken: list[str] = Field(default_factory=list)
    # The text sent instead of the draft, and the guidelines that made it change.
    revised: str | None = None
    because: list[str] = Field(default_factory=list)


class StreamedReply(BaseModel):
    """A reply streamed as the model wrote it: in how many pieces, and whether it finished."""

    chunks: int
    ok: bool


class PreambleSent(BaseModel):
    """The short acknowledgement sent before a slow reply."""

    text: str
    why: str
    event_offset: int
    after_ms: float


class TermFound(BaseModel):
    """A glossary term relevant to the turn."""

    term: str
    # "named" (the conversation says it or a synonym) or "similar".
    why: str
    score: float


class CapabilityOffered(BaseModel):
    """A capability of the agent relevant to the turn, put before the model as something it
    can offer."""

    capability_id: str
    title: str
    score: float


class VariableUsed(BaseModel):
    """A context variable's value this turn, and where it came from."""

    variable_id: str
    name: str
    # The scope that gave it (a customer id, ``tag:<id>`` or ``DEFAULT``); "" when none had one.
    key: str = ""
    value: Json = None
    # Its tool was called this turn.
    refreshed: bool = False
    error: str | None = None


class RetrieverRun(BaseModel):
    """One retriever's run this turn (what it gave is counted; its data went to the prompt)."""

    name: str
    # "agent:<id>", "guideline:<id>", "journey:<id>", or "tool:<tool id>" for a tool whose
    # result brought guidelines or templates (``ToolResult.guidelines``, ``canned_responses``).
    owner: str
    ok: bool
    took_ms: float
    error: str | None = None
    templates: int | None = None
    fields: list[str] | None = None
    guidelines: int | None = None


class ProposedArgument(BaseModel):
    """One argument of a tool call the matching proposed, and where its value came from."""

    name: str
    value: str | int | float | bool | None = None
    source: ArgumentSource


class ProposedToolCall(BaseModel):
    """A call a guideline's tool needs, as the matching proposed it."""

    # The tool's name (not its ``service:name`` id).
    tool: str
    arguments: list[ProposedArgument] = Field(default_factory=list)


class PlannedToolCall(BaseModel):
    """A tool call an active guideline needs this turn, and why it will not run if it won't."""

    guideline_id: str
    tool_id: str
    arguments: dict[str, Json] = Field(default_factory=dict)
    sources: dict[str, ArgumentSource] = Field(default_factory=dict)
    # Required arguments nobody gave; arguments that are guesses.
    missing: list[str] = Field(default_factory=list)
    guessed: list[str] = Field(default_factory=list)
    blocked: str | None = None


class ToolResultRecord(BaseModel):
    """What a tool returned: ``data`` went to the model, ``fields`` to the templates;
    ``canned_responses`` and ``guidelines`` joined this turn's (as a retriever's do)."""

    data: Json = None
    metadata: dict[str, Json] = Field(default_factory=dict)
    fields: dict[str, Json] = Field(default_factory=dict)
    control: SessionControl = SessionControl.NONE
    canned_responses: list[str] = Field(default_factory=list)
    guidelines: list[dict[str, Json]] = Field(default_factory=list)


class ToolCallRecord(BaseModel):
    """One tool call that ran: a result or an error (never both), and when it ran."""

    tool_id: str
    arguments: dict[str, Json] = Field(default_factory=dict)
    result: ToolResultRecord | None = None
    error: str | None = None
    started: datetime
    ended: datetime
    duration_ms: float = 0.0
    timed_out: bool = False


class Reevaluation(BaseModel):
    """One round of checking again the guidelines a tool's result can change."""

    iteration: int
    rechecked: list[str] = Field(default_factory=list)
    now_active: list[str] = Field(default_factory=list)
    no_longer_active: list[str] = Field(default_factory=list)


class Composition(BaseModel):
    """How the reply was written, and what the stages before gathered for it.

    A field that does not apply to the turn keeps its default (None or empty).
    """

    # -- the decision ---------------------------------------------------------------------------
    mode: CompositionMode | None = None
    # Which setting decided the mode: "agent", "guideline <id>", "journey <id> (state <id>)".
    mode_rule: str = ""
    method: ReplyMethod | None = None
    # The templates sent (the first one apart, for clients that show one).
    canned_response_id: str | None = None
    canned_response_ids: list[str] = Field(default_factory=list)
    applied_guideline_ids: list[str] = Field(default_factory=list)
    # Why the reply is what it is when the mode's first choice was not possible.
    reason: str | None = None
    # -- templates ------------------------------------------------------------------------------
    # Every template considered (canned-fluid and strict modes, with a model).
    templates: list[TemplateConsidered] = Field(default_factory=list)
    # Without a model: the qualifying templates with their scores, and the others.
    candidates: list[TemplateScore] = Field(default_factory=list)
    disqualified: list[TemplateConsidered] = Field(default_factory=list)
    # The templates the model chose and that were sent; those it chose that were not.
    chosen: list[str] = Field(default_factory=list)
    dropped: list[TemplateDropped] = Field(default_factory=list)
    # Composited mode: the templates whose style the reply follows.
    style_templates: list[str] = Field(default_factory=list)
    # -- the reply ------------------------------------------------------------------------------
    clarification: Clarification | None = None
    self_check: SelfCheck | None = None
    streamed: StreamedReply | None = None
    preamble: PreambleSent | None = None
    # The model failed while composing: what the reply fell back to, and why.
    degraded: str | None = None
    # -- what the reply drew on -----------------------------------------------------------------
    glossary: list[TermFound] = Field(default_factory=list)
    capabilities: list[CapabilityOffered] = Field(default_factory=list)
    variables: list[VariableUsed] = Field(default_factory=list)
    retrievers: list[RetrieverRun] = Field(default_factory=list)
    tool_plan: list[PlannedToolCall] = Field(default_factory=list)
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    # Tools not called again: this turn ran before (its worker died) and they had succeeded.
    tool_calls_reused: list[str] = Field(default_factory=list)
    # What tools changed of their customer and session (``tactful.domain.tool_updates``).
    tool_updates: list[ToolUpdate] = Field(default_factory=list)
    # The tool that handed the session to a person, and why.
    handoff: str | None = None
    handoff_reason: str | None = None
    reevaluations: list[Reevaluation] = Field(default_factory=list)
    # -- what went wrong on the way -------------------------------------------------------------
    matcher_errors: list[str] = Field(default_factory=list)
    hook_errors: list[str] = Field(default_factory=list)
    # Matching batches that failed; with ``match_degraded``, the offline tier decided them.
    match_failures: list[str] = Field(default_factory=list)
    match_degraded: str | None = None

    def take(self, other: Composition) -> None:
        """Copy in the fields ``other`` was given (the reply's part of the record)."""
        for name in other.model_fields_set:
            setattr(self, name, getattr(other, name))
