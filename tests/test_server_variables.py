"""The SDK's context variables: idempotent definitions, tool-backed ones, cron validation, values
per scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import pytest
import pytest_asyncio

import tactful
from tactful.domain import ContextVariable, ContextVariableValue, ToolSpec
from tactful.engine.context import load_context
from tactful.engine.variables import resolve_values
from tactful.errors import NotFoundError, ValidationError
from tactful.llm.scripted import HashingEmbedder


@tactful.tool
async def loyalty_points(
    context: tactful.ToolContext,
    customer_id: Annotated[str, tactful.ToolParam(hidden=True)],
) -> dict[str, object]:
    """The customer's loyalty points."""
    return {"customer": customer_id, "points": 1200}


@pytest_asyncio.fixture
async def server() -> AsyncIterator[tactful.Server]:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        yield s


async def test_create_variable_is_idempotent_by_name_or_id(tmp_path: Path) -> None:
    async with tactful.Server(data_dir=tmp_path, embedder=HashingEmbedder(), offline=True) as s:
        agent = await s.create_agent("Shop")
        first = await agent.create_variable("plan", "The customer's plan")
        again = await agent.create_variable("plan", "The customer's subscription plan")
        assert again.id == first.id and again.description == "The customer's subscription plan"
        assert first.tags == [agent.tag]
        fixed = await agent.create_variable("tier", id="var-tier")
        assert (await agent.create_variable("tier", "changed", id="var-tier")).id == "var-tier"
        assert [v.name for v in await agent.variables()] == ["plan", "tier"]
        assert fixed.id == "var-tier"
    # Across a restart: nothing duplicated.
    async with tactful.Server(data_dir=tmp_path, embedder=HashingEmbedder(), offline=True) as s:
        agent = await s.create_agent("Shop")
        assert (await agent.create_variable("plan")).id == first.id
        assert len(await s.entities(ContextVariable)) == 2
        # Another agent's variable of the same name is its own.
        other = await s.create_agent("Bank")
        assert (await other.create_variable("plan")).id != first.id


async def test_a_tool_backed_variable_registers_its_tool(server: tactful.Server) -> None:
    agent = await server.create_agent("Shop")
    variable = await agent.create_variable(
        "loyalty points", tool=loyalty_points, freshness_rules="0 * * * *"
    )
    assert variable.tool_id == "local:loyalty_points"
    assert variable.freshness_rules == "0 * * * *"
    assert "local:loyalty_points" in server.runtime.engine.tools
    assert await server.runtime.store.find(ToolSpec, "local:loyalty_points") is not None
    by_id = await agent.create_variable("balance", tool="bank:balance")
    assert by_id.tool_id == "bank:balance"

    # The engine refreshes it for the session's customer, hidden argument filled from context.
    ada = await server.create_customer("Ada")
    session = await server.create_session(agent, ada)
    ctx = await load_context(server.runtime.store, session.id)
    values = await resolve_values(server.runtime.store, ctx, registry=server.runtime.engine.tools)
    points = next(v for v in values if v.name == "loyalty points")
    assert points.refreshed and points.value == {"customer": ada.id, "points": 1200}
    assert await agent.variable_value(variable, customer=ada) == points.value


async def test_a_bad_cron_expression_is_refused(server: tactful.Server) -> None:
    agent = await server.create_agent("Shop")
    with pytest.raises(ValidationError, match="invalid freshness rule 'every hour'"):
        await agent.create_variable("points", tool=loyalty_points, freshness_rules="every hour")
    with pytest.raises(ValidationError, match="Bad hour"):
        await agent.create_variable("points", freshness_rules="0 25 * * *")
    assert await agent.variables() == []


async def test_values_per_customer_tag_and_global(server: tactful.Server) -> None:
    agent = await server.create_agent("Shop")
    vip = await server.create_tag("vip")
    ada = await server.create_customer("Ada", tags=[vip.id])
    bob = await server.create_customer("Bob", tags=[vip.id])
    cy = await server.create_customer("Cy")
    plan = await agent.create_variable("plan")

    assert await agent.variable_value(plan, customer=ada) is None
    await agent.set_variable_value(plan, "free")
    await agent.set_variable_value(plan, "gold", tag=vip)
    stored = await agent.set_variable_value(plan.id, "platinum", customer=ada.id)
    assert isinstance(stored, ContextVariableValue) and stored.key == ada.id

    assert await agent.variable_value(plan, customer=ada) == "platinum"
    assert await agent.variable_value(plan, customer=bob.id) == "gold"
    assert await agent.variable_value(plan, customer=cy) == "free"
    assert await agent.variable_value(plan, tag=vip.id) == "gold"
    assert await agent.variable_value(plan) == "free"
    assert await agent.variable_value(plan, customer="guest") == "free"

    # Setting again replaces the value of that scope.
    again = await agent.set_variable_value(plan, "diamond", customer=ada)
    assert again.id == stored.id
    assert await agent.variable_value(plan, customer=ada) == "diamond"
    assert len(await server.entities(ContextVariableValue)) == 3

    with pytest.raises(ValidationError, match="not both"):
        await agent.set_variable_value(plan, "x", customer=ada, tag=vip)
    with pytest.raises(NotFoundError):
        await agent.set_variable_value(plan, "x", customer="nobody")
    with pytest.raises(NotFoundError):
        await agent.set_variable_value(plan, "x", tag="no-such-tag")
    with pytest.raises(NotFoundError):
        await agent.set_variable_value("no-such-variable", "x")
