"""The Voltmart example as a definitions document: exported from a server that ran its Python
``define``, applied to an empty server that has only its code (``attach``), the plan against
the source is empty and a conversation goes the same way on both: the same replies, the same
guidelines selected, journey steps, tools and templates."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest
import pytest_asyncio
from voltmart_example import load_example

import tactful
from tactful.definitions.apply import apply_document, holdings, plan_document
from tactful.definitions.document import collect, from_document, to_document
from tactful.domain import EventKind

CONVERSATION = (
    "Where is my order VM10234567?",
    "I want to return my headphones",
    "sure, it's VM10234567",
    "they're too small",
    "thank you so much!",
)


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load_example("voltmart_roundtrip_example")


@pytest_asyncio.fixture
async def servers(
    example: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[tactful.Server, tactful.Server]]:
    monkeypatch.delenv(example.orders.DB_ENV, raising=False)
    async with (
        tactful.Server(transient=True, offline=True) as source,
        tactful.Server(transient=True, offline=True) as copy,
    ):
        await example.define(source)
        await example.attach(copy)
        yield source, copy


async def _export(server: tactful.Server, agent_id: str) -> dict[str, Any]:
    found = collect(await holdings(server.runtime.store), agent_id)
    assert found is not None
    return to_document(found)


async def _run(server: tactful.Server, agent_id: str) -> list[dict[str, Any]]:
    """Each turn: the reply (RMA numbers aside: they are random) and the trace's decisions."""
    customer = await server.create_customer("Dana", id="vm-roundtrip-dana")
    session = await server.create_session(agent_id, customer)
    turns = []
    for message in CONVERSATION:
        reply = await server.send(session, message)
        trace = await server.runtime.store.get(tactful.Trace, reply.trace_id)
        turns.append(
            {
                "reply": re.sub(r"RMA-\d+", "RMA-…", reply.data["message"]),
                "guidelines": sorted(trace.final_guideline_ids),
                "journeys": [(j.journey_id, j.kind, j.state_after) for j in trace.journeys],
                "templates": trace.composition.canned_response_ids,
            }
        )
    events = await server.runtime.store.list_events(session.id, kinds=[EventKind.TOOL])
    turns.append({"tools": [c["tool_id"] for e in events for c in e.data["tool_calls"]]})
    return turns


@pytest.mark.embedder
async def test_export_apply_plan_and_converse_the_same(
    example: ModuleType, servers: tuple[tactful.Server, tactful.Server]
) -> None:
    source, copy = servers
    document = await _export(source, example.AGENT_ID)
    assert len(document["guidelines"]) > 40 and len(document["journeys"]) == 2

    wanted = from_document(document, example.AGENT_ID)
    runtime = copy.runtime
    applied = await apply_document(runtime.store, runtime.engine.tools, wanted, summary="copy")
    assert applied.revision is not None
    assert await _export(copy, example.AGENT_ID) == document
    for server in (source, copy):
        shown = await plan_document(server.runtime.store, server.runtime.engine.tools, wanted)
        assert shown.empty, shown.changes

    expected = await _run(source, example.AGENT_ID)
    assert any(turn.get("journeys") for turn in expected)  # the conversation uses a journey
    assert await _run(copy, example.AGENT_ID) == expected
