"""Tags label agents, customers, guidelines and other entities."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from tactful.domain.common import Entity

AGENT_TAG_PREFIX = "agent:"


def agent_tag(agent_id: str) -> str:
    """The tag that scopes an entity to one agent (Parlant's convention: ``agent:<id>``)."""
    return f"{AGENT_TAG_PREFIX}{agent_id}"


def agent_id_of_tag(tag: str) -> str | None:
    return tag[len(AGENT_TAG_PREFIX) :] if tag.startswith(AGENT_TAG_PREFIX) else None


class Tag(Entity):
    collection: ClassVar[str] = "tags"
    name: str = Field(min_length=1, max_length=200)
