"""The REST API (FastAPI): routers per resource, auth, errors, long-poll and SSE."""

from tactful.api.app import create_app

__all__ = ["create_app"]
