"""Events: the ordered timeline of a session."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field

from tactful.domain.common import Entity

# An event's metadata after an annotation (``PATCH /sessions/{id}/events/{event_id}``), as
# compact JSON in UTF-8: at most this many bytes; each key 1 to 200 characters.
EVENT_METADATA_MAX_BYTES = 16 * 1024
EVENT_METADATA_KEY_MAX_CHARS = 200
# Metadata keys the engine writes and reads back (``preamble``: a message sent while the agent
# works, left out of the conversation it reads): only staff change them.
ENGINE_METADATA_KEYS = frozenset({"preamble"})


class EventKind(StrEnum):
    MESSAGE = "message"
    STATUS = "status"
    TOOL = "tool"
    CUSTOM = "custom"


class EventSource(StrEnum):
    CUSTOMER = "customer"
    CUSTOMER_UI = "customer_ui"
    AI_AGENT = "ai_agent"
    HUMAN_AGENT = "human_agent"
    HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT = "human_agent_on_behalf_of_ai_agent"
    SYSTEM = "system"


class SessionStatus(StrEnum):
    ACKNOWLEDGED = "acknowledged"
    CANCELLED = "cancelled"
    PROCESSING = "processing"
    TYPING = "typing"
    READY = "ready"
    ERROR = "error"


class Event(Entity):
    """One entry of a session's timeline. ``offset`` is monotonic per session, from 0."""

    collection: ClassVar[str] = "events"
    session_id: str
    offset: int = Field(ge=0)
    kind: EventKind
    source: EventSource
    trace_id: str = ""
    data: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    deleted: bool = False
