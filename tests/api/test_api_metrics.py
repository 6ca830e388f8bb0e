"""``GET /metrics`` over a real server: Prometheus scrapes what the turns did (turns, stage and
model-call latencies, calls and errors per provider, tokens, cost from the price table); in
production only with an admin key; absent when metrics are off."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from live_server import serving
from production import Production
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tactful.api import create_app
from tactful.config import Settings
from tactful.domain import Trace
from tactful.engine.match import answer_listed
from tactful.llm.scripted import HashingEmbedder, ScriptedGenerator
from tactful.runtime import Runtime, start_runtime

FAMILIES = {
    "tactful_turns": "counter",
    "tactful_turn_duration_seconds": "histogram",
    "tactful_stage_duration_seconds": "histogram",
    "tactful_model_calls": "counter",
    "tactful_model_call_duration_seconds": "histogram",
    "tactful_model_errors": "counter",
    "tactful_model_tokens": "counter",
    "tactful_model_cost_usd": "counter",
    "tactful_model_unpriced_calls": "counter",
}
SCRIPTED = {"provider": "scripted", "model": "scripted"}


class Scrape:
    """One scrape, parsed by prometheus_client's own parser."""

    def __init__(self, text: str) -> None:
        self.types = {}
        self.samples: list[Sample] = []
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            self.samples += family.samples

    def value(self, name: str, **labels: str) -> float:
        """The sample ``name`` whose labels include ``labels`` (0 when there is none)."""
        found = [s for s in self.samples if s.name == name and labels.items() <= s.labels.items()]
        assert len(found) <= 1, found
        return found[0].value if found else 0.0


async def _turns(client: httpx.AsyncClient, runtime: Runtime, *messages: str) -> str:
    agent = (await client.post("/agents", json={"name": "Support"})).json()
    guideline = {"condition": "the customer asks about a refund", "action": "say 5 days"}
    created = await client.post("/guidelines", json=guideline)
    assert created.status_code == 201, created.text
    session = (await client.post("/sessions", json={"agent_id": agent["id"]})).json()
    for message in messages:
        event = {"kind": "message", "source": "customer", "message": message}
        posted = await client.post(f"/sessions/{session['id']}/events", json=event)
        assert posted.status_code == 201, posted.text
        # The turn is over (and counted) once the engine is idle for the session.
        await runtime.engine.wait_idle(session["id"])
    return str(session["id"])


async def test_a_scrape_counts_the_turns_calls_tokens_and_cost(priced_runtime: Runtime) -> None:
    runtime = priced_runtime
    model = runtime.engine.generator
    assert isinstance(model, ScriptedGenerator)
    price = runtime.settings.model_prices["scripted"]
    async with (
        serving(create_app(runtime)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        session_id = await _turns(
            client, runtime, "where is my refund?", "and the other refund?", "broken refund?"
        )
        response = await client.get("/metrics")
        session = (await client.get(f"/sessions/{session_id}")).json()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    scrape = Scrape(response.text)
    assert {name: scrape.types.get(name) for name in FAMILIES} == FAMILIES

    assert scrape.value("tactful_turns_total", outcome="done") == 3
    assert scrape.value("tactful_turns_total", outcome="failed") == 0
    assert scrape.value("tactful_turn_duration_seconds_count", outcome="done") == 3
    for stage in ("context", "retrieve", "match", "resolve", "compose"):
        assert scrape.value("tactful_stage_duration_seconds_count", stage=stage) == 3, stage

    # Three matches (the last one failed: the turn went on offline) and three replies.
    ok = [c for c in model.calls if c.error is None]
    assert [c.stage for c in model.calls] == ["match", "compose"] * 3
    calls = "tactful_model_calls_total"
    assert scrape.value(calls, **SCRIPTED, stage="match", outcome="ok") == 2
    assert scrape.value(calls, **SCRIPTED, stage="match", outcome="error") == 1
    assert scrape.value(calls, **SCRIPTED, stage="compose", outcome="ok") == 3
    assert scrape.value("tactful_model_errors_total", **SCRIPTED) == 1
    assert scrape.value("tactful_model_call_duration_seconds_count", **SCRIPTED) == 6

    tokens = "tactful_model_tokens_total"
    prompt = sum(c.usage.prompt_tokens for c in ok)
    cached = sum(c.usage.cached_tokens for c in ok)
    completion = sum(c.usage.completion_tokens for c in ok)
    assert cached > 0
    assert scrape.value(tokens, **SCRIPTED, kind="prompt") == prompt
    assert scrape.value(tokens, **SCRIPTED, kind="cached") == cached
    assert scrape.value(tokens, **SCRIPTED, kind="completion") == completion
    cost = sum(
        price.cost_usd(c.usage.prompt_tokens, c.usage.cached_tokens, c.usage.completion_tokens)
        for c in ok
    )
    assert cost > 0
    assert scrape.value("tactful_model_cost_usd_total", **SCRIPTED) == pytest.approx(cost)
    assert scrape.value("tactful_model_unpriced_calls_total", **SCRIPTED) == 0

    # The session says the same, from its traces.
    assert session["usage"] == {
        "model_calls": 6,
        "prompt_tokens": prompt,
        "cached_tokens": cached,
        "completion_tokens": completion,
        "cost_usd": pytest.approx(cost),
        "cost_complete": True,
    }
    traces = await runtime.store.list(Trace, session_id=session_id)
    assert sum(t.usage.model_calls for t in traces) == 6


async def test_a_model_without_a_price_is_counted_as_unpriced() -> None:
    model = ScriptedGenerator(
        {
            "match": lambda c: answer_listed(c.prompt.user, lambda g: None),
            "compose": lambda c: {"message": "Hello."},
        }
    )
    runtime = await start_runtime(
        Settings(transient=True), embedder=HashingEmbedder(), generator=model
    )
    try:
        async with (
            serving(create_app(runtime)) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as client,
        ):
            session_id = await _turns(client, runtime, "hello")
            scrape = Scrape((await client.get("/metrics")).text)
            usage = (await client.get(f"/sessions/{session_id}")).json()["usage"]
    finally:
        await runtime.close()
    unpriced = scrape.value("tactful_model_unpriced_calls_total", **SCRIPTED)
    assert unpriced == len(model.calls) == 2
    assert scrape.value("tactful_model_cost_usd_total", **SCRIPTED) == 0
    assert (usage["cost_usd"], usage["cost_complete"]) == (None, False)


async def test_openmetrics_when_the_scraper_asks_for_it(client: httpx.AsyncClient) -> None:
    accept = "application/openmetrics-text; version=1.0.0"
    response = await client.get("/metrics", headers={"accept": accept})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert "tactful_turns_total" in response.text


async def test_production_needs_an_admin_key(production: Production) -> None:
    want: dict[str | None, int] = {
        None: 401,
        production.token(production.customer_a): 403,
        production.operator_key: 403,
        production.admin_key: 200,
    }
    got: dict[str | None, Any] = {}
    for credential in want:
        async with production.client(credential) as c:
            got[credential] = (await c.get("/metrics")).status_code
    assert got == want


async def test_off_it_is_absent() -> None:
    runtime = await start_runtime(
        Settings(transient=True, metrics_enabled=False), embedder=HashingEmbedder(), offline=True
    )
    try:
        assert runtime.metrics is None
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(create_app(runtime)), base_url="http://localhost"
        ) as c:
            assert (await c.get("/metrics")).status_code == 404
            assert "/metrics" not in (await c.get("/openapi.json")).json()["paths"]
    finally:
        await runtime.close()
