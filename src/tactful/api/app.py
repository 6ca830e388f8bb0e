"""The FastAPI application: one router per resource, auth on every route, errors in one place."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.datastructures import Default
from fastapi.routing import APIRoute
from pydantic import BaseModel

from tactful.api import (
    agents,
    audit,
    canned_responses,
    capabilities,
    context_variables,
    customers,
    definitions,
    evaluations,
    event_updates,
    events,
    flags,
    glossary,
    guidelines,
    handoff,
    journeys,
    keys,
    metrics,
    relationships,
    services,
    sessions,
    tags,
    traces,
    web,
)
from tactful.api.auth import (
    EVERYONE,
    Authenticator,
    SessionOwners,
    allow,
    authenticator_for,
    document_access,
)
from tactful.api.errors import SafeJSONResponse, install_error_handling
from tactful.api.origins import install_origins
from tactful.api.runtime import RuntimeDep
from tactful.errors import StoreError
from tactful.runtime import Runtime

MIB = 1024 * 1024
ROUTERS = (
    agents,
    customers,
    tags,
    guidelines,
    relationships,
    glossary,
    capabilities,
    journeys,
    context_variables,
    canned_responses,
    sessions,
    handoff,
    events,
    event_updates,
    traces,
    flags,
    services,
    keys,
    audit,
    definitions,
    evaluations,
)
# Routes are matched one after the other, router by router: the routes of a turn (a message,
# then long polls) are matched first. The spec keeps the order above. No route of one router
# matches a path of another's, so the order decides nothing else
# (tests/api/test_api_route_order.py).
MATCHED_FIRST = (events, sessions)


def _version() -> str:
    try:
        return version("tactful")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"


class Health(BaseModel):
    status: str
    tier: str


def max_body_bytes(runtime: Runtime) -> int:
    """1 MiB, or more when the message limit needs it (4 bytes per character, worst case)."""
    return max(MIB, 4 * runtime.settings.max_message_chars + 64 * 1024)


def create_app(runtime: Runtime, *, authenticator: Authenticator | None = None) -> FastAPI:
    """The REST API over ``runtime``. Without ``authenticator``, the settings' mode chooses
    one (development: everyone is admin; production: keys and tokens; ``tactful.api.auth``)."""
    app = FastAPI(
        title="tactful",
        version=_version(),
        description="A conversational harness for customer-facing LLM agents. "
        "Compatible with Parlant 3.3's REST API where they overlap.",
        # Routes with a response model keep FastAPI's fast serializer; the rest never fail to
        # encode (what the store reads is already repaired, see tactful.domain.text).
        default_response_class=Default(SafeJSONResponse),
    )
    app.state.runtime = runtime
    app.state.authenticator = authenticator or authenticator_for(runtime)
    app.state.session_owners = SessionOwners(runtime.bus)
    install_error_handling(app, max_body_bytes=max_body_bytes(runtime))
    # Added after the error handling, so outside it: refusals and errors carry CORS headers.
    install_origins(app, runtime.settings)
    routers = [m.router for m in ROUTERS]
    if runtime.metrics is not None:  # metrics_enabled
        routers.append(metrics.router)
    first = [m.router for m in MATCHED_FIRST]
    for router in first + [r for r in routers if r not in first]:
        app.include_router(router)

    @app.get("/healthz", tags=["health"], dependencies=[Depends(allow(*EVERYONE, anonymous=True))])
    async def healthz(runtime: RuntimeDep) -> Health:
        """Liveness, and the model tier the server runs on (``offline`` or ``model:<name>``)."""
        return Health(status="ok", tier=runtime.tier)

    @app.get(
        "/readyz",
        tags=["health"],
        dependencies=[Depends(allow(*EVERYONE, anonymous=True))],
        responses={503: {"description": "Not ready: the database does not answer, or draining"}},
    )
    async def readyz(runtime: RuntimeDep) -> Health:
        """Readiness, for a load balancer: the database answers and this process takes turns
        (it stops when it drains on SIGTERM)."""
        if not runtime.engine.runner.accepting:
            raise StoreError("this process is draining its turns before it stops")
        try:
            await runtime.store.definitions_revision()
        except Exception as e:
            raise StoreError(f"the database does not answer: {type(e).__name__}") from e
        return Health(status="ready", tier=runtime.tier)

    # The web app at / (tactful.api.web): after the API, so that it never shadows a route.
    app.include_router(web.router)
    routes = [r for router in routers for r in router.routes if isinstance(r, APIRoute)]
    production = runtime.settings.mode == "production"
    document_access(app, routes, production=production)
    _paths_in_order(app, [r.path for r in routes])
    return app


def _paths_in_order(app: FastAPI, paths: list[str]) -> None:
    """Make the spec list its paths in ``paths``'s order (the others after, as they come),
    whatever order the routes are matched in."""
    rank = {path: i for i, path in reversed(list(enumerate(paths)))}
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = generate()
        if fresh:
            found = schema.get("paths", {})
            ordered = sorted(found.items(), key=lambda item: rank.get(item[0], len(paths)))
            found.clear()
            found.update(ordered)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
