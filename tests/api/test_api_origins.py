"""CORS and the development mode's loopback Host check, through a real ASGI stack."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from tactful.api import create_app
from tactful.config import Settings
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import Runtime, start_runtime

PREFLIGHT = {
    "Origin": "http://widget.example:3000",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type,authorization",
}


async def test_development_mode_allows_any_origin(client: httpx.AsyncClient) -> None:
    preflight = await client.options("/sessions", headers=PREFLIGHT)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    plain = await client.get("/healthz", headers={"Origin": "http://widget.example:3000"})
    assert plain.headers["access-control-allow-origin"] == "*"


async def test_development_mode_refuses_hosts_that_are_not_loopback(
    client: httpx.AsyncClient,
) -> None:
    for host in ("localhost:8800", "127.0.0.1", "[::1]:8800"):
        assert (await client.get("/healthz", headers={"Host": host})).status_code == 200
    refused = await client.get("/healthz", headers={"Host": "rebound.evil.example"})
    assert refused.status_code == 421
    assert "loopback" in refused.json()["detail"]


@pytest_asyncio.fixture
async def production(request: object) -> AsyncIterator[Runtime]:
    settings = Settings(
        transient=True,
        mode="production",
        secret_key="x" * 32,
        cors_origins=["https://shop.example"],
    )
    rt = await start_runtime(settings, embedder=HashingEmbedder(), offline=True)
    try:
        yield rt
    finally:
        await rt.close()


async def test_production_allows_listed_origins_only(production: Runtime) -> None:
    app = create_app(production)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://tactful.example.com"
    ) as c:
        listed = await c.options(
            "/sessions", headers={**PREFLIGHT, "Origin": "https://shop.example"}
        )
        assert listed.status_code == 200
        assert listed.headers["access-control-allow-origin"] == "https://shop.example"
        other = await c.options("/sessions", headers=PREFLIGHT)
        assert "access-control-allow-origin" not in other.headers
        # Any Host name is served in production (it sits behind its own DNS and TLS).
        assert (await c.get("/healthz")).status_code == 200


# The preflights of Parlant's widget (parlant-chat-react 1.0.11), as Chromium sends them: its
# Fern client adds x-fern-* headers to every call, so even its GETs are preflighted.
FERN = "x-fern-language,x-fern-runtime,x-fern-runtime-version"
WIDGET_PREFLIGHTS = [
    ("/sessions", "POST", f"content-type,{FERN}"),
    ("/sessions/s1/events", "POST", f"content-type,{FERN}"),
    ("/sessions/s1/events", "GET", FERN),
    ("/sessions/s1", "GET", FERN),
]


async def _check_widget_preflights(c: httpx.AsyncClient, origin: str, allowed: str) -> None:
    for path, method, asked in WIDGET_PREFLIGHTS:
        preflight = await c.options(
            path,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": asked,
            },
        )
        assert preflight.status_code == 200, (path, method, preflight.text)
        assert preflight.headers["access-control-allow-origin"] == allowed
        assert method in preflight.headers["access-control-allow-methods"]
        granted = preflight.headers["access-control-allow-headers"].lower().split(",")
        assert set(asked.split(",")) <= {h.strip() for h in granted}, (path, method)


async def test_the_widgets_preflights_pass_in_development_mode(
    client: httpx.AsyncClient,
) -> None:
    await _check_widget_preflights(client, "http://localhost:3000", "*")


async def test_the_widgets_preflights_pass_from_a_listed_origin(production: Runtime) -> None:
    app = create_app(production)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://tactful.example.com"
    ) as c:
        await _check_widget_preflights(c, "https://shop.example", "https://shop.example")
