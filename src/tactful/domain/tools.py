"""Tool descriptions as the engine and the API see them."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from tactful.domain.common import Entity


def tool_id(service: str, name: str) -> str:
    return f"{service}:{name}"


class ToolSpec(Entity):
    """A callable tool: its id is ``service:name``."""

    collection: ClassVar[str] = "tools"
    service_name: str = Field(min_length=1)
    name: str = Field(min_length=1)
    description: str = ""
    # JSON schema of the parameters object.
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    required: list[str] = Field(default_factory=list)
    consequential: bool = False
