"""Relationships between guidelines, tags and tools (resolved deterministically), and the rules
a new one must pass before it is stored (``admit``): whichever way it is defined, SDK or REST.

The kind names are Parlant's; ``dependency_any`` and ``exclusion`` are our extensions.
Entailment, priority and the dependency family (``dependency`` and ``dependency_any``
together) must stay acyclic (``find_cycle``).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict, deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from enum import StrEnum
from itertools import pairwise
from typing import ClassVar

from pydantic import BaseModel

from tactful.domain.common import Entity
from tactful.domain.guidelines import Guideline
from tactful.errors import ValidationError


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

# Kinds where a cycle makes no sense, each with the kinds it must stay acyclic together with.
_DEPENDENCIES = frozenset({RelationshipKind.DEPENDENCY, RelationshipKind.DEPENDENCY_ANY})
CYCLE_FAMILIES: dict[RelationshipKind, frozenset[RelationshipKind]] = {
    RelationshipKind.ENTAILMENT: frozenset({RelationshipKind.ENTAILMENT}),
    RelationshipKind.PRIORITY: frozenset({RelationshipKind.PRIORITY}),
    RelationshipKind.DEPENDENCY: _DEPENDENCIES,
    RelationshipKind.DEPENDENCY_ANY: _DEPENDENCIES,
}


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


def guidelines_by_tag(guidelines: Iterable[Guideline]) -> dict[str, list[str]]:
    """Tag id -> ids of the guidelines carrying it, in the given order."""
    members: dict[str, list[str]] = defaultdict(list)
    for g in guidelines:
        for tag in dict.fromkeys(g.tags):
            members[tag].append(g.id)
    return dict(members)


# -- cycles -------------------------------------------------------------------------------------

_Node = tuple[str, str]  # ("guideline", id), ("tag", id) for a tag's future members, ("tool", id)


def find_cycle(
    relationships: Sequence[Relationship],
    new: Relationship,
    guidelines_by_tag: Mapping[str, Collection[str]],
) -> list[str] | None:
    """The cycle that adding ``new`` would close, as endpoint ids from ``new``'s source back to
    it (e.g. ``["a", "b", "c", "a"]``), or None. Only entailment, priority and the dependency
    family (``dependency`` with ``dependency_any``) are checked; a relationship from an end to
    itself is a cycle.

    Cycles are found between guidelines, tags expanded to their guidelines
    (``guidelines_by_tag``: tag id -> guideline ids) plus one stand-in per tag for guidelines
    tagged later, so a cycle between tags is found even before they tag anything. A path
    through a tag names the tag.
    """
    family = CYCLE_FAMILIES.get(new.kind)
    if family is None:
        return None
    if new.source == new.target:
        return [new.source.id, new.target.id]

    def expand(end: Endpoint) -> list[_Node]:
        if end.kind is EndpointKind.TAG:
            tagged = sorted(guidelines_by_tag.get(end.id, ()))
            return [*(("guideline", g) for g in tagged), ("tag", end.id)]
        return [(end.kind.value, end.id)]

    # node -> next node -> the relationship ends that make the hop (for naming tags on the way).
    hops: dict[_Node, dict[_Node, tuple[Endpoint, Endpoint]]] = defaultdict(dict)
    ordered = sorted(
        (r for r in relationships if r.kind in family and not r.same_as(new)),
        key=lambda r: (r.kind, r.source.kind, r.source.id, r.target.kind, r.target.id),
    )
    for r in [*ordered, new]:
        for s in expand(r.source):
            for t in expand(r.target):
                if s != t:
                    hops[s].setdefault(t, (r.source, r.target))

    best: list[_Node] | None = None
    for s in expand(new.source):
        for t in expand(new.target):
            if s == t:
                continue
            path = _shortest_path(hops, t, s)
            if path is not None and (best is None or len(path) + 1 < len(best)):
                best = [s, *path]
    if best is None:
        return None
    return _render(best, hops)


def _shortest_path(
    hops: Mapping[_Node, Mapping[_Node, object]], start: _Node, goal: _Node
) -> list[_Node] | None:
    parent: dict[_Node, _Node | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [node]
            while (prev := parent[path[-1]]) is not None:
                path.append(prev)
            return path[::-1]
        for nxt in sorted(hops.get(node, {})):
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return None


def _render(
    cycle: list[_Node], hops: Mapping[_Node, Mapping[_Node, tuple[Endpoint, Endpoint]]]
) -> list[str]:
    names = [cycle[0][1]]
    for a, b in pairwise(cycle):
        source, target = hops[a][b]
        for end in (source, target):
            if end.kind is EndpointKind.TAG:
                names.append(end.id)
        names.append(b[1])
    # A tag's stand-in is named like the tag: drop the repeats that makes.
    return [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]]


def cycle_error(new: Relationship, cycle: Sequence[str]) -> ValidationError:
    """The error for a relationship that would close ``cycle``."""
    return ValidationError(
        f"cannot add the {new.kind.value} relationship {new.source.id} -> {new.target.id}: "
        f"{new.kind.value} relationships must not form a cycle: {' -> '.join(cycle)}"
    )


def check_acyclic(
    relationships: Sequence[Relationship],
    new: Relationship,
    guidelines_by_tag: Mapping[str, Collection[str]],
) -> None:
    """Raise ``ValidationError`` naming the cycle when ``new`` would close one."""
    cycle = find_cycle(relationships, new, guidelines_by_tag)
    if cycle is not None:
        raise cycle_error(new, cycle)


def admit(
    new: Relationship,
    existing: Sequence[Relationship],
    guidelines_by_tag: Mapping[str, Collection[str]],
) -> Relationship | None:
    """Check ``new`` before it is stored: the stored relationship with the same kind and ends
    (nothing to create), or None when ``new`` may be created.

    Raises ``ValidationError`` when a kind that relates guidelines has a tool end, when the two
    ends are the same, or when ``new`` would close a cycle (the message names it).
    """
    if new.kind in GUIDELINE_KINDS:
        for side, end in (("source", new.source), ("target", new.target)):
            if end.kind is EndpointKind.TOOL:
                raise ValidationError(
                    f"a {new.kind.value} relationship relates guidelines or tags; its {side} "
                    f"is the tool {end.id!r}"
                )
    for r in existing:
        if r.same_as(new):
            return r
    if new.source == new.target and new.kind not in CYCLE_FAMILIES:
        raise ValidationError(
            f"a {new.kind.value} relationship needs two different ends; both are "
            f"{new.source.kind.value} {new.source.id!r}"
        )
    check_acyclic(existing, new, guidelines_by_tag)
    return None
