"""Tool descriptions as the engine and the API see them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field

from tactful.domain.common import Entity


class SessionControl(StrEnum):
    """What a tool may ask of the session after it ran."""

    NONE = "none"
    # Hand the conversation to a person: the session switches to manual mode.
    HANDOFF = "handoff"


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


class ToolServiceKind(StrEnum):
    MCP = "mcp"
    OPENAPI = "openapi"
    SDK = "sdk"


class ToolServiceConfig(Entity):
    """A tool service registered through the API or the SDK, reconnected when tactful starts."""

    collection: ClassVar[str] = "tool_services"
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: ToolServiceKind
    # MCP: the streamable-HTTP URL. OpenAPI: the base URL of the service.
    url: str = ""
    # OpenAPI: where the specification is (a URL).
    source: str = ""
