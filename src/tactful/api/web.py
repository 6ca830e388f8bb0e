"""The web app at ``/``: chat sandbox, trace inspector, agent view and flagged replies.

Its sources are in web/ (TypeScript, React, Vite); the build writes them into
``tactful/web/dist`` inside the package (``./dev serve`` builds them when missing, and so does
building a wheel). The page is static and public: it calls the API with the caller's own
credentials (in production mode it asks for an API key and sends it as a bearer token), so
serving it discloses nothing. Client routes live under ``/ui/`` and never shadow an API route;
hashed assets under ``/assets/`` are cached for a year. Without a build, ``/`` says how to make
one.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, HTMLResponse, Response

from tactful.api.auth import EVERYONE, allow
from tactful.errors import NotFoundError

DIST = Path(__file__).resolve().parent.parent / "web" / "dist"
# Hashed file names change with their content: a browser may keep them for good.
IMMUTABLE = "public, max-age=31536000, immutable"
# The page loads only its own scripts and styles and talks only to this server.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tactful: the web app is not built</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}}
code,pre{{background:#f3f3f3;padding:.1rem .3rem;border-radius:4px}}pre{{padding:.8rem}}</style>
</head><body>
<h1>The web app is not built</h1>
<p>This server answers its REST API (<a href="/docs">/docs</a>, <a href="/openapi.json">
/openapi.json</a>), but the web sandbox's assets are not in <code>{dist}</code>.</p>
<p>Build them with Node.js 20.19 or newer and npm, from a clone of tactful:</p>
<pre>./dev serve                                 # builds them when missing, then serves
cd web &amp;&amp; npm ci &amp;&amp; npm run build         # or build them alone</pre>
<p>A wheel of tactful built with <code>pip wheel .</code> or <code>python -m build</code>
carries them.</p>
</body></html>
"""

router = APIRouter(include_in_schema=False)
# The page and its assets hold no data: anyone may load them, with or without credentials.
PUBLIC = [Depends(allow(*EVERYONE, anonymous=True))]


def _page() -> Response:
    index = DIST / "index.html"
    if not index.is_file():
        return HTMLResponse(NOT_BUILT.format(dist=html.escape(str(DIST))), headers=PAGE_HEADERS)
    return FileResponse(index, media_type="text/html", headers=PAGE_HEADERS)


@router.api_route("/", methods=["GET", "HEAD"], dependencies=PUBLIC)
async def web_app() -> Response:
    """The web app, or a page saying how to build it."""
    return _page()


@router.api_route("/ui/{route:path}", methods=["GET", "HEAD"], dependencies=PUBLIC)
async def web_app_route(route: str) -> Response:
    """The web app's own routes (``/ui/sessions/<id>``, ...): the same page, which routes."""
    return _page()


@router.api_route("/assets/{name:path}", methods=["GET", "HEAD"], dependencies=PUBLIC)
async def web_asset(name: str) -> Response:
    """A built asset (scripts, styles), cached for good: its name carries its content hash."""
    assets = (DIST / "assets").resolve()
    path = (assets / name).resolve()
    if not path.is_relative_to(assets) or not path.is_file():
        raise NotFoundError("Asset", name)
    return FileResponse(
        path, headers={"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"}
    )
