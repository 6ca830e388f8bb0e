"""Relationships between guidelines, tags and tools (resolved deterministically).

The kind names are Parlant's; ``dependency_any`` and ``exclusion`` are our extensions.
"""

from __future__ import annotations

import hashlib
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


# Kinds the resolve stage applies; their ends are guidelines or tags, never tools.
GUIDELINE_KINDS: frozenset[RelationshipKind] = frozenset(
    {
        RelationshipKind.ENTAILMENT,
        RelationshipKind.PRIORITY,
        RelationshipKind.DEPENDENCY,
        RelationshipKind.DEPENDENCY_ANY,
        RelationshipKind.DISAMBIGUATION,
        RelationshipKind.EXCLUSION,
    }
)


class EndpointKind(StrEnum):
    GUIDELINE = "guideline"
    TAG = "tag"
    TOOL = "tool"


class Endpoint(BaseModel):
    kind: EndpointKind
    id: str

    @classmethod
    def guideline(cls, id: str) -> Endpoint:
        return cls(kind=EndpointKind.GUIDELINE, id=id)

    @classmethod
    def tag(cls, id: str) -> Endpoint:
        return cls(kind=EndpointKind.TAG, id=id)

    @classmethod
    def tool(cls, id: str) -> Endpoint:
        """A tool endpoint; ``id`` is ``service:tool``."""
        return cls(kind=EndpointKind.TOOL, id=id)


class Relationship(Entity):
    collection: ClassVar[str] = "relationships"
    kind: RelationshipKind
    source: Endpoint
    target: Endpoint

    @property
    def natural_key(self) -> str:
        """Identity for idempotent creation: one relationship per kind, source and target."""
        parts = (self.kind, self.source.kind, self.source.id, self.target.kind, self.target.id)
        digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]
        return f"relationship:{self.kind.value}:{digest}"

    def same_as(self, other: Relationship) -> bool:
        """Whether ``other`` relates the same ends in the same way (ids aside)."""
        return (self.kind, self.source, self.target) == (other.kind, other.source, other.target)
