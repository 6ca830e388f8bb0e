"""Every operation of the OpenAPI spec, called by each kind of caller of a production server:
anonymous, customer A (whose session the paths name), customer B, an operator key and an admin
key. No operation may be left out of the table below."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from production import Production, production_settings, start_production

from tactful.api import create_app
from tactful.api.auth import CredentialAuthenticator
from tactful.config import Settings
from tactful.domain import ToolServiceConfig, ToolServiceKind
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import start_runtime

# Who may call an operation:
PUBLIC = "public"  # everyone, without credentials
ADMIN = "admin"  # admin keys
STAFF = "staff"  # operator and admin keys
CUSTOMERS = "customers"  # staff, and any customer token (for its own customer)
OWNER = "owner"  # staff, and the customer whose session the path names (or its guest)

PRINCIPALS = ("anonymous", "customer_b", "customer_a", "operator", "admin")
SUCCESS = {"GET": 200, "POST": 201, "PATCH": 200, "PUT": 200, "DELETE": 204}
MESSAGE = {"kind": "message", "source": "customer", "message": "Where is my order?"}


@dataclass
class World:
    """A production server holding one of every kind of thing, with ids to put in paths."""

    prod: Production
    ids: dict[str, str]
    # The journey's graph, to PUT it back.
    graph: dict[str, Any]


Request = tuple[str, dict[str, Any] | None]  # the path with its query, and the JSON body
Build = Callable[[World], Request]

# "METHOD /path" -> who may call it, how to build a request, and the status a permitted caller
# gets (when not the method's usual success).
OPERATIONS: dict[str, tuple[str, Build] | tuple[str, Build, int]] = {
    "GET /healthz": (PUBLIC, lambda w: ("/healthz", None)),
    "GET /readyz": (PUBLIC, lambda w: ("/readyz", None)),
    "GET /agents": (STAFF, lambda w: ("/agents", None)),
    "POST /agents": (ADMIN, lambda w: ("/agents", {"name": "Another"})),
    "GET /agents/{agent_id}": (STAFF, lambda w: (f"/agents/{w.ids['agent']}", None)),
    "PATCH /agents/{agent_id}": (
        ADMIN,
        lambda w: (f"/agents/{w.ids['agent']}", {"description": "d"}),
    ),
    "DELETE /agents/{agent_id}": (ADMIN, lambda w: (f"/agents/{w.ids['agent']}", None)),
    "GET /customers": (STAFF, lambda w: ("/customers", None)),
    "POST /customers": (STAFF, lambda w: ("/customers", {"name": "Cy"})),
    "GET /customers/{customer_id}": (STAFF, lambda w: ("/customers/cust-a", None)),
    "PATCH /customers/{customer_id}": (STAFF, lambda w: ("/customers/cust-a", {"name": "An"})),
    "DELETE /customers/{customer_id}": (STAFF, lambda w: ("/customers/cust-a", None)),
    "POST /customers/{customer_id}/tokens": (STAFF, lambda w: ("/customers/cust-a/tokens", {})),
    "GET /tags": (STAFF, lambda w: ("/tags", None)),
    "POST /tags": (ADMIN, lambda w: ("/tags", {"name": "new"})),
    "GET /tags/{tag_id}": (STAFF, lambda w: (f"/tags/{w.ids['tag']}", None)),
    "PATCH /tags/{tag_id}": (ADMIN, lambda w: (f"/tags/{w.ids['tag']}", {"name": "renamed"})),
    "DELETE /tags/{tag_id}": (ADMIN, lambda w: (f"/tags/{w.ids['tag']}", None)),
    "GET /guidelines": (STAFF, lambda w: ("/guidelines", None)),
    "POST /guidelines": (ADMIN, lambda w: ("/guidelines", {"condition": "c", "action": "a"})),
    "GET /guidelines/{guideline_id}": (STAFF, lambda w: (f"/guidelines/{w.ids['g1']}", None)),
    "PATCH /guidelines/{guideline_id}": (
        ADMIN,
        lambda w: (f"/guidelines/{w.ids['g1']}", {"action": "b"}),
    ),
    "DELETE /guidelines/{guideline_id}": (ADMIN, lambda w: (f"/guidelines/{w.ids['g1']}", None)),
    "GET /relationships": (STAFF, lambda w: ("/relationships", None)),
    "POST /relationships": (
        ADMIN,
        lambda w: (
            "/relationships",
            {
                "source_guideline": w.ids["g2"],
                "target_guideline": w.ids["g1"],
                "kind": "entailment",
            },
        ),
    ),
    "GET /relationships/{relationship_id}": (
        STAFF,
        lambda w: (f"/relationships/{w.ids['relationship']}", None),
    ),
    "DELETE /relationships/{relationship_id}": (
        ADMIN,
        lambda w: (f"/relationships/{w.ids['relationship']}", None),
    ),
    "GET /terms": (STAFF, lambda w: ("/terms", None)),
    "POST /terms": (ADMIN, lambda w: ("/terms", {"name": "Protect", "description": "Plan"})),
    "GET /terms/{term_id}": (STAFF, lambda w: (f"/terms/{w.ids['term']}", None)),
    "PATCH /terms/{term_id}": (
        ADMIN,
        lambda w: (f"/terms/{w.ids['term']}", {"description": "New"}),
    ),
    "DELETE /terms/{term_id}": (ADMIN, lambda w: (f"/terms/{w.ids['term']}", None)),
    "GET /capabilities": (STAFF, lambda w: ("/capabilities", None)),
    "POST /capabilities": (
        ADMIN,
        lambda w: ("/capabilities", {"title": "Refund", "description": "Refund an order"}),
    ),
    "GET /capabilities/{capability_id}": (
        STAFF,
        lambda w: (f"/capabilities/{w.ids['capability']}", None),
    ),
    "PATCH /capabilities/{capability_id}": (
        ADMIN,
        lambda w: (f"/capabilities/{w.ids['capability']}", {"description": "New"}),
    ),
    "DELETE /capabilities/{capability_id}": (
        ADMIN,
        lambda w: (f"/capabilities/{w.ids['capability']}", None),
    ),
    "GET /journeys": (STAFF, lambda w: ("/journeys", None)),
    "POST /journeys": (ADMIN, lambda w: ("/journeys", {"title": "Exchange"})),
    "GET /journeys/{journey_id}": (STAFF, lambda w: (f"/journeys/{w.ids['journey']}", None)),
    "PATCH /journeys/{journey_id}": (
        ADMIN,
        lambda w: (f"/journeys/{w.ids['journey']}", {"description": "d"}),
    ),
    "DELETE /journeys/{journey_id}": (ADMIN, lambda w: (f"/journeys/{w.ids['journey']}", None)),
    "GET /journeys/{journey_id}/graph": (
        STAFF,
        lambda w: (f"/journeys/{w.ids['journey']}/graph", None),
    ),
    "PUT /journeys/{journey_id}/graph": (
        ADMIN,
        lambda w: (f"/journeys/{w.ids['journey']}/graph", w.graph),
    ),
    "GET /journeys/{journey_id}/mermaid": (
        STAFF,
        lambda w: (f"/journeys/{w.ids['journey']}/mermaid", None),
    ),
    "GET /context-variables": (STAFF, lambda w: ("/context-variables", None)),
    "POST /context-variables": (ADMIN, lambda w: ("/context-variables", {"name": "plan"})),
    "DELETE /context-variables": (ADMIN, lambda w: ("/context-variables", None)),
    "GET /context-variables/{variable_id}": (
        STAFF,
        lambda w: (f"/context-variables/{w.ids['variable']}", None),
    ),
    "PATCH /context-variables/{variable_id}": (
        ADMIN,
        lambda w: (f"/context-variables/{w.ids['variable']}", {"description": "d"}),
    ),
    "DELETE /context-variables/{variable_id}": (
        ADMIN,
        lambda w: (f"/context-variables/{w.ids['variable']}", None),
    ),
    "GET /context-variables/{variable_id}/{key}": (
        STAFF,
        lambda w: (f"/context-variables/{w.ids['variable']}/cust-a", None),
    ),
    "PUT /context-variables/{variable_id}/{key}": (
        STAFF,
        lambda w: (f"/context-variables/{w.ids['variable']}/cust-a", {"data": "silver"}),
    ),
    "DELETE /context-variables/{variable_id}/{key}": (
        STAFF,
        lambda w: (f"/context-variables/{w.ids['variable']}/cust-a", None),
    ),
    "GET /canned_responses": (STAFF, lambda w: ("/canned_responses", None)),
    "POST /canned_responses": (ADMIN, lambda w: ("/canned_responses", {"value": "Hi"})),
    "GET /canned_responses/{canned_response_id}": (
        STAFF,
        lambda w: (f"/canned_responses/{w.ids['canned']}", None),
    ),
    "PATCH /canned_responses/{canned_response_id}": (
        ADMIN,
        lambda w: (f"/canned_responses/{w.ids['canned']}", {"value": "Hello"}),
    ),
    "DELETE /canned_responses/{canned_response_id}": (
        ADMIN,
        lambda w: (f"/canned_responses/{w.ids['canned']}", None),
    ),
    "GET /sessions": (CUSTOMERS, lambda w: ("/sessions", None)),
    "POST /sessions": (CUSTOMERS, lambda w: ("/sessions", {"agent_id": w.ids["agent"]})),
    "DELETE /sessions": (STAFF, lambda w: ("/sessions", None)),
    "GET /sessions/{session_id}": (OWNER, lambda w: (f"/sessions/{w.ids['session']}", None)),
    "PATCH /sessions/{session_id}": (
        STAFF,
        lambda w: (f"/sessions/{w.ids['session']}", {"title": "t"}),
    ),
    "DELETE /sessions/{session_id}": (STAFF, lambda w: (f"/sessions/{w.ids['session']}", None)),
    "POST /sessions/{session_id}/handoff": (
        STAFF,
        lambda w: (f"/sessions/{w.ids['session']}/handoff", {"reason": "asks for a person"}),
        200,
    ),
    "DELETE /sessions/{session_id}/handoff": (
        STAFF,
        lambda w: (f"/sessions/{w.ids['session']}/handoff", None),
        200,
    ),
    "PUT /sessions/{session_id}/handoff/assignee": (
        STAFF,
        lambda w: (f"/sessions/{w.ids['session']}/handoff/assignee", {"display_name": "Ann"}),
    ),
    "DELETE /sessions/{session_id}/handoff/assignee": (
        STAFF,
        lambda w: (f"/sessions/{w.ids['session']}/handoff/assignee", None),
        200,
    ),
    "GET /sessions/{session_id}/journeys": (
        STAFF,
        lambda w: (f"/sessions/{w.ids['session']}/journeys", None),
    ),
    "GET /sessions/{session_id}/events": (
        OWNER,
        lambda w: (f"/sessions/{w.ids['session']}/events?wait_for_data=0", None),
    ),
    "POST /sessions/{session_id}/events": (
        OWNER,
        lambda w: (f"/sessions/{w.ids['session']}/events", MESSAGE),
    ),
    "DELETE /sessions/{session_id}/events": (
        STAFF,
        lambda w: (f"/sessions/{w.ids['session']}/events?min_offset=0", None),
    ),
    "GET /sessions/{session_id}/events/{event_id}": (
        OWNER,
        lambda w: (f"/sessions/{w.ids['session']}/events/{w.ids['event']}", None),
    ),
    "PATCH /sessions/{session_id}/events/{event_id}": (
        OWNER,
        lambda w: (
            f"/sessions/{w.ids['session']}/events/{w.ids['event']}",
            {"metadata": {"set": {"rating": "up"}}},
        ),
    ),
    "GET /sessions/{session_id}/traces": (
        STAFF,
        lambda w: (f"/sessions/{w.ids['session']}/traces", None),
    ),
    "GET /traces/{trace_id}": (STAFF, lambda w: (f"/traces/{w.ids['trace']}", None)),
    "GET /flags": (STAFF, lambda w: ("/flags", None)),
    "POST /flags": (
        STAFF,
        lambda w: ("/flags", {"session_id": w.ids["session"], "event_id": w.ids["reply"]}),
    ),
    "DELETE /flags/{flag_id}": (STAFF, lambda w: (f"/flags/{w.ids['flag']}", None)),
    "POST /evaluations": (ADMIN, lambda w: ("/evaluations", {"agent_id": w.ids["agent"]})),
    "GET /evaluations/{evaluation_id}": (
        STAFF,
        lambda w: (f"/evaluations/{w.ids['evaluation']}?wait_for_completion=0", None),
    ),
    "GET /services": (STAFF, lambda w: ("/services", None)),
    "GET /services/{name}": (STAFF, lambda w: ("/services/orders", None)),
    # A permitted caller gets past the access check to the body's own refusal.
    "PUT /services/{name}": (
        ADMIN,
        lambda w: ("/services/other", {"kind": "sdk", "sdk": {"url": "https://x.example"}}),
        422,
    ),
    "DELETE /services/{name}": (ADMIN, lambda w: ("/services/orders", None)),
    "GET /keys": (ADMIN, lambda w: ("/keys", None)),
    "POST /keys": (ADMIN, lambda w: ("/keys", {"name": "ci", "role": "operator"})),
    "GET /keys/{key_id}": (ADMIN, lambda w: (f"/keys/{w.ids['spare_key']}", None)),
    "DELETE /keys/{key_id}": (ADMIN, lambda w: (f"/keys/{w.ids['spare_key']}", None)),
    "GET /audit": (ADMIN, lambda w: ("/audit", None)),
    "GET /definitions/agents/{agent_id}": (
        STAFF,
        lambda w: (f"/definitions/agents/{w.ids['agent']}", None),
    ),
    "POST /definitions/plan": (
        STAFF,
        lambda w: ("/definitions/plan", {"document": {"agent": {"name": "Planned"}}}),
        200,
    ),
    "POST /definitions/apply": (
        ADMIN,
        lambda w: ("/definitions/apply", {"document": {"agent": {"name": "Applied"}}}),
        200,
    ),
    "GET /definitions/revisions": (ADMIN, lambda w: ("/definitions/revisions", None)),
    "POST /definitions/revisions/{revision_id}/rollback": (
        ADMIN,
        lambda w: (
            f"/definitions/revisions/{2**31 - 1}/rollback",
            {"agent_id": w.ids["agent"]},
        ),
        404,
    ),
    "GET /metrics": (ADMIN, lambda w: ("/metrics", None)),
}


def expected(access: str, principal: str, success: int) -> int:
    """The status ``principal`` gets from an operation open to ``access``."""
    customer = principal.startswith("customer")
    table = {
        PUBLIC: {},
        ADMIN: {"anonymous": 401, "customer_a": 403, "customer_b": 403, "operator": 403},
        STAFF: {"anonymous": 401, "customer_a": 403, "customer_b": 403},
        CUSTOMERS: {"anonymous": 401},
        # Someone else's session is not found, whoever asks (nobody learns which exist).
        OWNER: {"anonymous": 404, "customer_b": 404},
    }
    refused = table[access].get(principal)
    assert refused is not None or access != ADMIN or not customer
    return refused if refused is not None else success


async def populate(prod: Production) -> tuple[dict[str, str], dict[str, Any]]:
    """One of every kind of thing, made through the API: their ids, and the journey's graph."""
    ids: dict[str, str] = {}
    async with prod.client(prod.admin_key) as admin:

        async def made(path: str, body: dict[str, Any]) -> str:
            response = await admin.post(path, json=body)
            assert response.status_code == 201, (path, response.text)
            return str(response.json()["id"])

        ids["tag"] = await made("/tags", {"name": "vip"})
        ids["agent"] = await made("/agents", {"name": "Support"})
        agent_tag = f"agent:{ids['agent']}"
        ids["g1"] = await made("/guidelines", {"condition": "c1", "action": "a1"})
        ids["g2"] = await made("/guidelines", {"condition": "c2", "action": "a2"})
        ids["relationship"] = await made(
            "/relationships",
            {"source_guideline": ids["g1"], "target_guideline": ids["g2"], "kind": "priority"},
        )
        ids["term"] = await made("/terms", {"name": "Plus", "description": "Our plan"})
        ids["capability"] = await made(
            "/capabilities", {"title": "Track an order", "description": "Say where it is"}
        )
        ids["journey"] = await made("/journeys", {"title": "Returns", "tags": [agent_tag]})
        ids["variable"] = await made("/context-variables", {"name": "tier"})
        value = await admin.put(f"/context-variables/{ids['variable']}/cust-a", json={"data": 1})
        assert value.status_code == 200, value.text
        ids["canned"] = await made("/canned_responses", {"value": "Hello"})
        ids["spare_key"] = await made("/keys", {"name": "spare", "role": "operator"})
        ids["session"] = await made(
            "/sessions", {"agent_id": ids["agent"], "customer_id": prod.customer_a}
        )
        posted = await admin.post(f"/sessions/{ids['session']}/events", json=MESSAGE)
        ids["event"], ids["trace"] = posted.json()["id"], posted.json()["trace_id"]
        graph = (await admin.get(f"/journeys/{ids['journey']}/graph")).json()
    await prod.runtime.engine.wait_idle(ids["session"])
    async with prod.client(prod.admin_key) as admin:
        events = await admin.get(
            f"/sessions/{ids['session']}/events", params={"source": "ai_agent"}
        )
        [reply] = [e for e in events.json() if e["kind"] == "message"]
        ids["reply"] = reply["id"]
        flag = await admin.post(
            "/flags", json={"session_id": ids["session"], "event_id": reply["id"]}
        )
        assert flag.status_code == 201, flag.text
        ids["flag"] = flag.json()["id"]
        evaluation = await admin.post("/evaluations", json={"agent_id": ids["agent"]})
        assert evaluation.status_code == 201, evaluation.text
        ids["evaluation"] = evaluation.json()["id"]
    await prod.runtime.store.create(
        ToolServiceConfig(name="orders", kind=ToolServiceKind.OPENAPI, url="https://o.example")
    )
    put_back = {k: graph[k] for k in ("initial_state_id", "states", "transitions") if k in graph}
    return ids, put_back


