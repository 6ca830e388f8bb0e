"""Context variables: values per customer, per tag or global, optionally tool-backed."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from tactful.domain.common import Entity

GLOBAL_KEY = "DEFAULT"


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
