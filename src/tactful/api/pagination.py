"""Cursor pagination in Parlant's shape: without ``limit`` a plain list, with it a page."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from tactful.api.params import SortDirection
from tactful.domain import Entity
from tactful.errors import ValidationError

E = TypeVar("E", bound=Entity)
CURSOR = ("query", "cursor")


@dataclass
class Page(Generic[E]):
    items: list[E]
    total_count: int
    has_more: bool
    next_cursor: str | None


def _encode(entity_id: str) -> str:
    return base64.urlsafe_b64encode(entity_id.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationError(
            f"the cursor {cursor!r} is not valid; list again without it", loc=CURSOR
        ) from None


def paginate(
    items: Sequence[E], *, limit: int, cursor: str | None, sort: SortDirection | None
) -> Page[E]:
    """One page of ``items`` (given in creation order), after the item the cursor names."""
    in_order = ordered(items, sort)
    start = 0
    if cursor:
        after = _decode(cursor)
        ids = [e.id for e in in_order]
        if after not in ids:
            raise ValidationError(
                f"the cursor {cursor!r} names nothing; list again without it", loc=CURSOR
            )
        start = ids.index(after) + 1
    chunk = in_order[start : start + limit]
    has_more = start + limit < len(in_order)
    return Page(
        items=chunk,
        total_count=len(in_order),
        has_more=has_more,
        next_cursor=_encode(chunk[-1].id) if has_more and chunk else None,
    )


def ordered(items: Sequence[E], sort: SortDirection | None) -> list[E]:
    """The items in the requested creation order (ascending by default)."""
    return list(reversed(items)) if sort is SortDirection.DESC else list(items)
