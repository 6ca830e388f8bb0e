"""OpenAI's moderation endpoint through the official SDK, against the local OpenAI-wire server:
the adapter alone, then a server that moderates with it (``moderation_provider=openai``)."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator

import pytest
from openai_wire import Fail, Moderated, OpenAIWire

import tactful
from tactful.config import Settings
from tactful.domain import ModerationAction, Trace
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import MatchAnswer
from tactful.engine.options import MODERATION_REFUSAL
from tactful.errors import ConfigurationError
from tactful.llm.scripted import HashingEmbedder, ScriptedGenerator
from tactful.moderation.base import NOT_FLAGGED, ModerationFailed
from tactful.moderation.openai import OpenAIModerator
from tactful.tools.outbound import OutboundPolicy

LOOPBACK = OutboundPolicy(["127.0.0.1"])


@pytest.fixture
async def moderator(openai_wire: OpenAIWire) -> AsyncIterator[OpenAIModerator]:
    checker = OpenAIModerator(
        base_url=openai_wire.base_url, api_key="sk-test", timeout_s=2, outbound=LOOPBACK
    )
    yield checker
    await checker.aclose()


async def test_flagged_categories_become_tags_with_their_scores(
    openai_wire: OpenAIWire, moderator: OpenAIModerator
) -> None:
    openai_wire.moderate(
        Moderated({"harassment/threatening": 0.91, "self-harm/intent": 0.72, "harassment": 0.88})
    )

    check = await moderator.check("some message")

    assert check.flagged and check.tags == ("harassment", "self-harm")
    assert check.reason == (
        "harassment (0.88); harassment/threatening (0.91); self-harm/intent (0.72)"
    )
    [sent] = openai_wire.moderation_requests
    assert sent == {"model": "omni-moderation-latest", "input": "some message"}
    [request] = [r for r in openai_wire.requests if r.path == "/v1/moderations"]
    assert request.headers["authorization"] == "Bearer sk-test"
    assert moderator.name == "openai:omni-moderation-latest"


async def test_an_unflagged_message(openai_wire: OpenAIWire, moderator: OpenAIModerator) -> None:
    openai_wire.moderate(Moderated())

    assert await moderator.check("where is my order?") == NOT_FLAGGED


@pytest.mark.parametrize(
    ("fail", "said"),
    [
        (Fail(401, "bad key"), "answered HTTP 401 (check the API key)"),
        (Fail(503), "answered HTTP 503"),
    ],
)
async def test_provider_errors_fail_the_check(
    openai_wire: OpenAIWire, moderator: OpenAIModerator, fail: Fail, said: str
) -> None:
    openai_wire.moderate(fail)

    with pytest.raises(ModerationFailed, match=re.escape(said)):
        await moderator.check("hello")


async def test_a_slow_provider_times_out(openai_wire: OpenAIWire) -> None:
    openai_wire.moderate(Moderated(delay_s=2))
    checker = OpenAIModerator(base_url=openai_wire.base_url, timeout_s=0.2, outbound=LOOPBACK)
    try:
        with pytest.raises(ModerationFailed, match="timed out"):
            await checker.check("hello")
    finally:
        await checker.aclose()


async def test_an_unreachable_provider_fails_the_check() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    checker = OpenAIModerator(base_url=f"http://127.0.0.1:{port}/v1", outbound=LOOPBACK)
    try:
        with pytest.raises(ModerationFailed, match="could not connect"):
            await checker.check("hello")
    finally:
        await checker.aclose()


async def test_it_connects_only_where_outbound_hosts_allow(openai_wire: OpenAIWire) -> None:
    # The default ("*") reaches public addresses only: the loopback server is refused.
    checker = OpenAIModerator(base_url=openai_wire.base_url, api_key="sk-test")
    try:
        with pytest.raises(ModerationFailed, match="outbound_hosts refused the connection"):
            await checker.check("hello")
    finally:
        await checker.aclose()
    assert openai_wire.moderation_requests == []


def test_it_needs_a_key_or_a_base_url() -> None:
    with pytest.raises(ConfigurationError, match="TACTFUL_MODERATION_API_KEY"):
        OpenAIModerator()


# -- a server moderating with it ---------------------------------------------------------------


def _server(wire: OpenAIWire, model: ScriptedGenerator) -> tactful.Server:
    settings = Settings(
        moderation_provider="openai",
        moderation_base_url=wire.base_url,
        moderation_api_key="sk-test",
        outbound_hosts=["127.0.0.1"],
    )
    return tactful.Server(
        transient=True, embedder=HashingEmbedder(), generator=model, settings=settings
    )


def _model() -> ScriptedGenerator:
    return ScriptedGenerator(
        {
            "match": lambda c: MatchAnswer(checks=[]),
            "compose": lambda c: ReplyAnswer(message="Happy to help."),
        }
    )


async def test_a_server_refuses_what_openai_flags(openai_wire: OpenAIWire) -> None:
    model = _model()
    openai_wire.moderate(Moderated({"hate": 0.97}))
    async with _server(openai_wire, model) as server:
        agent = await server.create_agent("Support")
        session = await server.create_session(agent)

        reply = await server.send(session, "something hateful", moderation="auto")

        assert reply.data["message"] == MODERATION_REFUSAL
        assert model.calls == []
        [trace] = await server.runtime.store.list(Trace, session_id=session.id)
    assert trace.moderation is not None
    assert trace.moderation.checked_by == ["openai:omni-moderation-latest"]
    assert trace.moderation.tags == ["hate"] and trace.moderation.reason == "hate (0.97)"
    assert trace.moderation.action is ModerationAction.REFUSE
    assert [r["input"] for r in openai_wire.moderation_requests] == ["something hateful"]


async def test_a_failing_provider_lets_the_turn_go_on(openai_wire: OpenAIWire) -> None:
    model = _model()
    openai_wire.moderate(Fail(503))
    async with _server(openai_wire, model) as server:
        agent = await server.create_agent("Support")
        session = await server.create_session(agent)

        reply = await server.send(session, "hello there", moderation="auto")

        assert reply.data["message"] == "Happy to help."
        [trace] = await server.runtime.store.list(Trace, session_id=session.id)
    assert trace.moderation is not None and trace.moderation.flagged is False
    error = "openai:omni-moderation-latest: the moderation provider answered HTTP 503"
    assert trace.moderation.error == error
    assert trace.degraded == [f"moderation: {error}; the message went on as far as checked"]
