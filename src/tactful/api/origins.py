"""Where browsers may call from: CORS, and (in development mode) loopback ``Host`` names only.

Development mode allows any origin, so a local page with Parlant's widget just works; it is safe
because the server listens on loopback and refuses requests whose ``Host`` is not a loopback
name (a DNS-rebinding page would send its own host name). Production allows the origins listed
in ``cors_origins`` and no other.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from tactful.api.errors import send_json
from tactful.config import Settings
from tactful.security.exposure import is_loopback

# Response headers a browser script may read besides the CORS-safelisted ones
# (Tactful-Has-More: another page of events follows, see api/events.py).
EXPOSED_HEADERS = ["Retry-After", "Tactful-Has-More"]


def _host_name(host_header: str) -> str:
    # "[::1]:8800" -> "::1", "localhost:8800" -> "localhost"
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class LoopbackHostOnly:
    """ASGI middleware: answers 421 to a request whose ``Host`` is not a loopback name."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            if not is_loopback(_host_name(host)):
                detail = (
                    "this development-mode server answers only requests addressed to a loopback "
                    "name (localhost, 127.0.0.1, [::1]); serve in production mode to be reached "
                    "under another name"
                )
                await send_json(send, 421, {"detail": detail})
                return
        await self.app(scope, receive, send)


def install_origins(app: FastAPI, settings: Settings) -> None:
    """CORS from the settings, and the loopback ``Host`` check in development mode."""
    origins = ["*"] if settings.mode == "development" else settings.cors_origins
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
    if settings.mode == "development":
        app.add_middleware(LoopbackHostOnly)
