"""The SDK: persistent, idempotent definitions; restart does not duplicate or re-embed."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

import tactful
from tactful.domain import CannedResponse, Guideline, Term
from tactful.llm.scripted import HashingEmbedder
from tactful.server import port_unavailable


async def _define(server: tactful.Server) -> tactful.Agent:
    agent = await server.create_agent("Voltmart", "Electronics support")
    reply = await agent.create_canned_response("Returns are free within 30 days.", id="cr-returns")
    await agent.create_guideline(
        "the customer wants to return an item",
        "explain the return policy",
        canned_responses=[reply],
        priority=2,
        criticality=tactful.Criticality.HIGH,
    )
    await agent.create_observation("the customer has given an order number", id="obs-order-number")
    await agent.create_term(
        "Voltmart Protect", "An extended warranty plan", synonyms=["protect plan"]
    )
    return agent


async def _counts(server: tactful.Server) -> tuple[int, int, int, int]:
    store = server.runtime.store
    return (
        len(await store.list(tactful.domain.Agent)),
        len(await store.list(Guideline)),
        len(await store.list(CannedResponse)),
        len(await store.list(Term)),
    )


async def test_definitions_persist_and_are_idempotent_across_restarts(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    async with tactful.Server(data_dir=tmp_path, embedder=embedder, offline=True) as server:
        first = await _define(server)
        await _define(server)
        assert await _counts(server) == (1, 2, 1, 1)
        session = await server.create_session(first)
        await server.send(session, "I want to return my speaker")
    condition_embeds = sum(len(c) for c in embedder.calls)

    async with tactful.Server(data_dir=tmp_path, embedder=embedder, offline=True) as server:
        again = await _define(server)
        assert again.id == first.id
        assert await _counts(server) == (1, 2, 1, 1)
        guideline = next(g for g in await again.guidelines() if g.action)
        assert guideline.priority == 2 and guideline.criticality is tactful.Criticality.HIGH
        observation = await server.runtime.store.get(Guideline, "obs-order-number")
        assert observation.is_observation
        # Conditions were embedded before the restart: only the new message is embedded now.
        before = len(embedder.calls)
        session = await server.create_session(again)
        await server.send(session, "I want to return my speaker")
        new_texts = [t for call in embedder.calls[before:] for t in call]
        assert "the customer wants to return an item" not in new_texts
    assert condition_embeds > 0


async def test_changed_definition_updates_in_place(tmp_path: Path) -> None:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as server:
        agent = await server.create_agent("A")
        g1 = await agent.create_guideline("the customer is angry", "apologize", id="calm")
        g2 = await agent.create_guideline("the customer is upset", "apologize sincerely", id="calm")
        assert g1.id == g2.id == "calm"
        stored = await server.runtime.store.get(Guideline, "calm")
        assert stored.condition == "the customer is upset"
        assert len(await agent.guidelines()) == 1


async def test_sdk_rejects_bad_definitions_with_clear_errors() -> None:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as server:
        agent = await server.create_agent("A")
        with pytest.raises(tactful.ValidationError, match="invalid canned response template"):
            await agent.create_canned_response("Hello {{ name")
        with pytest.raises(tactful.ValidationError, match="is not a tool"):
            await agent.create_guideline("c", "a", tools=[42])
        with pytest.raises(tactful.NotFoundError):
            await server.create_session("no-such-agent")


async def test_server_requires_start() -> None:
    server = tactful.Server(transient=True)
    with pytest.raises(RuntimeError, match="not started"):
        await server.create_agent("A")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_start_http_serves_the_api_on_loopback() -> None:
    port = _free_port()
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), offline=True, port=port
    ) as server:
        await server.create_agent("Loopback")
        await server.start_http()
        async with httpx.AsyncClient(base_url=server.url) as client:
            health = await client.get("/healthz")
            agents = await client.get("/agents")
        assert health.json()["tier"] == "offline"
        assert [a["name"] for a in agents.json()] == ["Loopback"]


async def test_served_connections_send_without_waiting_for_acks() -> None:
    # Without TCP_NODELAY, a response written in two pieces (headers, body) waited ~40 ms for
    # the client's delayed ACK: every request to `tactful serve` took 40 ms more.
    port = _free_port()
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), offline=True, port=port
    ) as server:
        await server.start_http()
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/healthz")).status_code == 200
            http = server._http
            assert http is not None
            [connection] = list(http.server_state.connections)
            sock = connection.transport.get_extra_info("socket")  # type: ignore[attr-defined]
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_start_http_on_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with tactful.Server(
            transient=True, embedder=HashingEmbedder(), offline=True, port=port
        ) as server:
            with pytest.raises(tactful.ConfigurationError, match=f"port {port} .* already in use"):
                await server.start_http()
            # The server still works without HTTP.
            assert (await server.create_agent("Still here")).name == "Still here"


def test_an_address_that_cannot_be_listened_on_is_one_clear_error() -> None:
    taken = port_unavailable("127.0.0.1", 8800, OSError(errno.EADDRINUSE, "Address in use"))
    assert str(taken) == (
        "port 8800 on 127.0.0.1 is already in use: stop the other server or choose another port"
    )
    refused = port_unavailable("10.9.9.9", 80, OSError(errno.EACCES, "Permission denied"))
    assert str(refused) == "cannot listen on 10.9.9.9:80: Permission denied"


async def test_sdk_sets_the_always_marker_and_the_always_check_override() -> None:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as server:
        agent = await server.create_agent("A")
        g = await agent.create_guideline("in every reply", "be warm", always=True)
        h = await agent.create_guideline("the customer is upset", "apologize", always_check=False)
        assert (g.always, g.always_check) == (True, None)
        assert (h.always, h.always_check) == (False, False)


class _Recording(HashingEmbedder):
    """Hashed words, remembering every text it was asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    async def embed(self, texts: Sequence[str]) -> Any:
        self.texts.extend(texts)
        return await super().embed(texts)


