"""Glossary terms (``definitions.glossary``): their tags name what is stored, for REST's
create, the SDK's idempotent define and every change."""

from __future__ import annotations

import pytest
import pytest_asyncio

import tactful
from tactful.definitions.glossary import check_term, create_term, define_term, update_term
from tactful.definitions.keys import term_key
from tactful.domain import Agent, Tag, Term
from tactful.errors import ConflictError, NotFoundError
from tactful.store.base import Store


@pytest_asyncio.fixture
async def store(server: tactful.Server) -> Store:
    s = server.runtime.store
    await s.create(Tag(id="vip", name="vip"))
    await s.create(Agent(id="shop", name="Shop"))
    return s


def _rma(**fields: object) -> Term:
    return Term.model_validate({"name": "RMA", "description": "A return number", **fields})


async def test_a_checked_term_keeps_each_tag_and_synonym_once(store: Store) -> None:
    checked = await check_term(
        store, _rma(tags=["agent:shop", "vip", "vip"], synonyms=["return id", "return id"])
    )
    assert (checked.tags, checked.synonyms) == (["agent:shop", "vip"], ["return id"])


async def test_create_refuses_unknown_tags_and_taken_ids(store: Store) -> None:
    with pytest.raises(NotFoundError, match="Agent 'ghost' was not found"):
        await create_term(store, _rma(tags=["agent:ghost"]))
    assert await store.list(Term) == []
    await create_term(store, _rma(id="rma"))
    with pytest.raises(ConflictError):
        await create_term(store, _rma(id="rma", description="Another"))
    assert (await store.get(Term, "rma")).description == "A return number"


async def test_define_is_idempotent_by_key_and_by_id(store: Store) -> None:
    first = await define_term(store, _rma(), key=term_key("shop", "RMA"))
    again = await define_term(store, _rma(description="Changed"), key=term_key("shop", "rma"))
    assert again.id == first.id
    assert [(t.id, t.description) for t in await store.list(Term)] == [(first.id, "Changed")]
    assert (await define_term(store, _rma(id=first.id, name="R.M.A."), key=None)).id == first.id
    with pytest.raises(NotFoundError, match="Tag 'ghost' was not found"):
        await define_term(store, _rma(tags=["ghost"]), key="other")
    assert [t.name for t in await store.list(Term)] == ["R.M.A."]


async def test_update_checks_the_tags_it_adds(store: Store) -> None:
    await store.create(_rma(id="rma", tags=["gone"]))
    updated = await update_term(store, "rma", {"synonyms": ["a", "a"]})
    assert (updated.tags, updated.synonyms) == (["gone"], ["a"])
    revision = await store.definitions_revision()
    with pytest.raises(NotFoundError, match="Tag 'ghost' was not found"):
        await update_term(store, "rma", {"tags": ["gone", "ghost"], "synonyms": []})
    assert await store.definitions_revision() == revision
    assert (await update_term(store, "rma", {"tags": ["vip"]})).tags == ["vip"]
    with pytest.raises(NotFoundError, match="Term 'nope' was not found"):
        await update_term(store, "nope", {"name": "x"})


async def test_the_sdk_defines_terms_through_the_layer(server: tactful.Server) -> None:
    agent = await server.create_agent("Shop", id="shop")
    first = await agent.create_term("RMA", "A return number")
    assert (await agent.create_term("rma", "A return number, again")).id == first.id
    assert await server.runtime.store.get_by_key(Term, term_key("shop", "RMA")) is not None
    with pytest.raises(NotFoundError, match="Tag 'ghost' was not found"):
        await agent.create_term("SKU", "A product number", tags=["ghost"])
    assert [t.name for t in await server.runtime.store.list(Term)] == ["rma"]
