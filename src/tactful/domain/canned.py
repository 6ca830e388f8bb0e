"""Canned responses: exact templates with fields filled from this turn's data."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from tactful.domain.common import Entity


class CannedResponseField(BaseModel):
    name: str
    description: str = ""
    examples: list[str] = Field(default_factory=list)


class CannedResponse(Entity):
    collection: ClassVar[str] = "canned_responses"
    value: str = Field(min_length=1, max_length=8000)
    fields: list[CannedResponseField] = Field(default_factory=list)
    signals: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    field_dependencies: list[str] = Field(default_factory=list)

    @property
    def template(self) -> str:
        return self.value
