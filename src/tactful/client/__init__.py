"""Typed async Python client for tactful's REST API."""

from tactful.client.http import DEFAULT_URL, ClientError, TactfulClient, UnreachableError
from tactful.client.models import (
    AgentInfo,
    EventInfo,
    Health,
    JourneyStepInfo,
    MatchInfo,
    ModelCallInfo,
    ResolutionStepInfo,
    SessionInfo,
    TraceInfo,
    TurnResult,
)

__all__ = [
    "DEFAULT_URL",
    "AgentInfo",
    "ClientError",
    "EventInfo",
    "Health",
    "JourneyStepInfo",
    "MatchInfo",
    "ModelCallInfo",
    "ResolutionStepInfo",
    "SessionInfo",
    "TactfulClient",
    "TraceInfo",
    "TurnResult",
    "UnreachableError",
]
