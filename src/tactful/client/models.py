"""What the REST API answers, as the client sees it.

These models accept fields they do not know (the server may add some) and keep only what a
caller needs; they are read models, separate from the stored domain entities.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Health(_Answer):
    """``GET /healthz``: whether the server is up, and which model tier it runs on."""

    status: str
    tier: str = ""


class AgentInfo(_Answer):
    """An agent as listed by ``GET /agents``."""

    id: str
    name: str
    description: str | None = None
    composition_mode: str | None = None


class SessionInfo(_Answer):
    """A session as created by ``POST /sessions``."""

    id: str
    agent_id: str
    customer_id: str = ""
    title: str | None = None
    mode: str | None = None


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


class MatchInfo(_Answer):
    """One guideline check of a turn: did its condition hold, how sure, and why."""

    guideline_id: str
    condition: str
    action: str | None = None
    applies: bool
    score: float | None = None
    rationale: str = ""
    method: str = ""


class ResolutionStepInfo(_Answer):
    """A relationship step of a turn: what it added or removed, and because of which guidelines."""

    rule: str
    effect: str
    guideline_id: str
    because: list[str] = Field(default_factory=list)
    detail: str = ""


class JourneyStepInfo(_Answer):
    """What a turn did with one journey: the state before and after, and why."""

    journey_id: str
    title: str
    kind: str
    status_before: str | None = None
    status_after: str = ""
    label_before: str | None = None
    label_after: str | None = None
    method: str = ""
    rationale: str = ""


class ModelCallInfo(_Answer):
    stage: str
    model: str
    provider: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    latency_ms: float = 0.0
    ok: bool = True
    error: str | None = None
    # US dollars from the server's price table; None when the model has no price there.
    cost_usd: float | None = None


class TraceInfo(_Answer):
    """``GET /traces/{id}``: why the agent said what it said in one turn."""

    id: str
    session_id: str = ""
    agent_id: str = ""
    tier: str = ""
    status: str = ""
    matches: list[MatchInfo] = Field(default_factory=list)
    resolution: list[ResolutionStepInfo] = Field(default_factory=list)
    journeys: list[JourneyStepInfo] = Field(default_factory=list)
    final_guideline_ids: list[str] = Field(default_factory=list)
    composition: dict[str, Any] = Field(default_factory=dict)
    stage_timings_ms: dict[str, float] = Field(default_factory=dict)
    model_calls: list[ModelCallInfo] = Field(default_factory=list)
    error: str | None = None

    @property
    def matched(self) -> list[MatchInfo]:
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
