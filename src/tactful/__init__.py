"""tactful: a conversational harness for reliable customer-facing LLM agents."""

from tactful.agent import Agent
from tactful.config import Settings
from tactful.domain import (
    CannedResponse,
    CannedResponseField,
    Capability,
    CompositionMode,
    Criticality,
    Customer,
    Event,
    EventKind,
    EventSource,
    Guideline,
    MessageOutputMode,
    ModerationAction,
    ModerationMode,
    Operator,
    Session,
    SessionMode,
    Tag,
    Term,
    Trace,
)
from tactful.domain.evaluations import Finding, ProposedGuideline
from tactful.engine.hooks import Bail, MatchContext, TurnView
from tactful.engine.retrievers import RetrieverContext, RetrieverResult, TransientGuideline
from tactful.errors import (
    ConfigurationError,
    ConflictError,
    ModelError,
    NotFoundError,
    PayloadTooLargeError,
    StoreError,
    TactfulError,
    ValidationError,
)
from tactful.journey import JourneyHandle, StateHandle, TransitionHandle
from tactful.server import Server
from tactful.tools import ToolContext, ToolParam, ToolResult, tool

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "Bail",
    "CannedResponse",
    "CannedResponseField",
    "Capability",
    "CompositionMode",
    "ConfigurationError",
    "ConflictError",
    "Criticality",
    "Customer",
    "Event",
    "EventKind",
    "EventSource",
    "Finding",
    "Guideline",
    "JourneyHandle",
    "MatchContext",
    "MessageOutputMode",
    "ModelError",
    "ModerationAction",
    "ModerationMode",
    "NotFoundError",
    "Operator",
    "PayloadTooLargeError",
    "ProposedGuideline",
    "RetrieverContext",
    "RetrieverResult",
    "Server",
    "Session",
    "SessionMode",
    "Settings",
    "StateHandle",
    "StoreError",
    "TactfulError",
    "Tag",
    "Term",
    "ToolContext",
    "ToolParam",
    "ToolResult",
    "Trace",
    "TransientGuideline",
    "TransitionHandle",
    "TurnView",
    "ValidationError",
    "__version__",
    "tool",
]