@dataclass
class Template:
    """A world saved as a database file: each test starts from a copy of it."""

    folder: Path
    ids: dict[str, str]
    graph: dict[str, Any]
    keys: tuple[str, str]


def settings_in(folder: Path) -> Settings:
    # No per-key limit: a test makes many calls with the same keys.
    return production_settings(transient=False, data_dir=folder, rate_requests_per_key=0)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    folder = tmp_path_factory.mktemp("world")

    async def make() -> Template:
        prod = await start_production(settings_in(folder))
        try:
            ids, graph = await populate(prod)
        finally:
            await prod.runtime.close()
        return Template(folder, ids, graph, (prod.admin_key, prod.operator_key))

    return asyncio.run(make())


class Worlds:
    """Fresh copies of the template, served by one app: FastAPI prepares each route of an app
    on its first request, so the copies share the app and its prepared routes."""

    def __init__(self, template: Template, tmp_path: Path) -> None:
        self.template = template
        self.tmp_path = tmp_path
        self.app: FastAPI | None = None
        self.opened: list[Production] = []

    async def new(self) -> World:
        folder = self.tmp_path / f"copy{len(self.opened)}"
        shutil.copytree(self.template.folder, folder)
        runtime = await start_runtime(settings_in(folder), embedder=HashingEmbedder(), offline=True)
        if self.app is None:
            self.app = create_app(runtime)
        self.app.state.runtime = runtime
        self.app.state.authenticator = CredentialAuthenticator(runtime)
        admin, operator = self.template.keys
        prod = Production(runtime, self.app, admin, operator, "cust-a", "cust-b")
        self.opened.append(prod)
        return World(prod, self.template.ids, self.template.graph)

    async def close(self) -> None:
        for prod in self.opened:
            await prod.runtime.close()


