"""Pruning after an agent file's ``define``: what left the file leaves the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

import tactful
from tactful.agent import Pruned
from tactful.agent_files import DefinitionError, load_agent_file
from tactful.api import create_app
from tactful.domain import CannedResponse, Guideline, Journey, Relationship, Term
from tactful.llm.scripted import HashingEmbedder

HEAD = """
async def define(server):
    agent = await server.create_agent("Voltmart Support")
"""
GREET = """
    greet = await agent.create_guideline("the customer says hello", "greet them back")
"""
REFUND = """
    refund = await agent.create_guideline("the customer asks for a refund", "explain the policy")
"""
PRIORITY = """
    await agent.prioritize(refund, over=greet)
"""
JOURNEY = """
    journey = await agent.create_journey(
        "Return an item", conditions=["the customer wants to return an item"]
    )
    await journey.initial_state.transition_to(chat_state="Ask for the order ID")
"""
EXTRAS = """
    await agent.create_term("SKU", "a stock keeping unit")
    await agent.create_canned_response("Hello!")
"""
TAIL = """
    return agent
"""


def write(path: Path, *parts: str) -> Path:
    path.write_text(HEAD + "".join(parts) + TAIL)
    return path


@pytest.fixture
async def server() -> AsyncIterator[tactful.Server]:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        yield s


async def load(server: tactful.Server, path: Path) -> list[tuple[str, Pruned]]:
    heard: list[tuple[str, Pruned]] = []
    await load_agent_file(server, path, lambda a, p: heard.append((a.name, p)))
    return heard


def actions(guidelines: list[Guideline]) -> dict[str | None, str]:
    return {g.action: g.id for g in guidelines}


async def test_a_removed_guideline_leaves_with_its_relationship(
    server: tactful.Server, tmp_path: Path
) -> None:
    path = write(tmp_path / "agent.py", GREET, REFUND, PRIORITY)
    assert await load(server, path) == []
    before = actions(await server.entities(Guideline))
    assert set(before) == {"greet them back", "explain the policy"}
    assert len(await server.entities(Relationship)) == 1

    heard = await load(server, write(path, GREET))

    assert actions(await server.entities(Guideline)) == {
        "greet them back": before["greet them back"]
    }
    assert await server.entities(Relationship) == []
    [(name, pruned)] = heard
    assert name == "Voltmart Support"
    assert pruned.guidelines == [before["explain the policy"]]
    assert pruned.summary() == "1 guideline, 1 relationship"


async def test_a_removed_relationship_line_removes_only_the_relationship(
    server: tactful.Server, tmp_path: Path
) -> None:
    path = write(tmp_path / "agent.py", GREET, REFUND, PRIORITY)
    await load(server, path)
    before = actions(await server.entities(Guideline))
    [relationship] = await server.entities(Relationship)

    [(_, pruned)] = await load(server, write(path, GREET, REFUND))

    assert actions(await server.entities(Guideline)) == before
    assert await server.entities(Relationship) == []
    assert pruned.relationships == [relationship.id]
    assert pruned.summary() == "1 relationship"


async def test_a_removed_journey_leaves_with_its_condition_observation(
    server: tactful.Server, tmp_path: Path
) -> None:
    path = write(tmp_path / "agent.py", GREET, JOURNEY)
    await load(server, path)
    [journey] = await server.entities(Journey)
    [observation] = [g for g in await server.entities(Guideline) if g.action is None]
    assert journey.conditions == [observation.id]

    [(_, pruned)] = await load(server, write(path, GREET))

    assert await server.entities(Journey) == []
    assert actions(await server.entities(Guideline)).keys() == {"greet them back"}
    assert pruned.journeys == [journey.id]
    assert pruned.observations == [observation.id]


async def test_unchanged_file_prunes_nothing(server: tactful.Server, tmp_path: Path) -> None:
    path = write(tmp_path / "agent.py", GREET, REFUND, PRIORITY, JOURNEY, EXTRAS)
    await load(server, path)
    kinds = (Guideline, Relationship, Journey, Term, CannedResponse)
    before = {k: await server.entities(k) for k in kinds}

    assert await load(server, path) == []

    assert {k: await server.entities(k) for k in kinds} == before
    assert all(before.values())


async def test_terms_and_canned_responses_removed_from_the_file_are_pruned(
    server: tactful.Server, tmp_path: Path
) -> None:
    path = write(tmp_path / "agent.py", GREET, EXTRAS)
    await load(server, path)

    [(_, pruned)] = await load(server, write(path, GREET))

    assert await server.entities(Term) == []
    assert await server.entities(CannedResponse) == []
    assert pruned.summary() == "1 canned response, 1 term"


async def test_a_definition_made_through_rest_for_the_agent_is_pruned(
    server: tactful.Server, tmp_path: Path
) -> None:
    path = write(tmp_path / "agent.py", GREET)
    [agent] = await load_agent_file(server, path)
    transport = httpx.ASGITransport(create_app(server.runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        made = await client.post(
            "/guidelines",
            json={"condition": "the customer is angry", "action": "apologise", "tags": [agent.tag]},
        )
        assert made.status_code == 201, made.text
        other = await client.post(
            "/guidelines", json={"condition": "the customer is lost", "action": "help"}
        )
        assert other.status_code == 201, other.text

    [(_, pruned)] = await load(server, path)

    # The file manages the agent: what it does not define for the agent goes; an untagged
    # guideline belongs to no agent and stays.
    assert pruned.guidelines == [made.json()["id"]]
    assert set(actions(await server.entities(Guideline))) == {"greet them back", "help"}


async def test_a_failed_define_prunes_nothing(server: tactful.Server, tmp_path: Path) -> None:
    path = write(tmp_path / "agent.py", GREET, REFUND)
    await load(server, path)
    path.write_text(HEAD + GREET + "    raise RuntimeError('half way')\n")

    with pytest.raises(DefinitionError, match="half way"):
        await load(server, path)

    assert len(await server.entities(Guideline)) == 2


async def test_a_handle_that_defined_nothing_prunes_nothing(server: tactful.Server) -> None:
    agent = await server.create_agent("Voltmart Support")
    await agent.create_guideline("the customer says hello", "greet them back")
    fresh = await server.find_agent(id=agent.id)
    assert fresh is not None

    assert not await fresh.prune()
    assert len(await server.entities(Guideline)) == 1


async def test_another_agents_definitions_are_kept(server: tactful.Server) -> None:
    shop = await server.create_agent("Shop")
    greet = await shop.create_guideline("the customer says hello", "greet them back")
    support = await server.create_agent("Support")
    refund = await support.create_guideline("the customer asks for a refund", "explain")
    await support.prioritize(refund, over=greet)
    again = await server.find_agent(id=support.id)
    assert again is not None
    await again.create_term("SKU", "a stock keeping unit")

    pruned = await again.prune()

    # The relationship names another agent's guideline: not this agent's alone to drop, but
    # its own end (refund) is pruned, so it goes with it.
    assert pruned.guidelines == [refund.id]
    assert len(pruned.relationships) == 1
    assert [g.id for g in await server.entities(Guideline)] == [greet.id]


async def test_a_relationship_with_another_agents_guideline_is_not_this_agents_to_drop(
    server: tactful.Server,
) -> None:
    shop = await server.create_agent("Shop")
    greet = await shop.create_guideline("the customer says hello", "greet them back")
    support = await server.create_agent("Support")
    refund = await support.create_guideline("the customer asks for a refund", "explain")
    relationship = await support.prioritize(refund, over=greet)
    again = await server.find_agent(id=support.id)
    assert again is not None
    await again.create_guideline("the customer asks for a refund", "explain")

    assert not await again.prune()
    assert [r.id for r in await server.entities(Relationship)] == [relationship.id]


YAML = """
agent:
  name: Help desk
