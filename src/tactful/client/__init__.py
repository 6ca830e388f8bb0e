"""Typed async Python client for tactful's REST API."""

from tactful.client.http import DEFAULT_URL, ClientError, TactfulClient, UnreachableError
from tactful.client.models import (
    AgentInfo,
    EventInfo,
    GuidelineDetail,
    GuidelineInfo,
    Health,
    JourneyGraphInfo,
    JourneyInfo,
    JourneyStepInfo,
    MatchInfo,
    ModelCallInfo,
    RelationshipInfo,
    ResolutionStepInfo,
    SessionInfo,
    ToolAssociationInfo,
    TraceInfo,
    TurnResult,
)

__all__ = [
    "DEFAULT_URL",
    "AgentInfo",
    "ClientError",
    "EventInfo",
    "GuidelineDetail",
    "GuidelineInfo",
    "Health",
    "JourneyGraphInfo",
    "JourneyInfo",
    "JourneyStepInfo",
    "MatchInfo",
    "ModelCallInfo",
    "RelationshipInfo",
    "ResolutionStepInfo",
    "SessionInfo",
    "TactfulClient",
    "ToolAssociationInfo",
    "TraceInfo",
    "TurnResult",
    "UnreachableError",
]
