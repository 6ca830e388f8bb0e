"""The audit trail: who changed which definition, when, and to what.

The acting principal travels with the task that makes the change (a context variable), so every
way of changing a definition (REST, the SDK, the CLI) is recorded by the store in the same
transaction as the change itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

# Changes made by code in this process (the SDK, agent files at start-up) unless said otherwise.
DEFAULT_ACTOR = "sdk"
_actor: ContextVar[str] = ContextVar("tactful_actor", default=DEFAULT_ACTOR)


class AuditAction(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


class AuditEntry(BaseModel):
    """One change to one definition."""

    id: int
    creation_utc: datetime
    actor: str
    action: AuditAction
    # The collection: agents, guidelines, relationships, journeys, api_keys, ...
    kind: str
    entity_id: str
    # The definition after the change (secrets left out); None for a deletion.
    data: dict[str, Any] | None = None
    # The revision the change belongs to (None: not a definition, e.g. an API key).
    revision: int | None = None


class Revision(BaseModel):
    """One change set of definitions: every definition written by one transaction, or inside
    one ``revision()`` block (an applied file, a REST request, a loaded agent file)."""

    id: int
    creation_utc: datetime
    actor: str
    # What the change was, as its author said it ("apply voltmart.yaml"); None: not said.
    summary: str | None = None


def current_actor() -> str:
    """Who the current task acts as."""
    return _actor.get()


def act_as(actor: str) -> None:
    """From now on, in this task, changes are recorded as made by ``actor``."""
    _actor.set(actor)


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Changes made inside the block are recorded as made by ``actor``."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


@dataclass
class RevisionScope:
    """The revision the current task's definition changes join; the store creates it with the
    first change (``id``) and records ``summary`` with it."""

    summary: str | None = None
    id: int | None = None
    # The transaction that created the revision row: if it rolls back, so does the revision.
    created_by: object = None


_revision: ContextVar[RevisionScope | None] = ContextVar("tactful_revision", default=None)


def current_revision() -> RevisionScope | None:
    """The revision the current task's changes join, if one was begun."""
    return _revision.get()


def begin_revision(summary: str | None = None) -> None:
    """From now on, in this task, definition changes form one revision described by
    ``summary`` (a REST request: its method and path)."""
    _revision.set(RevisionScope(summary))


@contextmanager
def revision(summary: str | None = None) -> Iterator[RevisionScope]:
    """Definition changes made inside the block form one revision, across transactions."""
    token = _revision.set(RevisionScope(summary))
    try:
        yield _revision.get() or RevisionScope(summary)
    finally:
        _revision.reset(token)
