"""Context variables: values per customer, per tag or global, optionally tool-backed."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from tactful.domain.common import Entity

GLOBAL_KEY = "DEFAULT"
TAG_KEY_PREFIX = "tag:"


def tag_key(tag_id: str) -> str:
    """The value key of a tag's value (Parlant's convention: ``tag:<tag id>``)."""
    return f"{TAG_KEY_PREFIX}{tag_id}"


def tag_id_of_key(key: str) -> str | None:
    return key[len(TAG_KEY_PREFIX) :] if key.startswith(TAG_KEY_PREFIX) else None


class ContextVariable(Entity):
    collection: ClassVar[str] = "context_variables"
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    tool_id: str | None = None
    # Cron expression saying how fresh a tool-backed value must be.
    freshness_rules: str | None = None
    tags: list[str] = Field(default_factory=list)


class ContextVariableValue(Entity):
    collection: ClassVar[str] = "context_variable_values"
    variable_id: str
    # A customer id, "tag:<id>", or GLOBAL_KEY.
    key: str = GLOBAL_KEY
    data: Any = None
    # When ``data`` was last written (None: never rewritten since ``creation_utc``).
    updated_utc: datetime | None = None

    @property
    def last_modified(self) -> datetime:
        return self.updated_utc or self.creation_utc

    @property
    def natural_key(self) -> str:
        """One value per variable and key: the store's idempotency key for writes."""
        return value_natural_key(self.variable_id, self.key)


def value_natural_key(variable_id: str, key: str) -> str:
    return f"variable-value:{variable_id}:{key}"
