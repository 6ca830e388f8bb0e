"""OpenTelemetry's SDK for the ``otel_endpoint`` setting: the turn's spans, batched, sent over
OTLP/HTTP to a collector, with the service name "tactful" (docs/telemetry.md).

Only used when the setting is given; it needs the ``otel`` extra
(``pip install 'tactful[otel]'``). The standard ``OTEL_*`` variables still apply (headers,
timeout, compression, sampler, resource attributes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.trace import Tracer

from tactful.errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

TRACES_PATH = "/v1/traces"
SERVICE_NAME = "tactful"


def traces_url(endpoint: str) -> str:
    """Where spans are sent: the collector's base URL (``http://collector:4318``) with the
    OTLP traces path, unless the endpoint already ends with it."""
    base = endpoint.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


class Tracing:
    """A tracer provider of its own (the process's global one is left alone), exporting in a
    background thread; ``close`` sends what is left."""

    def __init__(self, endpoint: str) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as e:
            raise ConfigurationError(
                "otel_endpoint is set but OpenTelemetry's SDK and OTLP exporter are not "
                f"installed ({e}): pip install 'tactful[otel]', or unset TACTFUL_OTEL_ENDPOINT"
            ) from None
        self.endpoint = traces_url(endpoint)
        # Resource.create adds OTEL_RESOURCE_ATTRIBUTES; the service name given here wins.
        self.provider: TracerProvider = TracerProvider(
            resource=Resource.create({"service.name": SERVICE_NAME}),
            shutdown_on_exit=False,
        )
        self.provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=self.endpoint))
        )

    @property
    def tracer(self) -> Tracer:
        return self.provider.get_tracer("tactful")

    def close(self) -> None:
        """Export the spans still queued, and stop the exporter's thread."""
        self.provider.shutdown()
