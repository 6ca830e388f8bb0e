"""Definitions as documents: export, plan, apply (with pruning), history and rollback, on a
server defined through the SDK."""

from __future__ import annotations

from typing import Any

import pytest

import tactful
from tactful.definitions.apply import apply_document, holdings, plan_document
from tactful.definitions.document import collect, from_document, to_document
from tactful.definitions.plan import ChangeAction, Plan
from tactful.definitions.revisions import history, rollback
from tactful.domain import Guideline, Journey, Relationship
from tactful.errors import ValidationError
from tactful.llm.scripted import HashingEmbedder


async def _define(server: tactful.Server) -> tactful.Agent:
    agent = await server.create_agent("Shop", "Support", id="shop")
    refund = await agent.create_guideline(
        "the customer wants a refund", "explain refunds", id="refund"
    )
    angry = await agent.create_guideline("the customer is angry", "apologise first", id="angry")
    await agent.prioritize(angry, over=refund)
    await agent.create_canned_response("Refunds take {{days}} days.", id="refund-days")
    await agent.create_term("RMA", "A return authorisation number.")
    journey = await agent.create_journey(
        "Return an item", conditions=["the customer wants to return an item"], id="returns"
    )
    ask = await journey.initial_state.transition_to(chat_state="Ask for the order number")
    await ask.target.transition_to(end=True, condition="the customer gave it")
    return agent


async def _document(server: tactful.Server, agent_id: str = "shop") -> dict[str, Any]:
    found = collect(await holdings(server.runtime.store), agent_id)
    assert found is not None
    return to_document(found)


async def _plan(server: tactful.Server, document: dict[str, Any]) -> Plan:
    runtime = server.runtime
    wanted = from_document(document, document["agent"]["id"])
    return await plan_document(runtime.store, runtime.engine.tools, wanted)


async def _apply(server: tactful.Server, document: dict[str, Any]) -> Plan:
    runtime = server.runtime
    wanted = from_document(document, document["agent"]["id"])
    return (await apply_document(runtime.store, runtime.engine.tools, wanted, summary="t")).plan


async def test_export_then_apply_on_an_empty_server_gives_the_same_state(
    server: tactful.Server,
) -> None:
    await _define(server)
    document = await _document(server)
    assert "creation_utc" not in str(document)
    assert all("agent:shop" not in g.get("tags", []) for g in document["guidelines"])
    assert await _plan(server, document) == Plan(agent_id="shop", agent_name="Shop")

    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as other:
        applied = await _apply(other, document)
        assert applied.count(ChangeAction.CREATE) > 5
        assert applied.count(ChangeAction.DELETE) == 0
        assert await _document(other) == document
        assert (await _plan(other, document)).empty


async def test_a_guideline_left_out_of_the_document_is_pruned_with_its_relationships(
    server: tactful.Server,
) -> None:
    await _define(server)
    document = await _document(server)
    document["guidelines"] = [g for g in document["guidelines"] if g["id"] != "angry"]
    document["relationships"] = []
    shown = await _plan(server, document)
    deletions = {(c.kind, c.id) for c in shown.changes if c.action is ChangeAction.DELETE}
    assert ("guideline", "angry") in deletions
    assert any(kind == "relationship" for kind, _ in deletions)

    await _apply(server, document)
    store = server.runtime.store
    assert await store.find(Guideline, "angry") is None
    assert await store.list(Relationship) == []
    assert await store.find(Guideline, "refund") is not None


async def test_a_hand_written_document_without_ids_applies_idempotently(
    server: tactful.Server,
) -> None:
    document = {
        "agent": {"id": "desk", "name": "Help desk"},
        "guidelines": [
            {"condition": "the customer says hello", "action": "greet them"},
            {"condition": "the customer is a business", "action": None},
        ],
        "canned_responses": [{"value": "Hello! How can I help?"}],
        "journeys": [
            {
                "title": "Reset a password",
                "conditions": ["the customer forgot their password"],
                "states": [{"id": "start"}, {"id": "ask", "action": "Ask for the email"}],
                "transitions": [{"source": "start", "target": "ask"}],
            }
        ],
    }
    first = await _apply(server, document)
    assert first.count(ChangeAction.CREATE) == 6  # agent, 3 guidelines, 1 canned, 1 journey
    assert (await _plan(server, document)).empty
    journey = (await server.runtime.store.list(Journey))[0]
    observation = await server.runtime.store.get(Guideline, journey.conditions[0])
    assert observation.condition == "the customer forgot their password"
    assert observation.tags == ["agent:desk"]


async def test_every_problem_of_a_document_is_listed_and_nothing_is_written(
    server: tactful.Server,
) -> None:
    document = {
        "agent": {"id": "desk", "name": "Help desk"},
        "guidelines": [
            {"condition": "c", "action": "a", "tools": ["nowhere:nothing"]},
            {"condition": "d", "action": "b", "canned_responses": ["missing"]},
            {"action": "no condition"},
        ],
        "canned_responses": [{"value": "{% if %}"}],
    }
    with pytest.raises(ValidationError) as raised:
        from_document(document, "desk")
    assert [p for p in raised.value.problems if "condition" in p]
    document["guidelines"].pop()
    with pytest.raises(ValidationError) as raised:
        await _apply(server, document)
    problems = raised.value.problems
    assert any("nowhere:nothing" in p for p in problems)
    assert any("'missing' does not exist" in p for p in problems)
    assert any("invalid template" in p for p in problems)
    assert await server.runtime.store.list(Guideline) == []


async def test_rollback_restores_a_deleted_guideline_and_a_changed_journey_graph(
    server: tactful.Server,
) -> None:
    await _define(server)
    store = server.runtime.store
    before = await _document(server)
    [mark] = await history(store, agent_id="shop", limit=1)

    changed = await _document(server)
    changed["guidelines"] = [g for g in changed["guidelines"] if g["id"] != "angry"]
    changed["relationships"] = []
    [returns] = changed["journeys"]
    returns["states"] = returns["states"][:2]
    returns["transitions"] = returns["transitions"][:1]
    await _apply(server, changed)
    assert await store.find(Guideline, "angry") is None
    assert len((await store.get(Journey, "returns")).states) == 2

    applied = await rollback(store, server.runtime.engine.tools, revision=mark.id, agent_id="shop")
    assert applied.revision is not None and applied.revision > mark.id
    assert await store.find(Guideline, "angry") is not None
    assert len((await store.get(Journey, "returns")).states) == 3
    assert await _document(server) == before
    [latest, *_] = await history(store, agent_id="shop")
    assert latest.id == applied.revision
    assert "rollback" in latest.summary
    assert latest.agents == ["shop"]


async def test_labels_of_guidelines_and_journeys_go_through_documents(
    server: tactful.Server,
) -> None:
    agent = await server.create_agent("Shop", "Support", id="shop")
    await agent.create_guideline("the customer wants a refund", "explain", labels=["refund"])
    await agent.create_journey(
        "Return an item", conditions=["the customer returns"], id="returns", labels=["returns"]
    )
    document = await _document(server)
    [labelled] = [g for g in document["guidelines"] if g.get("labels")]
    assert labelled["labels"] == ["refund"]
    assert [j["labels"] for j in document["journeys"]] == [["returns"]]
    labelled["labels"] = ["refund", "money"]
    document["journeys"][0]["labels"] = []
    await _apply(server, document)
    stored = await server.runtime.store.list(Guideline)
    assert [g.labels for g in stored if g.labels] == [["refund", "money"]]
    assert (await server.runtime.store.get(Journey, "returns")).labels == []
