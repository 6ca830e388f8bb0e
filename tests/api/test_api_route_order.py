"""Routes are matched hot ones first (``tactful.api.app.MATCHED_FIRST``): that may decide
nothing but speed, and the spec keeps the documented order (``ROUTERS``)."""

from __future__ import annotations

import re

import httpx
from fastapi.routing import APIRoute
from starlette.routing import compile_path

from tactful.api import app as api_app


def _routes() -> list[tuple[int, APIRoute]]:
    modules = [*api_app.ROUTERS, api_app.metrics]
    return [
        (i, route)
        for i, module in enumerate(modules)
        for route in module.router.routes
        if isinstance(route, APIRoute)
    ]


def _concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "Xy1", template)


def test_no_route_matches_a_path_of_another_router() -> None:
    routes = _routes()
    assert set(api_app.MATCHED_FIRST) <= set(api_app.ROUTERS)
    for i, route in routes:
        path = _concrete(route.path)
        for j, other in routes:
            pattern, _, _ = compile_path(other.path)
            if j != i and pattern.match(path):
                assert not (route.methods & other.methods), (route.path, other.path)


async def test_the_spec_lists_paths_in_the_documented_order(client: httpx.AsyncClient) -> None:
    documented = list(dict.fromkeys(route.path for _, route in _routes()))
    spec = (await client.get("/openapi.json")).json()
    listed = list(spec["paths"])
    assert listed[: len(documented)] == documented
    assert listed[len(documented) :] == ["/healthz", "/readyz"]
    # The routes of a turn answer as before.
    listing = await client.get("/sessions/nope/events", params={"wait_for_data": 0})
    assert listing.status_code == 404
