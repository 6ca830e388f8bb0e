"""``/services``: an OpenAPI service added through the REST API, its tools used by a turn,
stored, reconnected after a restart, and clear errors when it cannot be reached."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openapi_service import Served, serve_openapi_service

import tactful
from tactful.api.app import create_app
from tactful.domain import ToolServiceConfig
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import Runtime, start_runtime


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve_openapi_service() as s:
        yield s


async def _runtime(tmp_path: Path) -> Runtime:
    settings = tactful.Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    runtime = await start_runtime(settings, embedder=HashingEmbedder(), offline=True)
    assert runtime.services_task is not None
    await runtime.services_task
    return runtime


def _client(runtime: Runtime) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(create_app(runtime)), base_url="http://localhost"
    )


async def test_an_openapi_service_is_added_listed_and_survives_a_restart(
    served: Served, tmp_path: Path
) -> None:
    runtime = await _runtime(tmp_path)
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
                {"name": "orders", "kind": "openapi", "url": served.base_url, "tools": None}
            ]
        assert "orders:get_order" in runtime.engine.tools
    finally:
        await runtime.close()

    again = await _runtime(tmp_path)  # the stored service is reconnected in the background
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
    runtime = await _runtime(tmp_path)
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
