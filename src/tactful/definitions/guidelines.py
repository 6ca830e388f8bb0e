"""Guidelines and observations (guidelines without an action): storing and changing them with
one rule for what they refer to, whether the SDK, the REST API or anything else defines them.

What a guideline names must be stored: its tags (``tags.check_definition_tags``), the canned
responses it prefers and the tools (``service:name``) it makes available (except for the SDK's
definitions: see ``define_guideline``). A change is checked for what it adds; what the
guideline already held is not checked again. Deleting is ``deletion.delete_guideline``'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tactful.definitions.references import check_tools
from tactful.definitions.stored import StoredDefinitions
from tactful.definitions.tags import check_definition_tags
from tactful.domain import CannedResponse, Guideline
from tactful.store.base import Store


async def check_canned_responses(
    store: Store, ids: Iterable[str], *, held: Iterable[str] = ()
) -> list[str]:
    """The canned response ids without repeats; each not in ``held`` must be stored."""
    checked = list(dict.fromkeys(ids))
    kept = set(held)
    for canned_id in checked:
        if canned_id not in kept:
            await store.get(CannedResponse, canned_id)
    return checked


def normalized(guideline: Guideline) -> Guideline:
    """``guideline`` with its tags, labels, canned responses and tools without repeats, as
    ``check_guideline`` stores it."""
    return guideline.model_copy(
        update={
            field: list(dict.fromkeys(getattr(guideline, field)))
            for field in ("tags", "canned_responses", "tools", "labels")
        }
    )


async def check_guideline(
    store: Store, guideline: Guideline, *, old: Guideline | None = None, tools: bool = True
) -> Guideline:
    """``guideline`` with its tags, labels, canned responses and tools without repeats, once
    what it names is stored (checked in that order: tags, canned responses, then tools unless
    ``tools`` is false). With ``old`` (the stored guideline it changes), only what it adds is
    checked."""
    tags = await check_definition_tags(store, guideline.tags, held=old.tags if old else ())
    canned = await check_canned_responses(
        store, guideline.canned_responses, held=old.canned_responses if old else ()
    )
    if tools:
        tool_ids = await check_tools(store, guideline.tools, held=old.tools if old else ())
    else:
        tool_ids = list(dict.fromkeys(guideline.tools))
    labels = list(dict.fromkeys(guideline.labels))
    return guideline.model_copy(
        update={"tags": tags, "canned_responses": canned, "tools": tool_ids, "labels": labels}
    )


async def create_guideline(store: Store, guideline: Guideline) -> Guideline:
    """Store a new guideline, checked (``ConflictError`` if its id is taken)."""
    async with store.transaction():
        return await store.create(await check_guideline(store, guideline))


async def define_guideline(
    store: Store,
    guideline: Guideline,
    *,
    key: str | None,
    stored: StoredDefinitions | None = None,
) -> Guideline:
    """Store ``guideline``, checked, or replace the one with the same ``key`` (by id when
    ``key`` is None): the SDK's idempotent definition. Returns the stored guideline, whose id
    stays the first one's. With ``stored``, a guideline stored exactly so is returned as it is,
    with no check and no write (a restart).

    Its tools are not checked: a program may name the tools of a service that is not connected
    yet (stored services reconnect in the background) or is refused; a tool that is not there is
    simply not called."""
    if stored is not None:
        same = await stored.same(normalized(guideline), key)
        if same is not None:
            return same
        written = await define_guideline(store, guideline, key=key)
        stored.wrote(written, key)
        return written
    async with store.transaction():
        checked = await check_guideline(store, guideline, tools=False)
        written, _ = await store.upsert(checked, key=key)
    return written


async def update_guideline(
    store: Store, guideline_id: str, changes: Mapping[str, Any]
) -> Guideline:
    """Apply ``changes`` (field -> new value) to a stored guideline and check what they add.
    Raises ``NotFoundError`` for an unknown guideline or anything it would newly name."""
    async with store.transaction():
        old = await store.get(Guideline, guideline_id)
        changed = Guideline.model_validate({**old.model_dump(), **changes})
        return await store.update(await check_guideline(store, changed, old=old))


async def mark_always(store: Store, guideline_id: str) -> Guideline:
    """Mark a guideline always-match (it applies on every turn, with no check); one already
    marked is left as it is."""
    async with store.transaction():
        stored = await store.get(Guideline, guideline_id)
        if stored.always:
            return stored
        return await update_guideline(store, guideline_id, {"always": True})
