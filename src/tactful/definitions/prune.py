"""Pruning an agent of what its Python definitions no longer define (``Agent.prune``, run by
``tactful serve --agent FILE.py`` after the file's ``define``): the counterpart for code of the
deletions an applied document makes, with the same rules (``document.foreign``, ``deletion``).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field

from tactful.definitions import deletion
from tactful.definitions.document import foreign
from tactful.domain import (
    CannedResponse,
    Capability,
    ContextVariable,
    EndpointKind,
    Entity,
    Guideline,
    Journey,
    Relationship,
    Term,
    agent_tag,
    journey_tag,
)
from tactful.errors import ConflictError
from tactful.store.base import Store

log = logging.getLogger("tactful")

# The kinds of definitions an agent owns through its tag, in the order they are deleted:
# journeys first, so that their clean-up sees the observations still there.
OWNED: tuple[type[Entity], ...] = (
    Journey,
    Guideline,
    CannedResponse,
    Term,
    Capability,
    ContextVariable,
)

Defined = Collection[tuple[type[Entity], str]]


@dataclass(frozen=True)
class Pruned:
    """What pruning deleted: ids per kind."""

    journeys: list[str] = field(default_factory=list)
    guidelines: list[str] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)
    canned_responses: list[str] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)
    relationships: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(self.counts().values())

    def counts(self) -> dict[str, int]:
        """Singular kind name -> how many were pruned."""
        return {
            "journey": len(self.journeys),
            "guideline": len(self.guidelines),
            "observation": len(self.observations),
            "canned response": len(self.canned_responses),
            "term": len(self.terms),
            "capability": len(self.capabilities),
            "context variable": len(self.variables),
            "relationship": len(self.relationships),
        }

    def summary(self) -> str:
        """``"1 guideline, 1 relationship"`` (empty when nothing was pruned)."""
        return ", ".join(f"{n} {_plural(k, n)}" for k, n in self.counts().items() if n)


def _plural(kind: str, n: int) -> str:
    if n == 1:
        return kind
    return kind[:-1] + "ies" if kind.endswith("y") else kind + "s"


async def prune_agent(store: Store, agent_id: str, name: str, defined: Defined) -> Pruned:
    """Delete agent ``agent_id``'s definitions that are not in ``defined`` (kind, id), in one
    transaction (see ``Agent.prune`` for what is and is not pruned). Raises ``ConflictError``,
    deleting nothing, when a journey to delete is still a sub-journey or transition target of a
    kept one."""
    tag = agent_tag(agent_id)
    pruned = Pruned()
    async with store.transaction():
        owned: dict[type[Entity], list[Entity]] = {
            kind: [e for e in await store.list(kind) if tag in getattr(e, "tags", [])]
            for kind in OWNED
        }
        gone = {
            kind: [e for e in entities if (kind, e.id) not in defined]
            for kind, entities in owned.items()
        }
        gone_journeys = {e.id for e in gone[Journey]}
        kept_journeys = [j for j in await store.list(Journey) if j.id not in gone_journeys]
        for journey_id in gone_journeys:
            if users := deletion.journeys_using(kept_journeys, journey_id):
                raise ConflictError(
                    f"cannot prune journey {journey_id!r} of agent {name!r}: "
                    f"{', '.join(repr(j.title) for j in users)} still lead into it or run it "
                    "as a sub-journey; change their graphs first"
                )
        ours = {(EndpointKind.TAG, tag)}
        ours |= {(EndpointKind.GUIDELINE, g.id) for g in owned[Guideline]}
        ours |= {(EndpointKind.TAG, journey_tag(j.id)) for j in owned[Journey]}
        deleted = {(EndpointKind.GUIDELINE, g.id) for g in gone[Guideline]}
        deleted |= {(EndpointKind.TAG, journey_tag(j)) for j in gone_journeys}
        for r in await store.list(Relationship):
            ends = [(e.kind, e.id) for e in (r.source, r.target)]
            ended = any(e in deleted for e in ends)
            dropped = (Relationship, r.id) not in defined and any(e in ours for e in ends)
            if ended or (dropped and not any(foreign(e, ours) for e in (r.source, r.target))):
                await deletion.delete_relationship(store, r.id)
                pruned.relationships.append(r.id)
        for j in gone[Journey]:
            await deletion.delete_journey(store, j.id, keep_observations=True)
            pruned.journeys.append(j.id)
        for g in gone[Guideline]:
            await deletion.delete_guideline(store, g.id)
            is_observation = isinstance(g, Guideline) and g.is_observation
            (pruned.observations if is_observation else pruned.guidelines).append(g.id)
        for c in gone[CannedResponse]:
            await deletion.delete_canned_response(store, c.id)
            pruned.canned_responses.append(c.id)
        for t in gone[Term]:
            await deletion.delete_term(store, t.id)
            pruned.terms.append(t.id)
        for c in gone[Capability]:
            await deletion.delete_capability(store, c.id)
            pruned.capabilities.append(c.id)
        for v in gone[ContextVariable]:
            await deletion.delete_variable(store, v.id)
            pruned.variables.append(v.id)
    if pruned:
        log.info("pruned from %s: %s", name, pruned.summary())
    return pruned
