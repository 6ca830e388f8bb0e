"""A relationship's ends must name something stored (``definitions.ends.check_end``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tactful.config import Settings
from tactful.definitions.ends import check_end
from tactful.domain import Agent, Endpoint, Guideline, Journey, Tag, ToolSpec, journey_tag
from tactful.errors import NotFoundError
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import Runtime, start_runtime
from tactful.store.base import Store


@pytest_asyncio.fixture
async def runtime() -> AsyncIterator[Runtime]:
    rt = await start_runtime(Settings(transient=True), embedder=HashingEmbedder(), offline=True)
    try:
        yield rt
    finally:
        await rt.close()


async def _stored(store: Store) -> list[Endpoint]:
    await store.create(Guideline(id="g", condition="the customer is angry"))
    await store.create(Tag(id="billing", name="billing"))
    await store.create(Agent(id="support", name="Support"))
    await store.create(Journey(id="returns", title="Return an item"))
    await store.create(ToolSpec(id="orders:lookup", service_name="orders", name="lookup"))
    return [
        Endpoint.guideline("g"),
        Endpoint.tag("billing"),
        Endpoint.tag("agent:support"),
        Endpoint.tag(journey_tag("returns")),
        Endpoint.tool("orders:lookup"),
    ]


async def test_ends_naming_what_is_stored_pass(runtime: Runtime) -> None:
    for end in await _stored(runtime.store):
        await check_end(runtime.store, end)


@pytest.mark.parametrize(
    ("end", "message"),
    [
        (Endpoint.guideline("nope"), "Guideline 'nope' was not found"),
        (Endpoint.tag("nope"), "Tag 'nope' was not found"),
        (Endpoint.tag("agent:nope"), "Agent 'nope' was not found"),
        (Endpoint.tag(journey_tag("nope")), "Journey 'nope' was not found"),
        (Endpoint.tool("orders:nope"), "Tool 'orders:nope' was not found"),
        (Endpoint.tool("nope:lookup"), "Tool 'nope:lookup' was not found"),
    ],
)
async def test_ends_naming_nothing_stored_are_not_found(
    runtime: Runtime, end: Endpoint, message: str
) -> None:
    await _stored(runtime.store)
    with pytest.raises(NotFoundError) as missing:
        await check_end(runtime.store, end)
    assert str(missing.value) == message