guidelines:
- id: greet
  condition: the customer says hello
  action: greet them back
- id: refund
  condition: the customer asks for a refund
  action: explain the policy
relationships:
- kind: priority
  source: {kind: guideline, id: refund}
  target: {kind: guideline, id: greet}
"""


async def test_a_definitions_file_is_served_and_pruned_like_a_python_one(
    server: tactful.Server, tmp_path: Path
) -> None:
    path = tmp_path / "desk.yaml"
    path.write_text(YAML)
    assert await load(server, path) == []
    store = server.runtime.store
    assert {g.id for g in await store.list(Guideline)} == {"greet", "refund"}
    assert len(await store.list(Relationship)) == 1

    # The greeting leaves the file, with the relationship naming it.
    path.write_text(
        "agent:\n  name: Help desk\nguidelines:\n- id: refund\n"
        "  condition: the customer asks for a refund\n  action: explain the policy\n"
    )
    [(name, pruned)] = await load(server, path)
    assert name == "Help desk"
    assert pruned.guidelines == ["greet"] and len(pruned.relationships) == 1
    assert {g.id for g in await store.list(Guideline)} == {"refund"}
    assert await store.list(Relationship) == []


async def test_a_definitions_file_runs_the_attach_of_its_code(
    server: tactful.Server, tmp_path: Path
) -> None:
    (tmp_path / "tools.py").write_text(
        "import tactful\n\n"
        "@tactful.tool(service='desk')\n"
        "async def lookup(ctx, order_id: str) -> str:\n"
        "    '''Look an order up.'''\n"
        "    return order_id\n\n"
        "async def attach(server):\n"
        "    await server.register_tools([lookup])\n"
    )
    (tmp_path / "desk.yaml").write_text(
        "code: [tools.py]\nagent:\n  name: Help desk\nguidelines:\n"
        "- condition: the customer asks about an order\n  action: look it up\n"
        "  tools: ['desk:lookup']\n"
    )
    await load(server, tmp_path / "desk.yaml")
    [guideline] = await server.runtime.store.list(Guideline)
    assert guideline.tools == ["desk:lookup"]

    (tmp_path / "desk.yaml").write_text(
        "agent:\n  name: Other\nguidelines:\n- condition: c\n  action: a\n  tools: ['nowhere:x']\n"
    )
    with pytest.raises(DefinitionError, match="'nowhere:x' is not registered"):
        await load(server, tmp_path / "desk.yaml")
