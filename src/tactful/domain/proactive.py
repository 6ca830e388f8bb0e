"""Proactive turns: the agent speaks without a new customer message.

Two things start one: a greeting when a session is created with ``allow_greeting``, and a
request to utter (``POST /sessions/{id}/events`` with ``source: ai_agent``, Parlant's shape),
optionally with actions the message must follow ("ask whether they are still there"). The
request is written on the timeline (the ``acknowledged`` status that opens the turn) and its
actions join the turn as guidelines that apply.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

# The key of the request in the ``acknowledged`` status event's data.
PROACTIVE_KEY = "proactive"
ACTIONS_MAX = 20


class ProactiveKind(StrEnum):
    GREETING = "greeting"
    UTTERANCE = "utterance"


class UtteranceRationale(StrEnum):
    """Why the message is asked for (Parlant's values)."""

    UNSPECIFIED = "unspecified"
    BUY_TIME = "buy_time"
    FOLLOW_UP = "follow_up"


class RequestedAction(BaseModel):
    """What the agent's message must do, e.g. "tell the customer their order has shipped"."""

    action: str = Field(min_length=1, max_length=2000)
    rationale: UtteranceRationale = UtteranceRationale.UNSPECIFIED


class ProactiveRequest(BaseModel):
    """What asked the agent to speak, and the actions its message follows."""

    kind: ProactiveKind
    actions: list[RequestedAction] = Field(default_factory=list, max_length=ACTIONS_MAX)

    def status_data(self) -> dict[str, Any]:
        """The request, as the ``acknowledged`` status's data carries it."""
        return {PROACTIVE_KEY: self.model_dump(mode="json")}

    @classmethod
    def of_status(cls, data: Any) -> ProactiveRequest | None:
        """The request a status event's data carries, or None."""
        inner = data.get("data") if isinstance(data, dict) else None
        raw = inner.get(PROACTIVE_KEY) if isinstance(inner, dict) else None
        if not isinstance(raw, dict):
            return None
        try:
            return cls.model_validate(raw)
        except ValueError:
            return None
