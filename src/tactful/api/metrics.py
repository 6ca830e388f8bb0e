"""``/metrics``: Prometheus metrics of this process's turns and model calls (our extension).

Present when ``metrics_enabled`` (the default). Admin keys only in production: Prometheus sends
one as a bearer token (``authorization: {credentials: tfk_...}`` in its scrape config). The
families are listed in docs/telemetry.md.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse

from tactful.api.auth import Role, allow
from tactful.api.runtime import RuntimeDep

router = APIRouter(tags=["metrics"])

EXPOSITION = {
    200: {
        "description": "Prometheus text format (OpenMetrics when the Accept header asks for it)",
        "content": {
            "text/plain": {"schema": {"type": "string"}},
            "application/openmetrics-text": {"schema": {"type": "string"}},
        },
    }
}


@router.get(
    "/metrics",
    dependencies=[Depends(allow(Role.ADMIN))],
    responses=EXPOSITION,  # type: ignore[arg-type]
    response_class=PlainTextResponse,
)
async def read_metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Turns, stage and model-call latencies, model calls and errors per provider, tokens and
    cost, counted by this process since it started."""
    if runtime.metrics is None:
        return PlainTextResponse("metrics are off (metrics_enabled is false)\n", status_code=404)
    body, content_type = runtime.metrics.exposition(request.headers.get("accept"))
    return Response(body, media_type=content_type)
