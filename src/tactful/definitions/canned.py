"""Canned responses: storing and changing them with one rule, whether the SDK (an agent's, a
journey's or a shared one), the REST API or anything else defines them.

A template must compile (``domain.canned.check_template``) and the tags must name something
stored (``tags.check_definition_tags``). A change is checked for what it changes or adds: an
unchanged template and the tags already held are not checked again. Deleting is
``deletion.delete_canned_response``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tactful.definitions.tags import check_definition_tags
from tactful.domain import CannedResponse
from tactful.domain.canned import check_template
from tactful.store.base import Store


async def check_canned_response(
    store: Store, response: CannedResponse, *, old: CannedResponse | None = None
) -> CannedResponse:
    """``response`` with its tags, signals and field dependencies without repeats, once its
    template compiles (``ValidationError`` otherwise, checked first) and its tags name what is
    stored. With ``old`` (the stored response it changes), only what changes is checked."""
    if old is None or response.value != old.value:
        check_template(response.value)
    tags = await check_definition_tags(store, response.tags, held=old.tags if old else ())
    return response.model_copy(
        update={
            "tags": tags,
            "signals": list(dict.fromkeys(response.signals)),
            "field_dependencies": list(dict.fromkeys(response.field_dependencies)),
        }
    )


async def create_canned_response(store: Store, response: CannedResponse) -> CannedResponse:
    """Store a new canned response, checked (``ConflictError`` if its id is taken)."""
    async with store.transaction():
        return await store.create(await check_canned_response(store, response))


async def define_canned_response(
    store: Store, response: CannedResponse, *, key: str | None
) -> CannedResponse:
    """Store ``response``, checked, or replace the one with the same ``key`` (by id when
    ``key`` is None): the SDK's idempotent definition. Returns the stored response, whose id
    stays the first one's."""
    async with store.transaction():
        stored, _ = await store.upsert(await check_canned_response(store, response), key=key)
    return stored


async def update_canned_response(
    store: Store, canned_response_id: str, changes: Mapping[str, Any]
) -> CannedResponse:
    """Apply ``changes`` (field -> new value) to a stored canned response and check them."""
    async with store.transaction():
        old = await store.get(CannedResponse, canned_response_id)
        changed = CannedResponse.model_validate({**old.model_dump(), **changes})
        return await store.update(await check_canned_response(store, changed, old=old))
