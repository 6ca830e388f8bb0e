"""Relationships between guidelines, tags and tools (resolved deterministically)."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel

from tactful.domain.common import Entity


class RelationshipKind(StrEnum):
    ENTAILMENT = "entailment"
    PRIORITY = "priority"
    DEPENDENCY = "dependency"
    DEPENDENCY_ANY = "dependency_any"
    DISAMBIGUATION = "disambiguation"
    EXCLUSION = "exclusion"
    OVERLAP = "overlap"
    REEVALUATION = "reevaluation"


class EndpointKind(StrEnum):
    GUIDELINE = "guideline"
    TAG = "tag"
    TOOL = "tool"


class Endpoint(BaseModel):
    kind: EndpointKind
    id: str


class Relationship(Entity):
    collection: ClassVar[str] = "relationships"
    kind: RelationshipKind
    source: Endpoint
    target: Endpoint
