"""What the REST API answers, as the client sees it.

These models accept fields they do not know (the server may add some). The records an admin
reads (agents, guidelines, journeys, sessions) keep them too, so ``--json`` prints the API's
whole object; the rest keep only what a caller needs. A trace is the domain's ``Trace``
itself, so the client reads every section the server records, typed as the engine writes it;
a plan of definitions is likewise ``tactful.definitions.plan.Plan``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tactful.definitions.plan import Change, ChangeAction, Plan
from tactful.domain import (
    JourneyState,
    JourneyStep,
    JourneyTransition,
    MatchVerdict,
    ModelCall,
    ResolutionStep,
    Trace,
)
from tactful.domain.evaluations import Finding


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Record(BaseModel):
    """An object the API defines: the fields a caller uses, typed, and every other one kept."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Health(_Answer):
    """``GET /healthz``: whether the server is up, and which model tier it runs on."""

    status: str
    tier: str = ""


class AgentInfo(_Record):
    """An agent as listed by ``GET /agents``."""

    id: str
    name: str
    description: str | None = None
    composition_mode: str | None = None


class SessionInfo(_Record):
    """A session as created by ``POST /sessions`` or listed by ``GET /sessions``."""

    id: str
    agent_id: str
    customer_id: str = ""
    title: str | None = None
    mode: str | None = None


class CustomerInfo(_Record):
    """A customer as ``GET /customers/{id}`` answers it; ``tags`` are tag ids."""

    id: str
    name: str
    metadata: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)


class TagInfo(_Record):
    """A tag as ``GET /tags/{id}`` answers it."""

    id: str
    name: str


class GuidelineInfo(_Record):
    """A guideline as ``GET /guidelines`` lists it (without ``action``: an observation)."""

    id: str
    condition: str
    action: str | None = None
    enabled: bool = True
    tags: list[str] = Field(default_factory=list)


class RelationshipInfo(_Record):
    """A relationship of a guideline: one source and one target (a guideline, tag or tool)."""

    id: str
    kind: str
    source_guideline: GuidelineInfo | None = None
    source_tag: dict[str, Any] | None = None
    source_tool: dict[str, Any] | None = None
    target_guideline: GuidelineInfo | None = None
    target_tag: dict[str, Any] | None = None
    target_tool: dict[str, Any] | None = None


class ToolAssociationInfo(_Record):
    """A tool a guideline may call."""

    id: str
    guideline_id: str
    tool_id: dict[str, str]

    @property
    def tool(self) -> str:
        """``service:tool``."""
        return f"{self.tool_id.get('service_name', '')}:{self.tool_id.get('tool_name', '')}"


class GuidelineDetail(_Record):
    """``GET /guidelines/{id}``: the guideline, its relationships and its tools."""

    guideline: GuidelineInfo
    relationships: list[RelationshipInfo] = Field(default_factory=list)
    tool_associations: list[ToolAssociationInfo] = Field(default_factory=list)


class JourneyInfo(_Record):
    """A journey as ``GET /journeys`` lists it; ``conditions`` are guideline ids."""

    id: str
    title: str
    description: str = ""
    conditions: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class JourneyGraphInfo(_Record):
    """``GET /journeys/{id}/graph``: the states, the transitions and the initial state."""

    initial_state_id: str
    states: list[JourneyState]
    transitions: list[JourneyTransition]


class EventInfo(_Answer):
    """One event of a session's timeline."""

    id: str = ""
    offset: int
    kind: str
    source: str
    trace_id: str = ""
    data: Any = None
    creation_utc: datetime | None = None

    @property
    def message(self) -> str | None:
        """The text of a message event, else None."""
        if self.kind == "message" and isinstance(self.data, dict):
            text = self.data.get("message")
            return text if isinstance(text, str) else None
        return None

    @property
    def status(self) -> str | None:
        """The status of a status event (``acknowledged``, ``ready``, ``error``...), else None."""
        if self.kind == "status" and isinstance(self.data, dict):
            status = self.data.get("status")
            return status if isinstance(status, str) else None
        return None

    @property
    def guideline_ids(self) -> list[str]:
        """The guidelines an agent message says it applied."""
        if isinstance(self.data, dict) and isinstance(self.data.get("guidelines"), list):
            return [str(g) for g in self.data["guidelines"]]
        return []


# The trace's records are the domain's own models (one definition, the one /openapi.json
# describes): a trace read here is what the server stored.
MatchInfo = MatchVerdict
ResolutionStepInfo = ResolutionStep
JourneyStepInfo = JourneyStep
ModelCallInfo = ModelCall


class TraceInfo(Trace):
    """``GET /traces/{id}``: why the agent said what it said in one turn (``Trace``, read
    leniently: fields a newer server adds are ignored)."""

    model_config = ConfigDict(extra="ignore")

    @property
    def matched(self) -> list[MatchVerdict]:
        """The checks whose condition held."""
        return [m for m in self.matches if m.applies]

    def cost(self) -> str:
        """One line: model calls, prompt tokens, the dollars of the priced calls (when the
        server has prices) and the time the turn took."""
        calls = len(self.model_calls)
        tokens = sum(c.prompt_tokens for c in self.model_calls)
        took = sum(self.stage_timings_ms.values())
        plural = "s" if calls != 1 else ""
        priced = [c.cost_usd for c in self.model_calls if c.cost_usd is not None]
        dollars = f", ${sum(priced):.6f}" if priced else ""
        return f"{calls} model call{plural}, {tokens:,} prompt tokens{dollars}, {took:.0f} ms"


# A plan is the server's own model (``tactful.definitions.plan``): its counts and summary line
# are the ones the server means.
PlanInfo = Plan
ChangeInfo = Change
ChangeActionInfo = ChangeAction


class AppliedInfo(_Answer):
    """What ``POST /definitions/apply`` and a rollback carried out: the plan, and the revision
    its changes form (None when nothing changed)."""

    plan: PlanInfo
    revision: int | None = None


class RevisionChangeInfo(_Answer):
    """One definition a revision changed: ``created``, ``updated`` or ``deleted``, its
    collection (``guidelines``, ``journeys``...) and its id."""

    action: str
    kind: str
    id: str


class RevisionInfo(_Answer):
    """A revision of definitions as ``GET /definitions/revisions`` lists it: who, when, what
    for, whose definitions and what changed."""

    id: int
    creation_utc: datetime
    actor: str = ""
    summary: str = ""
    agents: list[str] = Field(default_factory=list)
    changes: list[RevisionChangeInfo] = Field(default_factory=list)


class TurnResult(_Answer):
    """One exchange: the customer's message, what the agent answered, and the turn's trace id."""

    customer_event: EventInfo
    replies: list[EventInfo] = Field(default_factory=list)
    trace_id: str = ""
    error: str | None = None

    @property
    def text(self) -> str:
        """The agent's reply (several messages joined by blank lines)."""
        return "\n\n".join(r.message or "" for r in self.replies)


class EvaluationInfo(_Record):
    """``POST /evaluations`` and ``GET /evaluations/{id}``: an evaluation and what it found
    (``tactful.domain.evaluations.Finding``, one definition on both sides)."""

    id: str
    status: str
    progress: float = 0.0
    error: str | None = None
    agent_id: str | None = None
    findings: list[Finding] = []
