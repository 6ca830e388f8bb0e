"""Tags and the rule for the tags a definition carries (``definitions.tags``)."""

from __future__ import annotations

import pytest
import pytest_asyncio

import tactful
from tactful.definitions.keys import tag_name_key
from tactful.definitions.tags import (
    check_definition_tags,
    check_tags,
    create_tag,
    define_tag,
    update_tag,
)
from tactful.domain import Tag
from tactful.errors import ConflictError, NotFoundError
from tactful.store.base import Store


@pytest_asyncio.fixture
async def store(named: Store) -> Store:
    return named


async def test_tags_naming_what_is_stored_pass_once_each_in_order(store: Store) -> None:
    tags = ["vip", "agent:shop", "vip", "journey:returns"]
    checked = await check_tags(store, tags, journey_tags=True)
    assert checked == ["vip", "agent:shop", "journey:returns"]


@pytest.mark.parametrize(
    ("tags", "options", "message"),
    [
        (["nope"], {}, "Tag 'nope' was not found"),
        (["agent:nope"], {}, "Agent 'nope' was not found"),
        # Agents and customers carry plain tags only: there ``agent:...`` is a tag id.
        (["agent:shop"], {"agent_tags": False}, "Tag 'agent:shop' was not found"),
        (["journey:returns"], {}, "Tag 'journey:returns' was not found"),
        (["journey:nope"], {"journey_tags": True}, "Journey 'nope' was not found"),
        (["vip", "nope", "agent:nope"], {}, "Tag 'nope' was not found"),
    ],
)
async def test_a_tag_naming_nothing_stored_is_not_found(
    store: Store, tags: list[str], options: dict[str, bool], message: str
) -> None:
    with pytest.raises(NotFoundError) as missing:
        await check_tags(store, tags, **options)
    assert str(missing.value) == message


async def test_a_definition_may_be_scoped_to_a_journey(store: Store) -> None:
    tags = ["agent:shop", "journey:returns", "agent:shop"]
    assert await check_definition_tags(store, tags) == ["agent:shop", "journey:returns"]
    with pytest.raises(NotFoundError, match="Journey 'gone' was not found"):
        await check_definition_tags(store, ["journey:gone"])


async def test_tags_already_held_are_not_checked_again(store: Store) -> None:
    # The agent was deleted since: a change that keeps its tag need not answer for it.
    held = ["agent:gone", "vip"]
    assert await check_definition_tags(store, held, held=held) == held
    with pytest.raises(NotFoundError, match="Tag 'new' was not found"):
        await check_definition_tags(store, [*held, "new"], held=held)


async def test_create_refuses_a_taken_id(store: Store) -> None:
    created = await create_tag(store, Tag(name="beta"))
    assert await store.get(Tag, created.id) == created
    with pytest.raises(ConflictError):
        await create_tag(store, Tag(id=created.id, name="other"))
    assert (await store.get(Tag, created.id)).name == "beta"


async def test_define_is_idempotent_by_key_or_id(store: Store) -> None:
    first = await define_tag(store, Tag(name="beta"), key=tag_name_key("beta"))
    again = await define_tag(store, Tag(name="beta"), key=tag_name_key("beta"))
    assert again.id == first.id
    assert [t.id for t in await store.list(Tag, name="beta")] == [first.id]
    renamed = await define_tag(store, Tag(id="vip", name="very important"), key=None)
    assert renamed.id == "vip"
    assert (await store.get(Tag, "vip")).name == "very important"


async def test_the_sdk_defines_tags_through_the_layer(server: tactful.Server) -> None:
    first = await server.create_tag("beta")
    assert (await server.create_tag("beta")).id == first.id
    assert await server.runtime.store.get_by_key(Tag, tag_name_key("beta")) == first


async def test_update_renames_and_keeps_the_id(store: Store) -> None:
    renamed = await update_tag(store, "vip", {"name": "gold"})
    assert (renamed.id, renamed.name) == ("vip", "gold")
    assert await store.get(Tag, "vip") == renamed
    with pytest.raises(NotFoundError, match="Tag 'nope' was not found"):
        await update_tag(store, "nope", {"name": "x"})
