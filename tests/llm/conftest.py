"""Fixtures for the model adapter tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai_wire import OpenAIWire, serve_openai_wire


@pytest.fixture(scope="session")
def _openai_wire_server() -> Iterator[OpenAIWire]:
    with serve_openai_wire() as wire:
        yield wire


@pytest.fixture
def openai_wire(_openai_wire_server: OpenAIWire) -> Iterator[OpenAIWire]:
    """A real local OpenAI-compatible server (one per session), with a fresh script per test."""
    _openai_wire_server.reset()
    yield _openai_wire_server
    _openai_wire_server.reset()
