"""Capabilities (``definitions.capabilities``): tags that name what is stored, the SDK's
idempotent define by title, pruning, and capabilities in definition documents."""

from __future__ import annotations

from typing import Any

import pytest

import tactful
from tactful.definitions.apply import apply_document, holdings, plan_document
from tactful.definitions.capabilities import (
    check_capability,
    create_capability,
    define_capability,
    update_capability,
)
from tactful.definitions.document import collect, derived_id, from_document, to_document
from tactful.definitions.keys import capability_key
from tactful.definitions.plan import Change, ChangeAction
from tactful.domain import Capability
from tactful.errors import ConflictError, NotFoundError, ValidationError
from tactful.llm.scripted import HashingEmbedder
from tactful.store.base import Store


def _phone(**fields: object) -> Capability:
    return Capability.model_validate(
        {"title": "Lend a phone", "description": "A loan phone while yours is repaired", **fields}
    )


async def test_a_checked_capability_keeps_each_tag_and_signal_once(named: Store) -> None:
    checked = await check_capability(
        named, _phone(tags=["agent:shop", "vip", "vip"], signals=[" it broke", "it broke", " "])
    )
    assert (checked.tags, checked.signals) == (["agent:shop", "vip"], ["it broke"])


async def test_create_refuses_unknown_tags_and_taken_ids(named: Store) -> None:
    with pytest.raises(NotFoundError, match="Agent 'ghost' was not found"):
        await create_capability(named, _phone(tags=["agent:ghost"]))
    assert await named.list(Capability) == []
    await create_capability(named, _phone(id="phone", tags=["journey:returns"]))
    with pytest.raises(ConflictError):
        await create_capability(named, _phone(id="phone", description="Another"))
    assert (await named.get(Capability, "phone")).description.startswith("A loan phone")


async def test_update_checks_the_tags_it_adds(named: Store) -> None:
    await named.create(_phone(id="phone", tags=["gone"]))
    updated = await update_capability(named, "phone", {"signals": ["a", "a"]})
    assert (updated.tags, updated.signals) == (["gone"], ["a"])
    revision = await named.definitions_revision()
    with pytest.raises(NotFoundError, match="Tag 'ghost' was not found"):
        await update_capability(named, "phone", {"tags": ["gone", "ghost"]})
    assert await named.definitions_revision() == revision
    with pytest.raises(NotFoundError, match="Capability 'nope' was not found"):
        await update_capability(named, "nope", {"title": "x"})


async def test_define_is_idempotent_by_key(named: Store) -> None:
    first = await define_capability(named, _phone(), key=capability_key("shop", "Lend a phone"))
    again = await define_capability(
        named, _phone(description="Changed"), key=capability_key("shop", " lend a PHONE ")
    )
    assert again.id == first.id
    assert [(c.id, c.description) for c in await named.list(Capability)] == [(first.id, "Changed")]
    # Another agent's capability of the same title is another one.
    other = await define_capability(named, _phone(), key=capability_key("desk", "Lend a phone"))
    assert other.id != first.id


async def test_the_sdk_defines_capabilities_through_the_layer(server: tactful.Server) -> None:
    agent = await server.create_agent("Shop", id="shop")
    first = await agent.create_capability(
        "Lend a phone", "A loan phone", signals=["my phone broke"]
    )
    assert first.tags == ["agent:shop"]
    again = await agent.create_capability("lend a phone", "A loan phone for two weeks")
    assert again.id == first.id and again.signals == []
    assert await server.runtime.store.get_by_key(Capability, capability_key("shop", "Lend a phone"))
    with pytest.raises(NotFoundError, match="Tag 'ghost' was not found"):
        await agent.create_capability("Reset a password", "Send a link", tags=["ghost"])
    by_id = await agent.create_capability("Wrap a gift", "With a card", id="gift")
    assert by_id.id == "gift"
    other = await server.create_agent("Other")
    await other.create_capability("Lend a phone", "Another agent's")
    assert [c.id for c in await agent.capabilities()] == [first.id, "gift"]
    assert [c.description for c in await agent.capabilities()] == [
        "A loan phone for two weeks",
        "With a card",
    ]


