"""The otel_endpoint setting: the runtime sends the turn's spans over OTLP/HTTP to a collector
(here a local one, on loopback), as the service "tactful"; without the SDK it refuses to start."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

import tactful
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import answer_listed
from tactful.errors import ConfigurationError
from tactful.llm.scripted import HashingEmbedder, ScriptedGenerator
from tactful.runtime import start_runtime
from tactful.server import listening_socket
from tactful.telemetry.tracing import traces_url


@dataclass
class Collector:
    """What an OTLP/HTTP collector received."""

    url: str = ""
    paths: list[str] = field(default_factory=list)
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)

    def spans(self) -> dict[str, dict[str, object]]:
        """Span name -> the resource's service.name and the span's attributes."""
        found: dict[str, dict[str, object]] = {}
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        found[span.name] = {
                            "service": resource.get("service.name"),
                            "parent": bytes(span.parent_span_id),
                        }
        return found


@contextmanager
def collector() -> Iterator[Collector]:
    received = Collector()
    app = FastAPI()

    @app.post("/{path:path}")
    async def export(path: str, request: Request) -> Response:
        received.paths.append("/" + path)
        received.requests.append(ExportTraceServiceRequest.FromString(await request.body()))
        body = ExportTraceServiceResponse().SerializeToString()
        return Response(body, media_type="application/x-protobuf")

    sock = listening_socket("127.0.0.1", 0)
    received.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "collector did not start"
            time.sleep(0.01)
        yield received
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


def test_the_endpoint_is_a_base_url_or_the_traces_url() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_url("https://c.example/otlp/v1/traces") == "https://c.example/otlp/v1/traces"


def test_the_endpoint_must_be_an_http_url() -> None:
    with pytest.raises(ValueError, match="otel_endpoint"):
        tactful.Settings(otel_endpoint="collector:4318")
    assert tactful.Settings(otel_endpoint="").otel_endpoint is None


async def test_a_turn_s_spans_reach_the_collector() -> None:
    model = ScriptedGenerator(
        {
            "match": lambda c: answer_listed(c.prompt.user, lambda g: "asks"),
            "compose": lambda c: ReplyAnswer(message="Five days."),
        }
    )
    with collector() as received:
        settings = tactful.Settings(otel_endpoint=received.url)
        async with tactful.Server(
            transient=True, embedder=HashingEmbedder(), generator=model, settings=settings
        ) as s:
            agent = await s.create_agent("Support")
            await agent.create_guideline("the customer asks about a refund", "say 5 days")
            session = await s.create_session(agent)
            await s.send(session, "where is my refund?")
        # Closing the server sent what the batch still held.
        spans = received.spans()
    assert set(received.paths) == {"/v1/traces"}
    assert {"tactful.turn", "tactful.stage.match", "chat scripted"} <= set(spans)
    assert {s["service"] for s in spans.values()} == {"tactful"}
    assert spans["tactful.turn"]["parent"] == b""
    assert spans["tactful.stage.match"]["parent"] != b""


async def test_without_the_sdk_the_endpoint_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if the otel extra were not installed: importing the SDK fails.
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    settings = tactful.Settings(transient=True, otel_endpoint="http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match=r"tactful\[otel\]"):
        await start_runtime(settings, embedder=HashingEmbedder(), offline=True)
