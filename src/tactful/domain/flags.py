"""Flags: a builder's note on one reply of the agent, kept to be turned into a test later."""

from __future__ import annotations

from typing import ClassVar

from pydantic import ConfigDict, Field

from tactful.domain.common import Entity

# A note is a sentence or a paragraph: what was wrong, what the reply should have been.
NOTE_MAX_CHARS = 2000


class Flag(Entity):
    """One agent message marked by staff, with a note. ``trace_id`` (the turn that wrote the
    message) and ``agent_id`` (the session's agent) are copied when the flag is made, so a
    listing needs no other read. A flag goes with its session when the session is deleted."""

    # Every field is in every answer: the spec says so, so clients' types need no guards.
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, json_schema_serialization_defaults_required=True
    )
    collection: ClassVar[str] = "flags"
    session_id: str = Field(min_length=1, max_length=128)
    event_id: str = Field(min_length=1, max_length=128)
    trace_id: str = Field(default="", max_length=128)
    agent_id: str = Field(min_length=1, max_length=128)
    note: str = Field(default="", max_length=NOTE_MAX_CHARS)
