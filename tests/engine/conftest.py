"""Fixtures shared by the engine tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

import tactful
from tactful.llm.scripted import HashingEmbedder, ScriptedGenerator
from tactful.store.base import Store
from tactful.store.sql import open_store


@pytest_asyncio.fixture
async def server(model: Any) -> AsyncIterator[tactful.Server]:
    """A transient server with the hashing embedder, answering with the test module's ``model``
    fixture: a ``ScriptedGenerator``, or a helper that holds one as ``.generator``."""
    generator = model if isinstance(model, ScriptedGenerator) else model.generator
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), generator=generator) as s:
        yield s


@pytest_asyncio.fixture
async def store() -> AsyncIterator[Store]:
    """An empty store in memory (SQLite), closed after the test."""
    s = await open_store("sqlite+aiosqlite:///:memory:")
    yield s
    await s.close()
