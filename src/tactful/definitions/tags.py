"""Tags, and the rule for the tags a definition carries: each names something stored.

A tag on a definition is a tag's id, ``agent:<agent id>`` (scoped to one agent) or, where
journeys scope definitions, ``journey:<journey id>`` (active while that journey is followed):
the same rule ``definitions.apply.check`` applies to a document's definitions. Deleting a tag is
``deletion.delete_tag``'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tactful.domain import Agent, Journey, Tag, agent_id_of_tag, journey_tag
from tactful.errors import NotFoundError
from tactful.store.base import Store

_JOURNEY_TAG_PREFIX = journey_tag("")


def named(
    tag: str, *, agent_tags: bool = True, journey_tags: bool = True
) -> tuple[type[Agent] | type[Journey] | type[Tag], str]:
    """What ``tag`` names, as (kind, id): ``agent:<id>`` an agent (when ``agent_tags``; else it
    is a tag id, as for the tags of agents and customers), ``journey:<id>`` a journey (when
    ``journey_tags``), anything else the tag of that id. The one reading of a tag, for the
    checks below, relationship ends and documents."""
    agent_id = agent_id_of_tag(tag)
    if agent_id is not None and agent_tags:
        return Agent, agent_id
    if journey_tags and tag.startswith(_JOURNEY_TAG_PREFIX):
        return Journey, tag.removeprefix(_JOURNEY_TAG_PREFIX)
    return Tag, tag


async def check_tags(
    store: Store, tags: Iterable[str], *, agent_tags: bool = True, journey_tags: bool = False
) -> list[str]:
    """The tags without repeats, in first-seen order; raises ``NotFoundError`` for the first
    that names nothing stored (``named``: an agent, a journey when ``journey_tags``, a tag)."""
    checked = list(dict.fromkeys(tags))
    for tag in checked:
        kind, id = named(tag, agent_tags=agent_tags, journey_tags=journey_tags)
        if await store.find(kind, id) is None:
            raise NotFoundError(kind.__name__, id)
    return checked


async def check_definition_tags(
    store: Store, tags: Iterable[str], *, held: Iterable[str] = ()
) -> list[str]:
    """The tags of a guideline, canned response or term, without repeats; each must name a tag,
    an agent or a journey. Tags in ``held`` (what the stored definition already carries) are
    not checked again: a change need not answer for references it does not make."""
    tags = list(dict.fromkeys(tags))
    kept = set(held)
    await check_tags(store, [t for t in tags if t not in kept], journey_tags=True)
    return tags


async def create_tag(store: Store, tag: Tag) -> Tag:
    """Store a new tag (``ConflictError`` if its id is taken)."""
    async with store.transaction():
        return await store.create(tag)


async def define_tag(store: Store, tag: Tag, *, key: str | None) -> Tag:
    """Store ``tag``, or update the one with the same ``key`` (by id when ``key`` is None);
    returns the stored tag, whose id stays the first one's."""
    async with store.transaction():
        stored, _ = await store.upsert(tag, key=key)
    return stored


async def update_tag(store: Store, tag_id: str, changes: Mapping[str, Any]) -> Tag:
    """Change a tag (its name); its id, which definitions refer to, stays."""
    async with store.transaction():
        old = await store.get(Tag, tag_id)
        return await store.update(Tag.model_validate({**old.model_dump(), **changes}))
