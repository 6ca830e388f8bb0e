"""Storing relationships (``definitions.relationships.relate``): the ends must be stored, the
rules of ``domain.relationships.admit`` hold, the same ends answer the stored relationship,
and several targets are written all or none."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

import tactful
from tactful.definitions.relationships import relate
from tactful.domain import Endpoint, Guideline, Relationship, RelationshipKind, Tag, ToolSpec
from tactful.errors import NotFoundError, ValidationError
from tactful.llm.scripted import HashingEmbedder
from tactful.store.base import Store

PRIORITY = RelationshipKind.PRIORITY


@pytest_asyncio.fixture
async def store() -> AsyncIterator[Store]:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        store = s.runtime.store
        for gid in ("a", "b", "c"):
            await store.create(Guideline(id=gid, condition=f"condition {gid}"))
        await store.create(Tag(id="vip", name="vip"))
        await store.create(ToolSpec(id="orders:lookup", service_name="orders", name="lookup"))
        yield store


def _g(gid: str) -> Endpoint:
    return Endpoint.guideline(gid)


async def test_one_relationship_per_target_in_order_and_again_the_same(store: Store) -> None:
    made = await relate(store, PRIORITY, _g("a"), [_g("b"), Endpoint.tag("vip")])
    assert [(r.source, r.target) for r in made] == [
        (_g("a"), _g("b")),
        (_g("a"), Endpoint.tag("vip")),
    ]
    again = await relate(store, PRIORITY, _g("a"), [Endpoint.tag("vip"), _g("b")])
    assert [r.id for r in again] == [made[1].id, made[0].id]
    assert len(await store.list(Relationship)) == 2


async def test_an_unknown_end_writes_nothing(store: Store) -> None:
    with pytest.raises(NotFoundError, match="Guideline 'nope' was not found"):
        await relate(store, PRIORITY, _g("a"), [_g("b"), _g("nope")])
    with pytest.raises(NotFoundError, match="Tool 'orders:nope' was not found"):
        await relate(store, RelationshipKind.REEVALUATION, Endpoint.tool("orders:nope"), [_g("a")])
    assert await store.list(Relationship) == []


async def test_a_cycle_refuses_the_whole_batch(store: Store) -> None:
    await relate(store, RelationshipKind.ENTAILMENT, _g("a"), [_g("b")])
    with pytest.raises(ValidationError, match="must not form a cycle: b -> a -> b"):
        await relate(store, RelationshipKind.ENTAILMENT, _g("b"), [_g("c"), _g("a")])
    assert [(r.source.id, r.target.id) for r in await store.list(Relationship)] == [("a", "b")]


async def test_a_cycle_within_one_batch_is_found(store: Store) -> None:
    # The second target closes a cycle with the first, stored in the same call.
    await relate(store, RelationshipKind.DEPENDENCY, _g("b"), [_g("a")])
    with pytest.raises(ValidationError, match="cycle"):
        await relate(store, RelationshipKind.DEPENDENCY_ANY, _g("a"), [_g("c"), _g("b")])
    assert len(await store.list(Relationship)) == 1


async def test_tool_ends_only_where_the_kind_takes_them(store: Store) -> None:
    tool = Endpoint.tool("orders:lookup")
    with pytest.raises(ValidationError, match="its source is the tool 'orders:lookup'"):
        await relate(store, PRIORITY, tool, [_g("a")])
    [reevaluation] = await relate(store, RelationshipKind.REEVALUATION, tool, [_g("a")])
    assert (reevaluation.source, reevaluation.target) == (tool, _g("a"))


async def test_the_same_end_twice_is_refused(store: Store) -> None:
    with pytest.raises(ValidationError, match="needs two different ends"):
        await relate(store, RelationshipKind.DISAMBIGUATION, _g("a"), [_g("a")])
