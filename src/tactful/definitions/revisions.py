"""Revisions: the history of definitions, and going back to one.

Every change to a definition is an audit entry holding the definition as it became (or None
for a deletion), and each belongs to a revision (``Store.list_revisions``). Replaying the
entries rebuilds what the store held as of any revision; ``rollback`` applies an agent's
definitions as of then, as a new revision. Definitions stored before the audit trail existed,
and never changed since, count as having been there all along.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from tactful.definitions.apply import Applied, apply_document, holdings
from tactful.definitions.document import KINDS, collect
from tactful.domain import AuditAction, AuditEntry, Entity, agent_id_of_tag, journey_tag
from tactful.errors import NotFoundError, ValidationError
from tactful.store.base import Store
from tactful.tools.registry import ToolRegistry

_BY_COLLECTION: dict[str, type[Entity]] = {kind.collection: kind for kind in KINDS}
_SINGULAR = {
    "agents": "agent",
    "tags": "tag",
    "tool_services": "service",
    "canned_responses": "canned response",
    "guidelines": "guideline",
    "terms": "term",
    "capabilities": "capability",
    "context_variables": "variable",
    "journeys": "journey",
    "relationships": "relationship",
    "tools": "tool",
}

Key = tuple[str, str]


class RevisionChange(BaseModel):
    action: AuditAction
    # The collection: guidelines, journeys, relationships, ...
    kind: str
    id: str


class RevisionInfo(BaseModel):
    """One revision: who, when, what it was for, what it changed and whose definitions."""

    id: int
    creation_utc: datetime
    actor: str
    summary: str
    agents: list[str] = Field(default_factory=list)
    changes: list[RevisionChange] = Field(default_factory=list)


class _Replay:
    """The definitions as they were after each audit entry, and whose they were."""

    def __init__(self) -> None:
        self.state: dict[Key, dict[str, Any]] = {}

    def owners(self, collection: str, data: Mapping[str, Any] | None, entity_id: str) -> set[str]:
        if data is None:
            return set()
        if collection == "agents":
            return {entity_id}
        if collection == "relationships":
            found: set[str] = set()
            for end in (data.get("source") or {}, data.get("target") or {}):
                found |= self._end_owners(end.get("kind"), str(end.get("id", "")))
            return found
        return {a for t in data.get("tags") or [] if (a := agent_id_of_tag(str(t))) is not None}

    def _end_owners(self, kind: object, end_id: str) -> set[str]:
        if kind == "guideline":
            return self.owners("guidelines", self.state.get(("guidelines", end_id)), end_id)
        if (agent := agent_id_of_tag(end_id)) is not None:
            return {agent}
        journey_prefix = journey_tag("")
        if end_id.startswith(journey_prefix):
            journey_id = end_id.removeprefix(journey_prefix)
            return self.owners("journeys", self.state.get(("journeys", journey_id)), journey_id)
        return set()

    def step(self, entry: AuditEntry) -> set[str]:
        """Apply one entry; the agents whose definitions it touched."""
        key = (entry.kind, entry.entity_id)
        touched = self.owners(entry.kind, self.state.get(key), entry.entity_id)
        if entry.data is None:
            self.state.pop(key, None)
        else:
            self.state[key] = entry.data
        return touched | self.owners(entry.kind, entry.data, entry.entity_id)


def _describe(changes: Iterable[RevisionChange]) -> str:
    """``"created 2 guidelines, deleted 1 relationship"``."""
    counts: dict[tuple[AuditAction, str], int] = defaultdict(int)
    for c in changes:
        counts[(c.action, _SINGULAR.get(c.kind, c.kind))] += 1
    return ", ".join(
        f"{action.value} {n} {kind}{'s' if n != 1 else ''}" for (action, kind), n in counts.items()
    )


async def history(
    store: Store, *, agent_id: str | None = None, limit: int = 50
) -> list[RevisionInfo]:
    """Revisions, newest first; with ``agent_id``, only those that touched its definitions."""
    replay = _Replay()
    agents: dict[int, set[str]] = defaultdict(set)
    changes: dict[int, list[RevisionChange]] = defaultdict(list)
    for entry in await store.definition_changes():
        touched = replay.step(entry)
        if entry.revision is not None:
            agents[entry.revision] |= touched
            changes[entry.revision].append(
                RevisionChange(action=entry.action, kind=entry.kind, id=entry.entity_id)
            )
    found = []
    for r in await store.list_revisions(limit=2**31 - 1):
        if agent_id is not None and agent_id not in agents[r.id]:
            continue
        found.append(
            RevisionInfo(
                id=r.id,
                creation_utc=r.creation_utc,
                actor=r.actor,
                summary=r.summary or _describe(changes[r.id]),
                agents=sorted(agents[r.id]),
                changes=changes[r.id],
            )
        )
        if len(found) == limit:
            break
    return found


async def holdings_at(store: Store, revision: int) -> dict[type[Entity], list[Entity]]:
    """What the store held, by kind, once revision ``revision`` was made."""
    if not any(r.id == revision for r in await store.list_revisions(limit=1, before=revision + 1)):
        raise NotFoundError("Revision", str(revision))
    replay = _Replay()
    seen: set[Key] = set()
    for entry in await store.definition_changes():
        seen.add((entry.kind, entry.entity_id))
        if entry.revision is None or entry.revision <= revision:
            replay.step(entry)
    found: dict[type[Entity], list[Entity]] = {kind: [] for kind in KINDS}
    for (collection, _), data in replay.state.items():
        kind = _BY_COLLECTION.get(collection)
        if kind is not None:
            found[kind].append(kind.model_validate(data))
    # Never changed since the audit trail began: there all along.
    for kind, entities in (await holdings(store)).items():
        found[kind] += [e for e in entities if (kind.collection, e.id) not in seen]
    return found


async def rollback(store: Store, tools: ToolRegistry, *, revision: int, agent_id: str) -> Applied:
    """Make agent ``agent_id``'s definitions what they were once ``revision`` was made, as a
    new revision. Tool services are left as they are; tags it needs are created again."""
    definitions = collect(await holdings_at(store, revision), agent_id)
    if definitions is None:
        raise ValidationError(f"agent {agent_id!r} did not exist at revision {revision}")
    definitions.services = []
    return await apply_document(
        store,
        tools,
        definitions,
        summary=f"rollback of {definitions.agent.name!r} to revision {revision}",
    )
