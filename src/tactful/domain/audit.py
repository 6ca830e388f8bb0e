"""The audit trail: who changed which definition, when, and to what.

The acting principal travels with the task that makes the change (a context variable), so every
way of changing a definition (REST, the SDK, the CLI) is recorded by the store in the same
transaction as the change itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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
