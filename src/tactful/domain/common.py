"""Identifiers, timestamps and the base model shared by every entity."""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType

_ALPHABET = string.ascii_letters + string.digits


def _random_text(length: int, alphabet: str = _ALPHABET) -> str:
    """``length`` characters of ``alphabet``, uniform and independent, from the system's random
    source in one read (``secrets.choice`` per character cost a read each). Bytes below the
    largest multiple of the alphabet's size map onto it evenly (modulo); the rest are drawn
    again."""
    even = 256 // len(alphabet) * len(alphabet)
    chars: list[str] = []
    while len(chars) < length:
        for b in secrets.token_bytes(length - len(chars) + 4):
            if b < even:
                chars.append(alphabet[b % len(alphabet)])
                if len(chars) == length:
                    break
    return "".join(chars)


def new_id() -> str:
    """A short random identifier, URL-safe, in the style of Parlant's ids. It starts with a
    capital letter, so that it is told apart from a name an agent's file gives (a recorded
    scenario names a server-made state by what it does: ``scenarios/record.py``); one in 228
    ids would otherwise have none."""
    return _random_text(1, string.ascii_uppercase) + _random_text(9)


def new_secret_id() -> str:
    """An unguessable identifier (about 190 bits): holding it is the capability to use it."""
    return _random_text(32)


# A conversation test's clock (``at``): set, ``utcnow`` starts from its instant and runs at
# real speed. Process-wide, since turns run in tasks started before any test's context.
_clock: tuple[datetime, float] | None = None


def utcnow() -> datetime:
    """The current time: the real one, or a conversation test's (``at``)."""
    if _clock is not None:
        start, since = _clock
        return start + timedelta(seconds=time.monotonic() - since)
    return datetime.now(UTC)


@contextmanager
def at(moment: datetime) -> Iterator[None]:
    """Run the block as if it began at ``moment`` (timezone-aware; naive means UTC): what the
    store records, what tools read and how fresh variables are all follow that clock."""
    global _clock
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    previous, _clock = _clock, (aware, time.monotonic())
    try:
        yield
    finally:
        _clock = previous


JSONDict = dict[str, Any]

# A JSON value, typed all the way down (its JSON schema names every branch, unlike ``Any``):
# for what the trace records of tools, variables and retrievers, whose content is free.
if TYPE_CHECKING:
    Json: TypeAlias = str | int | float | bool | list["Json"] | dict[str, "Json"] | None
else:
    Json = TypeAliasType("Json", "str | int | float | bool | list[Json] | dict[str, Json] | None")


class Entity(BaseModel):
    """Base of every stored entity: an id, a creation time, and its table name."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    collection: ClassVar[str] = ""
    id: str = Field(default_factory=new_id, min_length=1, max_length=128)
    creation_utc: datetime = Field(default_factory=utcnow)

    def audit_view(self) -> dict[str, Any]:
        """What the audit trail records of this entity (subclasses leave secrets out)."""
        return self.model_dump(mode="json")