async def test_served_agents_are_prepared_before_their_first_turn() -> None:
    """On a fresh data folder, the first turn embedded every condition and view of the agent's
    guidelines while its customer waited (a second with MiniLM for the Voltmart example):
    serving prepares them ahead, and the first turn embeds only the conversation."""
    embedder = _Recording()
    async with tactful.Server(
        transient=True, embedder=embedder, offline=True, port=_free_port()
    ) as server:
        agent = await server.create_agent("Ahead")
        await agent.create_guideline("The customer asks for a refund", "Explain the refund policy")
        await agent.create_guideline("The customer asks about shipping costs", "Quote the rates")
        await agent.create_term("VoltPoints", "Loyalty points, 100 per euro spent")
        await agent.create_canned_response("Our rates start at 4.99.")
        await agent.create_capability(
            "Lend a phone", "A loan phone while yours is repaired", signals=["my phone broke"]
        )
        await server.start_http()
        engine = server.runtime.engine
        for _ in range(500):
            if not engine._warming:
                break
            await asyncio.sleep(0.01)
        assert not engine._warming
        assert "The customer asks for a refund" in embedder.texts
        assert "VoltPoints: Loyalty points, 100 per euro spent" in embedder.texts
        assert "Our rates start at 4.99." in embedder.texts
        assert "Lend a phone: A loan phone while yours is repaired" in embedder.texts
        assert "my phone broke" in embedder.texts
        prepared = len(embedder.texts)
        await server.send(await server.create_session(agent), "hello there")
        during = embedder.texts[prepared:]
        assert "The customer asks for a refund" not in during
        assert "The customer asks about shipping costs" not in during
        assert "hello there" in during
        assert not any("VoltPoints" in t or "4.99" in t or "phone" in t for t in during)


async def test_an_agent_that_cannot_be_prepared_is_left_to_its_first_turn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), offline=True, port=_free_port()
    ) as server:
        agent = await server.create_agent("Later")
        engine = server.runtime.engine
        with caplog.at_level(logging.WARNING, logger="tactful.engine"):
            engine.prepare_agents_later(["no-such-agent", agent.id])
            await asyncio.gather(*engine._warming)
        assert "agent no-such-agent not prepared ahead: NotFoundError" in caplog.text
        reply = await server.send(await server.create_session(agent), "hi")
        assert reply.kind.value == "message"
