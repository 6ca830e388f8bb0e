"""The web app at ``/`` (``tactful.api.web``): its page, its routes and assets, and the page
that says how to build it. A stand-in build in a temporary folder, so that these tests need
neither node nor a real build."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tactful.api import web

INDEX = '<!doctype html><html><body><div id="root"></div></body></html>'


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A build of the web app: index.html and one hashed asset."""
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(INDEX)
    (dist / "assets" / "index-abc123.js").write_text("console.log('app')")
    (tmp_path / "secret.txt").write_text("not an asset")
    monkeypatch.setattr(web, "DIST", dist)
    return dist


@pytest.fixture
def not_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    dist = tmp_path / "nothing-here"
    monkeypatch.setattr(web, "DIST", dist)
    return dist


async def test_the_page_is_served_at_the_root_and_under_ui(
    client: httpx.AsyncClient, built: Path
) -> None:
    for path in ("/", "/ui/sessions/abc", "/ui/sessions/abc/traces/t1", "/ui/flags"):
        page = await client.get(path)
        assert page.status_code == 200, path
        assert page.text == INDEX
        assert page.headers["content-type"].startswith("text/html")
        # Always checked again, so a new build shows at once; it loads only its own files.
        assert page.headers["cache-control"] == "no-cache"
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
    assert (await client.head("/")).status_code == 200


async def test_assets_are_cached_for_good_and_nothing_else_is_served(
    client: httpx.AsyncClient, built: Path
) -> None:
    asset = await client.get("/assets/index-abc123.js")
    assert asset.status_code == 200
    assert asset.text == "console.log('app')"
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "javascript" in asset.headers["content-type"]
    for path in ("/assets/missing.js", "/assets/../secret.txt", "/assets/%2e%2e/secret.txt"):
        refused = await client.get(path)
        assert refused.status_code == 404, path
        assert "not an asset" not in refused.text


async def test_without_a_build_the_root_says_how_to_make_one(
    client: httpx.AsyncClient, not_built: Path
) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert "The web app is not built" in page.text
    assert "./dev serve" in page.text
    assert "npm ci &amp;&amp; npm run build" in page.text
    assert str(not_built) in page.text
    assert (await client.get("/ui/sessions/x")).text == page.text


async def test_the_web_app_shadows_no_api_route_and_stays_out_of_the_spec(
    client: httpx.AsyncClient, app: FastAPI, built: Path
) -> None:
    agents = await client.get("/agents")
    assert agents.status_code == 200
    assert agents.json() == []
    # An unknown API path is still the API's JSON 404, not the page.
    unknown = await client.get("/sessions/nope")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/json"
    assert (await client.get("/no-such-thing")).status_code == 404
    spec = (await client.get("/openapi.json")).json()
    assert not [p for p in spec["paths"] if p == "/" or p.startswith(("/ui", "/assets"))]


async def test_anyone_may_load_the_page_even_where_the_api_needs_credentials(
    app: FastAPI, built: Path
) -> None:
    class Nobody:
        async def authenticate(self, request: object) -> None:
            return None

    app.state.authenticator = Nobody()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://localhost"
    ) as c:
        assert (await c.get("/")).status_code == 200
        assert (await c.get("/assets/index-abc123.js")).status_code == 200
        assert (await c.get("/agents")).status_code == 401