async def test_capabilities_left_out_of_the_definitions_are_pruned(
    server: tactful.Server,
) -> None:
    agent = await server.create_agent("Shop", id="shop")
    await agent.create_capability("Lend a phone", "A loan phone")
    await agent.create_capability("Wrap a gift", "With a card")
    await agent.create_capability("Reset a password", "Send a link")
    again = await server.create_agent("Shop", id="shop")
    kept = await again.create_capability("Lend a phone", "A loan phone")
    pruned = await again.prune()
    assert pruned.summary() == "2 capabilities"
    assert [c.id for c in await server.runtime.store.list(Capability)] == [kept.id]


# -- definition documents ---------------------------------------------------------------------


async def _document(server: tactful.Server) -> dict[str, Any]:
    found = collect(await holdings(server.runtime.store), "shop")
    assert found is not None
    return to_document(found)


async def test_capabilities_go_through_export_and_apply(server: tactful.Server) -> None:
    agent = await server.create_agent("Shop", id="shop")
    await agent.create_capability("Lend a phone", "A loan phone", signals=["my phone broke"])
    document = await _document(server)
    [entry] = document["capabilities"]
    assert entry["title"] == "Lend a phone" and entry["signals"] == ["my phone broke"]
    assert "tags" not in entry  # the agent's tag is implied
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as other:
        runtime = other.runtime
        wanted = from_document(document, "shop")
        applied = await apply_document(runtime.store, runtime.engine.tools, wanted, summary="t")
        assert (
            Change(
                action=ChangeAction.CREATE, kind="capability", id=entry["id"], label="Lend a phone"
            )
            in applied.plan.changes
        )
        assert await _document(other) == document
        [stored] = await runtime.store.list(Capability)
        assert stored.tags == ["agent:shop"]


async def test_a_hand_written_capability_gets_the_id_of_its_title(server: tactful.Server) -> None:
    runtime = server.runtime
    document: dict[str, Any] = {
        "agent": {"id": "shop", "name": "Shop"},
        "capabilities": [{"title": "Lend a phone", "description": "A loan phone"}],
    }
    wanted = from_document(document, "shop")
    await apply_document(runtime.store, runtime.engine.tools, wanted, summary="t")
    [stored] = await runtime.store.list(Capability)
    assert stored.id == derived_id("capability", capability_key("shop", "Lend a phone"))
    assert (await plan_document(runtime.store, runtime.engine.tools, wanted)).empty
    # Changed, then left out: updated, then deleted.
    document["capabilities"][0]["signals"] = ["my phone broke"]
    changed = await plan_document(
        runtime.store, runtime.engine.tools, from_document(document, "shop")
    )
    [update] = changed.changes
    assert (update.action, update.fields) == (ChangeAction.UPDATE, ["signals"])
    document["capabilities"] = []
    gone = await apply_document(
        runtime.store, runtime.engine.tools, from_document(document, "shop"), summary="t"
    )
    assert [c.action for c in gone.plan.changes] == [ChangeAction.DELETE]
    assert await runtime.store.list(Capability) == []


async def test_a_document_capability_with_problems_is_refused(server: tactful.Server) -> None:
    runtime = server.runtime
    with pytest.raises(ValidationError, match=r"capabilities\[0\]\.description: Field required"):
        from_document({"agent": {"name": "Shop"}, "capabilities": [{"title": "x"}]}, "shop")
    wanted = from_document(
        {
            "agent": {"name": "Shop"},
            "capabilities": [{"title": "x", "description": "y", "tags": ["ghost"]}],
        },
        "shop",
    )
    with pytest.raises(ValidationError, match="tag 'ghost' does not exist"):
        await apply_document(runtime.store, runtime.engine.tools, wanted, summary="t")
    assert await runtime.store.list(Capability) == []