def credential(world: World, principal: str) -> str | None:
    prod = world.prod
    return {
        "anonymous": None,
        "customer_a": prod.token(prod.customer_a),
        "customer_b": prod.token(prod.customer_b),
        "operator": prod.operator_key,
        "admin": prod.admin_key,
    }[principal]


async def call(world: World, principal: str, method: str, build: Build) -> httpx.Response:
    path, body = build(world)
    async with world.prod.client(credential(world, principal)) as c:
        return await c.request(method, path, json=body)


async def test_every_operation_in_the_spec_is_classified() -> None:
    prod = await start_production()
    try:
        async with prod.client() as c:
            spec = (await c.get("/openapi.json")).json()
    finally:
        await prod.runtime.close()
    in_spec = {f"{m.upper()} {p}" for p, ops in spec["paths"].items() for m in ops}
    assert in_spec == set(OPERATIONS), {
        "unclassified": sorted(in_spec - set(OPERATIONS)),
        "gone": sorted(set(OPERATIONS) - in_spec),
    }


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_each_caller_gets_the_status_its_role_allows(
    operation: str, template: Template, tmp_path: Path
) -> None:
    method, _ = operation.split(" ", 1)
    access, build, *rest = OPERATIONS[operation]
    success = rest[0] if rest else SUCCESS[method]
    worlds = Worlds(template, tmp_path)
    try:
        world = await worlds.new()
        permitted_before = False
        for principal in PRINCIPALS:
            want = expected(access, principal, success)
            if method != "GET" and permitted_before and want == success:
                # The previous permitted call changed the world: start from a fresh copy.
                world = await worlds.new()
            response = await call(world, principal, method, build)
            assert response.status_code == want, (principal, response.text)
            permitted_before = permitted_before or want == success
    finally:
        await worlds.close()
