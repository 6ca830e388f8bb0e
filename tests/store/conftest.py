"""The ``store`` fixture: the same suite on every backend."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from backends import BACKENDS, drop_schema, open_backend

from tactful.store.sql import SQLStore


@pytest_asyncio.fixture(params=BACKENDS)
async def store(
    request: pytest.FixtureRequest, tmp_path: os.PathLike[str]
) -> AsyncIterator[SQLStore]:
    """The same suite on every backend."""
    s, schema = await open_backend(request.param, tmp_path)
    try:
        yield s
    finally:
        await s.close()
        if schema:
            await drop_schema(schema)
