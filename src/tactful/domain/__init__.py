"""Pure data and rules: pydantic models and enums of every entity, no I/O."""

from tactful.domain.agents import Agent, CompositionMode, MessageOutputMode
from tactful.domain.audit import AuditAction, AuditEntry
from tactful.domain.canned import CannedResponse, CannedResponseField
from tactful.domain.common import Entity, new_id, new_secret_id, utcnow
from tactful.domain.customers import GUEST_CUSTOMER_ID, Customer
from tactful.domain.events import Event, EventKind, EventSource, SessionStatus
from tactful.domain.flags import Flag
from tactful.domain.glossary import Term
from tactful.domain.guidelines import Criticality, Guideline
from tactful.domain.journeys import (
    Journey,
    JourneyProgress,
    JourneyRun,
    JourneyState,
    JourneyTransition,
    RunStatus,
    StateKind,
    journey_tag,
)
from tactful.domain.keys import ApiKey, KeyRole
from tactful.domain.relationships import Endpoint, EndpointKind, Relationship, RelationshipKind
from tactful.domain.sessions import ConsumptionOffsets, Session, SessionMode
from tactful.domain.tags import Tag, agent_id_of_tag, agent_tag
from tactful.domain.tools import ToolServiceConfig, ToolServiceKind, ToolSpec, tool_id
from tactful.domain.traces import (
    Candidate,
    MatchVerdict,
    ModelCall,
    ModelUsage,
    ResolutionStep,
    Trace,
)
from tactful.domain.variables import ContextVariable, ContextVariableValue

ENTITY_TYPES: tuple[type[Entity], ...] = (
    Tag,
    Agent,
    Customer,
    Session,
    Guideline,
    Relationship,
    Journey,
    Term,
    ContextVariable,
    ContextVariableValue,
    CannedResponse,
    ToolServiceConfig,
    ToolSpec,
    Trace,
    ApiKey,
    Flag,
)

__all__ = [
    "ENTITY_TYPES",
    "GUEST_CUSTOMER_ID",
    "Agent",
    "ApiKey",
    "AuditAction",
    "AuditEntry",
    "Candidate",
    "CannedResponse",
    "CannedResponseField",
    "CompositionMode",
    "ConsumptionOffsets",
    "ContextVariable",
    "ContextVariableValue",
    "Criticality",
    "Customer",
    "Endpoint",
    "EndpointKind",
    "Entity",
    "Event",
    "EventKind",
    "EventSource",
    "Flag",
    "Guideline",
    "Journey",
    "JourneyProgress",
    "JourneyRun",
    "JourneyState",
    "JourneyTransition",
    "KeyRole",
    "MatchVerdict",
    "MessageOutputMode",
    "ModelCall",
    "ModelUsage",
    "Relationship",
    "RelationshipKind",
    "ResolutionStep",
    "RunStatus",
    "Session",
    "SessionMode",
    "SessionStatus",
    "StateKind",
    "Tag",
    "Term",
    "ToolServiceConfig",
    "ToolServiceKind",
    "ToolSpec",
    "Trace",
    "agent_id_of_tag",
    "agent_tag",
    "journey_tag",
    "new_id",
    "new_secret_id",
    "tool_id",
    "utcnow",
]
