"""Request shapes shared by several resources, in Parlant's wire format."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from pydantic_core import PydanticCustomError

from tactful.store.schema import INT32_MAX


def _json_integer(value: Any) -> Any:
    # JSON Schema's integer: 3 and 3.0 are, true and "3" are not (pydantic's lax mode takes them).
    if isinstance(value, bool | str | bytes):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


# Numbers in bodies are strict (``true`` is not an integer, ``0`` is not a boolean) and every
# integer fits the 32-bit columns of both backends, so the spec's bounds are the truth.
# Metadata after the bounds, so that the spec still shows them as minimum and maximum.
JSON_INTEGER = BeforeValidator(_json_integer)
Int32 = Annotated[int, Field(ge=-INT32_MAX - 1, le=INT32_MAX), JSON_INTEGER]
Offset = Annotated[int, Field(ge=0, le=INT32_MAX), JSON_INTEGER]
Flag = StrictBool
# Page sizes, in queries and bodies.
PAGE_MAX = 1000


def offset_query(description: str) -> Any:
    """A query parameter holding an event offset (0 to 2^31 - 1)."""
    return Query(ge=0, le=INT32_MAX, description=description)


def seconds_query(description: str) -> Any:
    """A query parameter holding a wait in seconds: finite, from 0 to a day."""
    return Query(ge=0, le=24 * 3600, allow_inf_nan=False, description=description)


def page_size_query(description: str = "Page size") -> Any:
    """A query parameter holding a page size (1 to 1,000)."""
    return Query(ge=1, le=PAGE_MAX, description=description)


class Params(BaseModel):
    """Base of request bodies: unknown fields are refused, so a typo is a 422, not a no-op."""

    model_config = ConfigDict(extra="forbid")


class TagsUpdate(Params):
    """Tag ids to add to and remove from an entity's tags."""

    add: list[str] | None = Field(default=None, description="Tag ids to add")
    remove: list[str] | None = Field(default=None, description="Tag ids to remove")

    def apply(self, current: list[str]) -> list[str]:
        return add_and_remove(current, self.add, self.remove)


class MetadataUpdate(Params):
    """Metadata keys to set and keys to remove."""

    set: dict[str, Any] | None = Field(default=None, description="Keys to set")
    unset: list[str] | None = Field(default=None, description="Keys to remove")

    def apply(self, current: dict[str, Any]) -> dict[str, Any]:
        updated = {**current, **(self.set or {})}
        for key in self.unset or []:
            updated.pop(key, None)
        return updated


class LabelsUpdate(Params):
    """Labels to add (``upsert``) and labels to remove."""

    upsert: list[str] | None = Field(default=None, description="Labels to add")
    remove: list[str] | None = Field(default=None, description="Labels to remove")

    def apply(self, current: list[str]) -> list[str]:
        return add_and_remove(current, self.upsert, self.remove)


class SortDirection(StrEnum):
    ASC = "asc"
    DESC = "desc"


def unique(items: list[str]) -> list[str]:
    """The items without repeats, in first-seen order."""
    return list(dict.fromkeys(items))


def add_and_remove(
    current: list[str], add: list[str] | None, remove: list[str] | None
) -> list[str]:
    """``current`` plus ``add`` minus ``remove``, without repeats, order kept."""
    dropped = set(remove or [])
    return [t for t in unique([*current, *(add or [])]) if t not in dropped]
