"""What a tool may change of its own customer and session while it runs: the customer's
metadata and tags, the session's metadata and labels (``ToolContext.set_customer_metadata``
and the like, ``docs/tools.md``).

Each change is written with its timeline event in one transaction: a ``custom`` event from
``system`` whose data names it (``{"tool_update": "session_labels", "tool_id": ..., "add":
[...]}``), with the turn's trace id; the trace lists it too (``Composition.tool_updates``).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator

from tactful.domain.common import Json
from tactful.domain.events import EVENT_METADATA_KEY_MAX_CHARS, EVENT_METADATA_MAX_BYTES

# The key of a tool update in a custom event's data: ``{"tool_update": "customer_tags", ...}``.
TOOL_UPDATE_KEY = "tool_update"
# A metadata key, a label or a tag id: 1 to this many characters (as an event's metadata key).
NAME_MAX_CHARS = EVENT_METADATA_KEY_MAX_CHARS
# The metadata a change leaves, as compact JSON, is at most this many bytes (as an event's).
METADATA_MAX_BYTES = EVENT_METADATA_MAX_BYTES
# Keys, labels or tags one change names, at most.
ITEMS_MAX = 50


class UpdateTarget(StrEnum):
    """What a tool update changes."""

    CUSTOMER_METADATA = "customer_metadata"
    CUSTOMER_TAGS = "customer_tags"
    SESSION_METADATA = "session_metadata"
    SESSION_LABELS = "session_labels"


class ToolUpdate(BaseModel):
    """One change a tool made (or asked for): metadata keys set and unset, tags or labels
    added and removed. The trace's record of it names its timeline event."""

    tool_id: str = ""
    target: UpdateTarget
    set: dict[str, Json] = Field(default_factory=dict)
    unset: list[str] = Field(default_factory=list)
    add: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)
    event_id: str | None = None

    @field_validator("unset", "add", "remove")
    @classmethod
    def _once_each(cls, names: list[str]) -> list[str]:
        return list(dict.fromkeys(names))

    def __bool__(self) -> bool:
        return bool(self.set or self.unset or self.add or self.remove)

    def problem(self) -> str | None:
        """Why this change is refused as asked (before anything is read), or None."""
        metadata = self.target in (UpdateTarget.CUSTOMER_METADATA, UpdateTarget.SESSION_METADATA)
        if metadata and (self.add or self.remove):
            return "metadata is changed with set and unset"
        if not metadata and (self.set or self.unset):
            return "tags and labels are changed with add and remove"
        names = [*self.set, *self.unset, *self.add, *self.remove]
        if not names:
            return "nothing to change"
        if len(names) > ITEMS_MAX:
            return f"one change names at most {ITEMS_MAX} keys, tags or labels"
        for name in names:
            if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX_CHARS:
                return f"a key, tag or label has 1 to {NAME_MAX_CHARS} characters"
        bad = sorted(k for k, v in self.set.items() if not isinstance(v, str))
        if self.target is UpdateTarget.CUSTOMER_METADATA and bad:
            return f"customer metadata values are strings: {', '.join(bad)}"
        return None

    def event_data(self) -> dict[str, Any]:
        """The data of the timeline event that records it."""
        data: dict[str, Any] = {TOOL_UPDATE_KEY: self.target.value, "tool_id": self.tool_id}
        parts = {"set": self.set, "unset": self.unset, "add": self.add, "remove": self.remove}
        return {**data, **{k: v for k, v in parts.items() if v}}


def changed_metadata(
    current: dict[str, Any], asked: ToolUpdate
) -> tuple[dict[str, Any], ToolUpdate]:
    """The metadata after ``asked``, and the change as it is made: only keys whose value
    changes are set, only keys there are unset."""
    metadata = dict(current)
    done = asked.model_copy(update={"set": {}, "unset": []})
    for key, value in asked.set.items():
        if key not in metadata or metadata[key] != value:
            metadata[key] = done.set[key] = value
    for key in dict.fromkeys(asked.unset):
        if key in metadata:
            del metadata[key]
            done.unset.append(key)
    return metadata, done


def changed_names(current: list[str], asked: ToolUpdate) -> tuple[list[str], ToolUpdate]:
    """The tags or labels after ``asked`` (order kept, once each), and the change as it is
    made: only names that were not there are added, only names there are removed."""
    added = [n for n in dict.fromkeys(asked.add) if n not in current]
    removed = [n for n in dict.fromkeys(asked.remove) if n in current and n not in added]
    names = [n for n in current if n not in removed] + added
    return names, asked.model_copy(update={"add": added, "remove": removed})


def metadata_problem(metadata: dict[str, Any]) -> str | None:
    """Why the metadata a change leaves is too large, or None."""
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > METADATA_MAX_BYTES:
        return f"the metadata would take {size} bytes as JSON; the limit is {METADATA_MAX_BYTES}"
    return None


def customer_view(data: dict[str, Any]) -> dict[str, Any]:
    """A tool update's event as customers and guests may see it: what kind of change, not the
    values (a tool's notes about a customer are the business's)."""
    return {TOOL_UPDATE_KEY: data.get(TOOL_UPDATE_KEY)}
