"""What was stored when a program began defining its agent: a restart that defines everything
again as it was needs neither a check nor a write per definition.

A program defines its agent through the SDK on every start, one call per definition. Each call
used to be a transaction of its own (read what it names, read what is stored, compare), about
3 ms on a SQLite file: 3 s for 1,000 guidelines. ``StoredDefinitions`` reads each kind once,
with the natural keys, and answers "stored exactly so" from memory; anything else goes through
the usual checked write. What it read is as old as the first call of the kind: a definition
another process changed since then, and that this program defines as it was before, is taken
as unchanged (the SDK's definitions are the same program's on every process, so it would write
the same thing).
"""

from __future__ import annotations

from typing import TypeVar

from tactful.domain import Entity
from tactful.store.base import Store

E = TypeVar("E", bound=Entity)


class StoredDefinitions:
    """Stored entities by kind, keyed by natural key (or by id for those defined by id), read
    once per kind."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_kind: dict[type[Entity], dict[tuple[str, str], Entity]] = {}

    async def same(self, entity: E, key: str | None) -> E | None:
        """The stored entity when ``entity`` (found by ``key``, else by id) is stored exactly
        as given, ids and creation time aside; else None."""
        known = await self._known(type(entity))
        stored = known.get(("key", key) if key is not None else ("id", entity.id))
        if stored is None or not isinstance(stored, type(entity)):
            return None
        again = entity.model_copy(update={"id": stored.id, "creation_utc": stored.creation_utc})
        if again.model_dump(mode="json") != stored.model_dump(mode="json"):
            return None
        return stored

    def wrote(self, entity: Entity, key: str | None) -> None:
        """``entity`` was just written under ``key``: answer with it from now on."""
        known = self._by_kind.get(type(entity))
        if known is not None:
            known[("key", key) if key is not None else ("id", entity.id)] = entity

    async def _known(self, kind: type[Entity]) -> dict[tuple[str, str], Entity]:
        known = self._by_kind.get(kind)
        if known is None:
            known = {}
            for key, entity in await self.store.list_keyed(kind):
                # Defined by id (no key): found by id only, as ``Store.upsert`` finds it.
                known[("key", key) if key is not None else ("id", entity.id)] = entity
            self._by_kind[kind] = known
        return known
