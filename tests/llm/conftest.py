"""Fixtures for the model adapter tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from anthropic_wire import AnthropicWire, serve_anthropic_wire
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


@pytest.fixture(scope="session")
def _anthropic_wire_server() -> Iterator[AnthropicWire]:
    with serve_anthropic_wire() as wire:
        yield wire


@pytest.fixture
def anthropic_wire(_anthropic_wire_server: AnthropicWire) -> Iterator[AnthropicWire]:
    """A real local Anthropic Messages server (one per session), with a fresh script per test."""
    _anthropic_wire_server.reset()
    yield _anthropic_wire_server
    _anthropic_wire_server.reset()
