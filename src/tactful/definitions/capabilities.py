"""Capabilities: storing and changing them with one rule, whether the SDK or the REST API
defines them (definition files are checked the same way by ``apply.check``).

A capability's tags must name something stored (``tags.check_definition_tags``); a change is
checked for the tags it adds. Deleting is ``deletion.delete_capability``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tactful.definitions.tags import check_definition_tags
from tactful.domain import Capability
from tactful.store.base import Store


async def check_capability(
    store: Store, capability: Capability, *, old: Capability | None = None
) -> Capability:
    """``capability`` with its tags without repeats, once they name what is stored (with
    ``old``, the stored capability it changes: the tags it adds)."""
    tags = await check_definition_tags(store, capability.tags, held=old.tags if old else ())
    return capability.model_copy(update={"tags": tags})


async def create_capability(store: Store, capability: Capability) -> Capability:
    """Store a new capability, checked (``ConflictError`` if its id is taken)."""
    async with store.transaction():
        return await store.create(await check_capability(store, capability))


async def define_capability(store: Store, capability: Capability, *, key: str | None) -> Capability:
    """Store ``capability``, checked, or replace the one with the same ``key`` (by id when
    ``key`` is None): the SDK's idempotent definition. Returns the stored capability, whose id
    stays the first one's."""
    async with store.transaction():
        stored, _ = await store.upsert(await check_capability(store, capability), key=key)
    return stored


async def update_capability(
    store: Store, capability_id: str, changes: Mapping[str, Any]
) -> Capability:
    """Apply ``changes`` (field -> new value) to a stored capability; check the tags they add."""
    async with store.transaction():
        old = await store.get(Capability, capability_id)
        changed = Capability.model_validate({**old.model_dump(), **changes})
        return await store.update(await check_capability(store, changed, old=old))
