"""What applying a document would change: creations, updates (with the fields that change) and
deletions, per kind. Pure: it compares two ``AgentDefinitions`` (the stored ones, the wanted
ones) and writes nothing.

Deletions are the pruning: a definition the agent owns that the document no longer has leaves,
and so does a relationship with an end among the agent's that the document no longer has,
unless its other end belongs to something else (another agent's guideline or journey). Tags
and tool services are shared: they are created or updated, never deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from tactful.definitions.document import AgentDefinitions, foreign
from tactful.domain import Agent as AgentModel
from tactful.domain import (
    CannedResponse,
    Capability,
    ContextVariable,
    Entity,
    Guideline,
    Journey,
    Relationship,
    Tag,
    Term,
    ToolServiceConfig,
)


class ChangeAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class Change(BaseModel):
    """One definition that applying creates, updates or deletes."""

    action: ChangeAction
    # agent, tag, service, canned_response, guideline, observation, term, capability, variable,
    # journey, relationship
    kind: str
    id: str
    # What a person recognises it by: a condition, a title, a name, a template.
    label: str
    # For an update: the fields whose values change.
    fields: list[str] = Field(default_factory=list)


class Plan(BaseModel):
    """The changes that make the stored definitions of an agent those of a document."""

    agent_id: str
    agent_name: str
    changes: list[Change] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes

    def count(self, action: ChangeAction) -> int:
        return sum(1 for c in self.changes if c.action is action)

    def summary(self) -> str:
        """``"2 to create, 1 to update, 0 to delete"``."""
        return ", ".join(f"{self.count(a)} to {a.value}" for a in ChangeAction)


def kind_name(entity: Entity) -> str:
    if isinstance(entity, Guideline):
        return "observation" if entity.is_observation else "guideline"
    return {
        AgentModel: "agent",
        Tag: "tag",
        ToolServiceConfig: "service",
        CannedResponse: "canned_response",
        Term: "term",
        Capability: "capability",
        ContextVariable: "variable",
        Journey: "journey",
        Relationship: "relationship",
    }[type(entity)]


def label(entity: Entity) -> str:
    """A short, recognisable description of a definition."""
    text: str
    if isinstance(entity, Guideline):
        text = entity.condition + (f" -> {entity.action}" if entity.action else "")
    elif isinstance(entity, Journey | Capability):
        text = entity.title
    elif isinstance(entity, CannedResponse):
        text = entity.value
    elif isinstance(entity, Relationship):
        text = (
            f"{entity.source.kind.value} {entity.source.id} {entity.kind.value} "
            f"{entity.target.kind.value} {entity.target.id}"
        )
    else:
        text = str(getattr(entity, "name", entity.id))
    return text if len(text) <= 100 else text[:99] + "…"


def comparable(entity: Entity) -> dict[str, Any]:
    """What two versions of a definition are compared on (creation time aside)."""
    return entity.model_dump(mode="json", exclude={"creation_utc"})


def changed_fields(current: Entity, wanted: Entity) -> list[str]:
    old, new = comparable(current), comparable(wanted)
    return [k for k in new if old.get(k) != new[k]]


def _diff(
    current: Sequence[Entity], wanted: Sequence[Entity], *, prune: bool, key: str = "id"
) -> list[Change]:
    have = {getattr(e, key): e for e in current}
    changes = []
    for w in wanted:
        c = have.get(getattr(w, key))
        if c is None:
            changes.append(
                Change(action=ChangeAction.CREATE, kind=kind_name(w), id=w.id, label=label(w))
            )
        elif fields := changed_fields(c.model_copy(update={"id": w.id}), w):
            changes.append(
                Change(
                    action=ChangeAction.UPDATE,
                    kind=kind_name(w),
                    id=w.id,
                    label=label(w),
                    fields=fields,
                )
            )
    if prune:
        keep = {getattr(w, key) for w in wanted}
        changes += [
            Change(action=ChangeAction.DELETE, kind=kind_name(c), id=c.id, label=label(c))
            for c in current
            if getattr(c, key) not in keep
        ]
    return changes


def prunable(current: AgentDefinitions, wanted: AgentDefinitions) -> list[Relationship]:
    """The stored relationships the agent's definitions may delete: those with no end that
    belongs to something else."""
    ours = current.ends() | wanted.ends()
    return [
        r for r in current.relationships if not any(foreign(e, ours) for e in (r.source, r.target))
    ]


def plan(current: AgentDefinitions | None, wanted: AgentDefinitions) -> Plan:
    """The changes that turn ``current`` (None: the agent does not exist yet) into ``wanted``."""
    if current is None:
        current = AgentDefinitions(agent=wanted.agent.model_copy(update={"id": ""}))
        agent_changes = [
            Change(
                action=ChangeAction.CREATE,
                kind="agent",
                id=wanted.agent.id,
                label=wanted.agent.name,
            )
        ]
    else:
        agent_changes = _diff([current.agent], [wanted.agent], prune=False)
    changes = [
        *agent_changes,
        *_diff(current.tags, wanted.tags, prune=False),
        *_diff(current.services, wanted.services, prune=False, key="name"),
        *_diff(current.canned_responses, wanted.canned_responses, prune=True),
        *_diff(current.guidelines, wanted.guidelines, prune=True),
        *_diff(current.terms, wanted.terms, prune=True),
        *_diff(current.capabilities, wanted.capabilities, prune=True),
        *_diff(current.variables, wanted.variables, prune=True),
        *_diff(current.journeys, wanted.journeys, prune=True),
        *_diff(current.relationships, wanted.relationships, prune=False),
    ]
    # A relationship is the same one when it relates the same ends in the same way, whatever
    # its id: only those the document no longer has, and which are the agent's alone, go.
    kept = [r for r in current.relationships if any(r.same_as(w) for w in wanted.relationships)]
    changes = [
        c
        for c in changes
        if not (
            c.kind == "relationship"
            and c.action is ChangeAction.CREATE
            and any(r.same_as(w) for r in kept for w in wanted.relationships if w.id == c.id)
        )
    ]
    wanted_ids = {w.id for w in wanted.relationships}
    changes += [
        Change(action=ChangeAction.DELETE, kind="relationship", id=r.id, label=label(r))
        for r in prunable(current, wanted)
        if r.id not in wanted_ids and not any(r.same_as(w) for w in wanted.relationships)
    ]
    return Plan(agent_id=wanted.agent.id, agent_name=wanted.agent.name, changes=changes)
