"""Guidelines and observations (``definitions.guidelines``): one rule for what they name, for
REST's create, the SDK's idempotent define and every change."""

from __future__ import annotations

import pytest
import pytest_asyncio

import tactful
from tactful.definitions.guidelines import (
    check_guideline,
    create_guideline,
    define_guideline,
    mark_always,
    update_guideline,
)
from tactful.definitions.keys import guideline_key
from tactful.domain import CannedResponse, Guideline, ToolSpec
from tactful.errors import ConflictError, NotFoundError
from tactful.store.base import Store


@pytest_asyncio.fixture
async def store(named: Store) -> Store:
    s = named
    await s.create(CannedResponse(id="hello", value="Hello!"))
    await s.create(ToolSpec(id="orders:lookup", service_name="orders", name="lookup"))
    return s


def _rule(**fields: object) -> Guideline:
    return Guideline.model_validate({"condition": "the customer is angry", **fields})


async def test_what_a_guideline_names_must_be_stored_and_is_kept_once(store: Store) -> None:
    checked = await check_guideline(
        store,
        _rule(
            tags=["agent:shop", "vip", "journey:returns", "vip"],
            canned_responses=["hello", "hello"],
            tools=["orders:lookup", "orders:lookup"],
            labels=["a", "b", "a"],
        ),
    )
    assert checked.tags == ["agent:shop", "vip", "journey:returns"]
    assert checked.canned_responses == ["hello"]
    assert checked.tools == ["orders:lookup"]
    assert checked.labels == ["a", "b"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tags": ["agent:ghost"]}, "Agent 'ghost' was not found"),
        ({"tags": ["ghost"]}, "Tag 'ghost' was not found"),
        ({"tags": ["journey:ghost"]}, "Journey 'ghost' was not found"),
        ({"canned_responses": ["ghost"]}, "CannedResponse 'ghost' was not found"),
        ({"tools": ["orders:ghost"]}, "Tool 'orders:ghost' was not found"),
        # Tags are checked first, then canned responses, then tools.
        ({"tags": ["ghost"], "canned_responses": ["nope"]}, "Tag 'ghost' was not found"),
        ({"canned_responses": ["nope"], "tools": ["x:y"]}, "CannedResponse 'nope' was not found"),
    ],
)
async def test_create_refuses_unknown_references_and_writes_nothing(
    store: Store, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(NotFoundError) as missing:
        await create_guideline(store, _rule(**fields))
    assert str(missing.value) == message
    assert await store.list(Guideline) == []


async def test_create_refuses_a_taken_id(store: Store) -> None:
    await create_guideline(store, _rule(id="angry", action="apologise"))
    with pytest.raises(ConflictError):
        await create_guideline(store, _rule(id="angry", action="escalate"))
    assert (await store.get(Guideline, "angry")).action == "apologise"


async def test_define_is_idempotent_by_key_and_by_id(store: Store) -> None:
    key = guideline_key("shop", ["agent:shop"], "the customer is angry", "apologise")
    first = await define_guideline(store, _rule(action="apologise", priority=1), key=key)
    again = await define_guideline(store, _rule(action="apologise", priority=2), key=key)
    assert again.id == first.id
    assert [(g.id, g.priority) for g in await store.list(Guideline)] == [(first.id, 2)]
    by_id = await define_guideline(store, _rule(id=first.id, action="calm them"), key=None)
    assert by_id.id == first.id
    assert (await store.get(Guideline, first.id)).action == "calm them"


async def test_define_checks_tags_and_canned_responses_but_not_tools(store: Store) -> None:
    # A program may name the tool of a service that connects later.
    defined = await define_guideline(store, _rule(tools=["crm:search"]), key="k")
    assert defined.tools == ["crm:search"]
    with pytest.raises(NotFoundError, match="Tag 'ghost' was not found"):
        await define_guideline(store, _rule(tags=["ghost"]), key="other")
    with pytest.raises(NotFoundError, match="CannedResponse 'ghost' was not found"):
        await define_guideline(store, _rule(canned_responses=["ghost"]), key="other")
    assert [g.id for g in await store.list(Guideline)] == [defined.id]


async def test_update_checks_what_it_adds_not_what_was_held(store: Store) -> None:
    # Stored before its agent, canned response and tool went: it still holds them.
    held = {"tags": ["agent:gone"], "canned_responses": ["gone"], "tools": ["gone:tool"]}
    await store.create(_rule(id="angry", **held))
    updated = await update_guideline(store, "angry", {"priority": 3})
    assert (updated.priority, updated.tags, updated.tools) == (3, ["agent:gone"], ["gone:tool"])
    added = await update_guideline(
        store,
        "angry",
        {"tags": ["agent:gone", "vip"], "canned_responses": ["gone", "hello"]},
    )
    assert (added.tags, added.canned_responses) == (["agent:gone", "vip"], ["gone", "hello"])

    revision = await store.definitions_revision()
    for changes, message in [
        ({"tags": ["ghost"], "priority": 9}, "Tag 'ghost' was not found"),
        ({"canned_responses": ["ghost"], "priority": 9}, "CannedResponse 'ghost' was not found"),
        ({"tools": ["orders:ghost"], "priority": 9}, "Tool 'orders:ghost' was not found"),
    ]:
        with pytest.raises(NotFoundError) as missing:
            await update_guideline(store, "angry", changes)
        assert str(missing.value) == message
    assert await store.definitions_revision() == revision
    assert (await store.get(Guideline, "angry")).priority == 3
    with pytest.raises(NotFoundError, match="Guideline 'nope' was not found"):
        await update_guideline(store, "nope", {"priority": 1})


async def test_mark_always_writes_only_once(store: Store) -> None:
    await store.create(_rule(id="angry"))
    assert (await mark_always(store, "angry")).always
    revision = await store.definitions_revision()
    assert (await mark_always(store, "angry")).always
    assert await store.definitions_revision() == revision


async def test_the_sdk_checks_a_guidelines_tags(server: tactful.Server) -> None:
    agent = await server.create_agent("Shop", id="shop")
    with pytest.raises(NotFoundError, match="Tag 'billing' was not found"):
        await agent.create_guideline("the customer wants an invoice", "send it", tags=["billing"])
    with pytest.raises(NotFoundError, match="CannedResponse 'ghost' was not found"):
        await agent.create_guideline("the customer is angry", "calm", canned_responses=["ghost"])
    assert await server.runtime.store.list(Guideline) == []

    billing = await server.create_tag("billing")
    journey = await agent.create_journey("Return an item")
    scoped = await journey.create_guideline("the box is open", "ask for a photo", tags=[billing.id])
    assert scoped.tags == [agent.tag, journey.tag, billing.id]
    assert (await agent.match_always(scoped)).always
