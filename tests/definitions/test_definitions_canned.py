"""Canned responses (``definitions.canned``): the template compiles and the tags name what is
stored, for REST's create, the SDK's idempotent define and every change."""

from __future__ import annotations

import pytest
import pytest_asyncio

import tactful
from tactful.definitions.canned import (
    check_canned_response,
    create_canned_response,
    define_canned_response,
    update_canned_response,
)
from tactful.definitions.keys import canned_response_key
from tactful.domain import CannedResponse
from tactful.errors import ConflictError, NotFoundError, ValidationError
from tactful.store.base import Store

BROKEN = "Your order {{ order_id ships tomorrow"


@pytest_asyncio.fixture
async def store(named: Store) -> Store:
    return named


async def test_a_checked_response_keeps_each_tag_signal_and_dependency_once(store: Store) -> None:
    checked = await check_canned_response(
        store,
        CannedResponse(
            value="Hello {{name}}",
            tags=["agent:shop", "journey:returns", "agent:shop"],
            signals=["hi", "hi", "hello"],
            field_dependencies=["name", "name"],
        ),
    )
    assert checked.tags == ["agent:shop", "journey:returns"]
    assert checked.signals == ["hi", "hello"]
    assert checked.field_dependencies == ["name"]


async def test_the_template_is_checked_before_the_tags(store: Store) -> None:
    with pytest.raises(ValidationError, match="invalid canned response template: line 1: "):
        await create_canned_response(store, CannedResponse(value=BROKEN, tags=["ghost"]))
    with pytest.raises(NotFoundError, match="Tag 'ghost' was not found"):
        await create_canned_response(store, CannedResponse(value="Hi", tags=["ghost"]))
    assert await store.list(CannedResponse) == []


async def test_create_refuses_a_taken_id(store: Store) -> None:
    await create_canned_response(store, CannedResponse(id="hi", value="Hi"))
    with pytest.raises(ConflictError):
        await create_canned_response(store, CannedResponse(id="hi", value="Hello"))
    assert (await store.get(CannedResponse, "hi")).value == "Hi"


async def test_define_is_idempotent_by_key_and_by_id(store: Store) -> None:
    key = canned_response_key("shop", [], "Hi")
    first = await define_canned_response(store, CannedResponse(value="Hi"), key=key)
    again = await define_canned_response(store, CannedResponse(value="Hi", signals=["x"]), key=key)
    assert again.id == first.id
    assert [(c.id, c.signals) for c in await store.list(CannedResponse)] == [(first.id, ["x"])]
    by_id = CannedResponse(id=first.id, value="Hello")
    assert (await define_canned_response(store, by_id, key=None)).id == first.id
    assert (await store.get(CannedResponse, first.id)).value == "Hello"
    with pytest.raises(ValidationError):
        await define_canned_response(store, CannedResponse(value=BROKEN), key="other")
    with pytest.raises(NotFoundError, match="Agent 'ghost' was not found"):
        await define_canned_response(
            store, CannedResponse(value="Bye", tags=["agent:ghost"]), key="other"
        )
    assert len(await store.list(CannedResponse)) == 1


async def test_update_checks_what_it_changes(store: Store) -> None:
    # Stored before templates were checked, and before its tag was deleted.
    await store.create(CannedResponse(id="old", value=BROKEN, tags=["gone"]))
    updated = await update_canned_response(store, "old", {"signals": ["a", "a"]})
    assert (updated.value, updated.tags, updated.signals) == (BROKEN, ["gone"], ["a"])

    revision = await store.definitions_revision()
    with pytest.raises(ValidationError):
        await update_canned_response(store, "old", {"value": "{{ still broken"})
    with pytest.raises(NotFoundError, match="Tag 'ghost' was not found"):
        await update_canned_response(store, "old", {"tags": ["gone", "ghost"], "signals": []})
    assert await store.definitions_revision() == revision

    fixed = await update_canned_response(store, "old", {"value": "Fixed", "tags": ["vip"]})
    assert (fixed.value, fixed.tags) == ("Fixed", ["vip"])
    with pytest.raises(NotFoundError, match="CannedResponse 'nope' was not found"):
        await update_canned_response(store, "nope", {"value": "x"})


async def test_the_sdk_defines_canned_responses_through_the_layer(server: tactful.Server) -> None:
    store = server.runtime.store
    agent = await server.create_agent("Shop", id="shop")
    shared = await server.create_canned_response("Hi")
    assert (await server.create_canned_response("Hi")).id == shared.id
    assert await store.get_by_key(CannedResponse, canned_response_key("", [], "Hi")) == shared
    mine = await agent.create_canned_response("Hi")
    assert mine.id != shared.id
    assert mine.tags == [agent.tag]
    with pytest.raises(NotFoundError, match="Tag 'ghost' was not found"):
        await agent.create_canned_response("Bye", tags=["ghost"])
    assert len(await store.list(CannedResponse)) == 2
