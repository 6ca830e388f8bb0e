"""A transient server for the definitions layer's tests, and a store holding what definitions
commonly name: the tag ``vip``, the agent ``shop`` and the journey ``returns``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

import tactful
from tactful.domain import Agent, Journey, Tag
from tactful.llm.scripted import HashingEmbedder
from tactful.store.base import Store


@pytest_asyncio.fixture
async def server() -> AsyncIterator[tactful.Server]:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        yield s


@pytest_asyncio.fixture
async def named(server: tactful.Server) -> Store:
    """The server's store with the tag ``vip``, the agent ``shop`` and the journey ``returns``."""
    s = server.runtime.store
    await s.create(Tag(id="vip", name="vip"))
    await s.create(Agent(id="shop", name="Shop"))
    await s.create(Journey(id="returns", title="Return an item"))
    return s
