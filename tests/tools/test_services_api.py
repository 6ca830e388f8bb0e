"""``/services``: an OpenAPI service added through the REST API, its tools used by a turn,
stored, reconnected after a restart, and clear errors when it cannot be reached; services reach
loopback only when ``outbound_hosts`` names it (the SSRF and port-scanner reproductions)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_service import Served, serve_openapi_service

import tactful
from tactful.api.app import create_app
from tactful.domain import ToolServiceConfig
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import GuidelineCheck, MatchAnswer, ProposedCall, listed_guidelines
from tactful.llm.scripted import HashingEmbedder, ScriptedCall, ScriptedGenerator
from tactful.runtime import Runtime, start_runtime


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve_openapi_service() as s:
        yield s


async def _runtime(tmp_path: Path, outbound_hosts: list[str] | None = None) -> Runtime:
    """A runtime on a file database; loopback services need ``outbound_hosts`` naming them."""
    settings = tactful.Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        outbound_hosts=outbound_hosts if outbound_hosts is not None else ["*"],
    )
    runtime = await start_runtime(settings, embedder=HashingEmbedder(), offline=True)
    if runtime.services_task is not None:  # only when services were stored earlier
        await runtime.services_task
    return runtime


def _client(runtime: Runtime) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(create_app(runtime)), base_url="http://localhost"
    )


async def test_an_openapi_service_is_added_listed_and_survives_a_restart(
    served: Served, tmp_path: Path
) -> None:
    runtime = await _runtime(tmp_path, ["127.0.0.1"])
    try:
        async with _client(runtime) as client:
            put = await client.put(
                "/services/orders",
                json={
                    "kind": "openapi",
                    "openapi": {"url": served.base_url, "source": served.spec_url},
                },
            )
            assert put.status_code == 200, put.text
            tools = {t["name"] for t in put.json()["tools"]}
            assert "get_order" in tools
            listed = (await client.get("/services")).json()
            assert listed == [
                {
                    "name": "orders",
                    "kind": "openapi",
                    "url": served.base_url,
                    "tools": None,
                    "read_only": False,
                }
            ]
        assert "orders:get_order" in runtime.engine.tools
    finally:
        await runtime.close()

    # The stored service is reconnected in the background.
    again = await _runtime(tmp_path, ["127.0.0.1"])
    try:
        assert "orders:get_order" in again.engine.tools
        async with _client(again) as client:
            one = (await client.get("/services/orders")).json()
            assert "get_order" in {t["name"] for t in one["tools"]}
            assert (await client.delete("/services/orders")).status_code == 204
            assert (await client.get("/services/orders")).status_code == 404
        assert "orders:get_order" not in again.engine.tools
        assert await again.store.list(ToolServiceConfig) == []
    finally:
        await again.close()


async def test_an_unreachable_or_unsupported_service_is_a_422_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    runtime = await _runtime(tmp_path, ["127.0.0.1"])
    try:
        async with _client(runtime) as client:
            down = await client.put(
                "/services/gone",
                json={
                    "kind": "openapi",
                    "openapi": {
                        "url": "http://127.0.0.1:9",
                        "source": "http://127.0.0.1:9/openapi.json",
                    },
                },
            )
            assert down.status_code == 422
            assert "cannot use service 'gone'" in down.json()["detail"][0]["msg"]
            sdk = await client.put("/services/x", json={"kind": "sdk", "sdk": {"url": "http://a"}})
            assert sdk.status_code == 422 and "not supported" in sdk.json()["detail"][0]["msg"]
            missing = await client.put("/services/x", json={"kind": "mcp"})
            assert missing.status_code == 422
            bad_url = await client.put(
                "/services/x", json={"kind": "mcp", "mcp": {"url": "ftp://x"}}
            )
            assert bad_url.status_code == 422 and "http(s)://" in bad_url.json()["detail"][0]["msg"]
        assert await runtime.store.list(ToolServiceConfig) == []
    finally:
        await runtime.close()


# -- outbound requests (docs/security.md) -------------------------------------------------------

RESET = "the customer wants to start over"


def _resetting_model() -> ScriptedGenerator:
    """A model for which the reset guideline applies and proposes the ``reset`` operation."""

    def match(call: ScriptedCall) -> MatchAnswer:
        checks = [
            GuidelineCheck(
                guideline=g.number,
                condition_restated=g.condition,
                evidence="they asked to start over",
                applies=g.condition == RESET,
                tool_calls=[ProposedCall(tool="reset")] if g.condition == RESET else [],
            )
            for g in listed_guidelines(call.prompt.user)
            if g.detailed
        ]
        return MatchAnswer(checks=checks)

    return ScriptedGenerator({"match": match, "compose": lambda _: ReplyAnswer(message="All set.")})


def _server(tmp_path: Path, outbound_hosts: list[str]) -> tactful.Server:
    settings = tactful.Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        outbound_hosts=outbound_hosts,
    )
    return tactful.Server(
        settings=settings, embedder=HashingEmbedder(), generator=_resetting_model()
    )


def _openapi(served: Served) -> dict[str, Any]:
    return {"kind": "openapi", "openapi": {"url": served.base_url, "source": served.spec_url}}


def _said(response: httpx.Response) -> str:
    """Every string in an error body, whatever its shape (a string or a list of details)."""

    def strings(node: Any) -> Iterator[str]:
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for item in node:
                yield from strings(item)

    return " ".join(strings(response.json()))


def _port(url: str) -> int:
    port = httpx.URL(url).port
    assert port is not None
    return port


async def _customer_asks_to_start_over(server: tactful.Server) -> None:
    agent = await server.create_agent("Support")
    await agent.create_guideline(RESET, "reset the back office", tools=["internal:reset"])
    session = await server.create_session(agent)
    await server.send(session, "please reset everything and start over")


async def test_an_openapi_service_on_loopback_is_refused_and_never_called(tmp_path: Path) -> None:
    # The reproduction: an OpenAPI service with a loopback URL, one guideline, one
    # customer message made the server POST /admin/reset to an internal address.
    with serve_openapi_service() as internal:
        async with _server(tmp_path, ["*"]) as server:
            async with _client(server.runtime) as client:
                put = await client.put("/services/internal", json=_openapi(internal))
            assert put.status_code == 422
            port = _port(internal.base_url)
            said = _said(put)
            assert f"tool service 'internal': {internal.spec_url} may not be reached" in said
            assert "127.0.0.1 is a loopback address" in said
            assert f'add "127.0.0.1:{port}" (this port) or "127.0.0.1"' in said
            assert "to outbound_hosts (TACTFUL_OUTBOUND_HOSTS)" in said
            assert await server.runtime.store.list(ToolServiceConfig) == []
            await _customer_asks_to_start_over(server)
        assert internal.state.requests == []
        assert internal.state.resets == 0


async def test_a_service_outbound_hosts_names_is_used_and_refused_once_it_no_longer_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with serve_openapi_service() as internal:
        allowed = f"127.0.0.1:{_port(internal.base_url)}"
        async with _server(tmp_path, [allowed]) as server:
            async with _client(server.runtime) as client:
                put = await client.put("/services/internal", json=_openapi(internal))
            assert put.status_code == 200, put.text
            await _customer_asks_to_start_over(server)
        assert internal.state.resets == 1  # the scenario does reach the service when allowed
        seen = len(internal.state.requests)

        # Restarted with the default setting: the stored service is refused when it would
        # reconnect, and a turn whose guideline names its tool sends nothing.
        with caplog.at_level(logging.WARNING, logger="tactful.tools"):
            async with _server(tmp_path, ["*"]) as server:
                assert server.runtime.services_task is not None
                await server.runtime.services_task
                assert "internal:reset" not in server.runtime.engine.tools
                await _customer_asks_to_start_over(server)
        assert internal.state.resets == 1
        assert len(internal.state.requests) == seen
        assert "tool service 'internal' is not available" in caplog.text
        assert "127.0.0.1 is a loopback address" in caplog.text


async def test_an_mcp_url_is_not_a_port_scanner(tmp_path: Path) -> None:
    # Registering tried to connect to any host:port, and the error told whether something
    # listened there. Now an open and a closed loopback port get the same refusal, and the
    # open one sees no connection.
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(8)
    listening.setblocking(False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    runtime = await _runtime(tmp_path)
    answers = {}
    try:
        async with _client(runtime) as client:
            for port in (listening.getsockname()[1], closed):
                url = f"http://127.0.0.1:{port}/mcp"
                put = await client.put("/services/scan", json={"kind": "mcp", "mcp": {"url": url}})
                answers[port] = (put.status_code, _said(put).replace(str(port), "N"))
        first, second = answers.values()
        assert first == second
        assert first[0] == 422
        assert (
            "tool service 'scan': http://127.0.0.1:N/mcp may not be reached: 127.0.0.1 is a"
            in (first[1])
        )
        with pytest.raises(BlockingIOError):
            listening.accept()  # nothing connected
        assert await runtime.store.list(ToolServiceConfig) == []
    finally:
        listening.close()
        await runtime.close()


async def test_rest_registers_mcp_over_http_only(tmp_path: Path) -> None:
    # An MCP service over stdio is a command run on the server: REST has no way to ask for one.
    runtime = await _runtime(tmp_path)
    try:
        async with _client(runtime) as client:
            for mcp in (
                {"url": "stdio:python -m evil"},
                {"url": "http://a.example/mcp", "command": "python"},
            ):
                put = await client.put("/services/x", json={"kind": "mcp", "mcp": mcp})
                assert put.status_code == 422, put.text
        assert await runtime.store.list(ToolServiceConfig) == []
    finally:
        await runtime.close()
