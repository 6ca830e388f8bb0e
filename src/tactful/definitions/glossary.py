"""Glossary terms: storing and changing them with one rule, whether the SDK, the REST API or
anything else defines them.

A term's tags must name something stored (``tags.check_definition_tags``); a change is checked
for the tags it adds. Deleting is ``deletion.delete_term``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tactful.definitions.tags import check_definition_tags
from tactful.domain import Term
from tactful.store.base import Store


async def check_term(store: Store, term: Term, *, old: Term | None = None) -> Term:
    """``term`` with its tags and synonyms without repeats, once its tags name what is stored
    (with ``old``, the stored term it changes: the tags it adds)."""
    tags = await check_definition_tags(store, term.tags, held=old.tags if old else ())
    return term.model_copy(update={"tags": tags, "synonyms": list(dict.fromkeys(term.synonyms))})


async def create_term(store: Store, term: Term) -> Term:
    """Store a new term, checked (``ConflictError`` if its id is taken)."""
    async with store.transaction():
        return await store.create(await check_term(store, term))


async def define_term(store: Store, term: Term, *, key: str | None) -> Term:
    """Store ``term``, checked, or replace the one with the same ``key`` (by id when ``key`` is
    None): the SDK's idempotent definition. Returns the stored term, whose id stays the first
    one's."""
    async with store.transaction():
        stored, _ = await store.upsert(await check_term(store, term), key=key)
    return stored


async def update_term(store: Store, term_id: str, changes: Mapping[str, Any]) -> Term:
    """Apply ``changes`` (field -> new value) to a stored term and check the tags they add."""
    async with store.transaction():
        old = await store.get(Term, term_id)
        changed = Term.model_validate({**old.model_dump(), **changes})
        return await store.update(await check_term(store, changed, old=old))
