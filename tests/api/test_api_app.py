"""The application: health, OpenAPI, auth on every route, error mapping and body limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from tactful.api.auth import Principal, Role, RouteAccess, allow
from tactful.api.errors import status_of
from tactful.domain import Agent
from tactful.errors import (
    ConfigurationError,
    ConflictError,
    ForbiddenError,
    ModelError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    StoreError,
    TactfulError,
    UnauthorizedError,
    ValidationError,
)
from tactful.runtime import Runtime


async def test_healthz_reports_the_tier(client: httpx.AsyncClient, runtime: Runtime) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "tier": runtime.tier}
    assert runtime.tier == "offline"


async def test_openapi_describes_every_resource(client: httpx.AsyncClient, app: FastAPI) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["info"]["title"] == "tactful"
    assert spec["info"]["version"] == app.version != ""
    for path in (
        "/agents",
        "/customers",
        "/tags",
        "/guidelines",
        "/terms",
        "/canned_responses",
        "/sessions",
        "/sessions/{session_id}/events",
        "/sessions/{session_id}/traces",
        "/traces/{trace_id}",
    ):
        assert path in spec["paths"], path
    # Route docstrings become the descriptions.
    assert "custom ``id``" in spec["paths"]["/agents"]["post"]["description"]


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, also inside included routers (FastAPI may keep those as wrappers)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (inner := getattr(route, "original_router", None)) is not None:
            found += _api_routes(list(inner.routes))
        elif (inner_routes := getattr(route, "routes", None)) is not None:
            found += _api_routes(list(inner_routes))
    return found


async def test_every_route_declares_who_may_call_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    checked: set[tuple[str, str]] = set()
    for route in _api_routes(list(app.routes)):
        access = [d.call for d in route.dependant.dependencies if isinstance(d.call, RouteAccess)]
        assert len(access) == 1, f"{route.methods} {route.path} declares no access rule"
        assert access[0].roles, route.path
        checked |= {(m.lower(), route.path) for m in route.methods or ()}
    # Nothing reachable escaped the walk: every documented operation was checked.
    spec = (await client.get("/openapi.json")).json()
    documented = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert documented <= checked
    assert len(documented) > 30


async def test_a_route_refuses_roles_it_does_not_allow(app: FastAPI, runtime: Runtime) -> None:
    class CustomerKey:
        async def authenticate(self, request: object) -> Principal:
            return Principal(id="c1", roles=frozenset({Role.CUSTOMER}), customer_id="c1")

    app.state.authenticator = CustomerKey()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://localhost"
    ) as c:
        denied = await c.post("/agents", json={"name": "A"})
        assert denied.status_code == 403
        assert denied.json() == {"detail": "this route is for: admin"}
        assert (await c.get("/healthz")).status_code == 200
        assert await runtime.store.list(Agent) == []


async def test_anonymous_callers_need_credentials_except_for_health(app: FastAPI) -> None:
    class Nobody:
        async def authenticate(self, request: object) -> None:
            return None

    app.state.authenticator = Nobody()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://localhost"
    ) as c:
        assert (await c.get("/agents")).status_code == 401
        assert (await c.get("/healthz")).status_code == 200


def test_allow_names_its_roles() -> None:
    access = allow(Role.ADMIN, Role.OPERATOR)
    assert access.roles == {Role.ADMIN, Role.OPERATOR}
    assert not access.anonymous


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFoundError("Agent", "x"), 404),
        (ValidationError("bad"), 422),
        (ConflictError("taken"), 409),
        (PayloadTooLargeError("big"), 413),
        (ModelError("down"), 502),
        (StoreError("gone"), 503),
        (ConfigurationError("no secret key"), 503),
        (UnauthorizedError("who?"), 401),
        (ForbiddenError("not you"), 403),
        (RateLimitedError("slow down", retry_after_s=3), 429),
        (TactfulError("a class without a status of its own"), 500),
    ],
)
def test_each_error_class_has_its_status(error: Exception, status: int) -> None:
    assert status_of(error) == status  # type: ignore[arg-type]


async def test_unexpected_errors_are_a_json_500_without_traceback(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom, dependencies=[])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://localhost"
    ) as c:
        response = await c.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    assert "secret" not in response.text
    assert any("secret internals" in r.getMessage() or r.exc_info for r in caplog.records)


async def test_store_errors_map_through_the_one_handler(app: FastAPI) -> None:
    async def unavailable() -> None:
        raise StoreError("the database is down")

    app.add_api_route("/unavailable", unavailable)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://localhost"
    ) as c:
        response = await c.get("/unavailable")
    assert response.status_code == 503
    assert response.json() == {"detail": "the database is down"}


async def test_unknown_route_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


async def test_body_over_the_limit_is_413_before_parsing(client: httpx.AsyncClient) -> None:
    huge = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = await client.post(
        "/agents", content=huge, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


async def test_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    response = await client.post(
        "/agents", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


async def test_invalid_json_keeps_fastapis_422_shape(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/agents", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert {"loc", "msg", "type"} <= set(detail[0])


async def test_readiness_says_whether_this_process_takes_turns(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    await runtime.engine.runner.drain(0)
    draining = await client.get("/readyz")
    assert draining.status_code == 503 and "draining" in draining.json()["detail"]
