"""A small orders API built with FastAPI, for the OpenAPI tool service tests.

``serve_openapi_service`` runs it in a real uvicorn server on a free 127.0.0.1 port in a
background thread; its spec is at ``/openapi.json`` (OpenAPI 3.1, as FastAPI emits it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import PlainTextResponse, RedirectResponse
from pydantic import BaseModel, Field

from tactful.server import listening_socket


class Order(BaseModel):
    """An order as the back office knows it."""

    order_id: str
    status: str
    total: float
    items: list[str] = Field(default_factory=list)


class RefundItem(BaseModel):
    """One line of a refund."""

    sku: str
    quantity: int = 1


class RefundRequest(BaseModel):
    """What to refund and why."""

    amount: float = Field(gt=0, description="Amount to refund, in the order's currency")
    reason: str
    items: list[RefundItem] = Field(default_factory=list)
    note: str | None = None


class Refund(BaseModel):
    """A refund that was granted."""

    refund_id: str
    order_id: str
    amount: float
    reason: str
    items: list[RefundItem]
    note: str | None
    request_id: str | None


ORDERS = {
    "A1": Order(order_id="A1", status="shipped", total=42.5, items=["kettle"]),
    # An id that only survives the trip if the client encodes its path parameters.
    "gift card #7/b?": Order(order_id="gift card #7/b?", status="processing", total=25.0),
}


@dataclass
class OrdersState:
    """What the tests read back: every refund granted and every request received, in order;
    and where ``GET /moved`` redirects to."""

    refunds: list[Refund] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    # The headers of each request, in the same order.
    headers: list[dict[str, str]] = field(default_factory=list)
    resets: int = 0
    moved_to: str = "/health"


def create_app(state: OrdersState) -> FastAPI:
    app = FastAPI(title="Orders", version="1.0.0")

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Response:
        state.requests.append(f"{request.method} {request.url.path}")
        state.headers.append(dict(request.headers))
        response: Response = await call_next(request)
        return response

    @app.post("/admin/reset", summary="Reset the back office", operation_id="reset")
    async def reset() -> dict[str, bool]:
        """What an internal service must never receive from a tool call it did not allow."""
        state.resets += 1
        return {"reset": True}

    @app.get("/moved", summary="Moved elsewhere", operation_id="moved")
    async def moved() -> RedirectResponse:
        return RedirectResponse(state.moved_to, status_code=302)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/orders/{order_id:path}/items", summary="List an order's items")
    async def order_items(order_id: str) -> list[str]:
        return _order(order_id).items

    @app.get("/orders/{order_id:path}", summary="Get an order", operation_id="get_order")
    async def get_order(
        order_id: str,
        include_items: Annotated[bool, Query(description="Include the order's items")] = True,
    ) -> Order:
        """Look an order up by its id."""
        order = _order(order_id)
        return order if include_items else order.model_copy(update={"items": []})

    @app.post(
        "/orders/{order_id}/refunds",
        summary="Refund an order",
        operation_id="refund_order",
        status_code=201,
    )
    async def refund_order(
        order_id: str,
        request: RefundRequest,
        x_request_id: Annotated[str | None, Header()] = None,
    ) -> Refund:
        order = _order(order_id)
        if request.amount > order.total:
            raise HTTPException(409, f"Refund {request.amount} exceeds the order total")
        refund = Refund(
            refund_id=f"R{len(state.refunds) + 1}",
            order_id=order.order_id,
            amount=request.amount,
            reason=request.reason,
            items=request.items,
            note=request.note,
            request_id=x_request_id,
        )
        state.refunds.append(refund)
        return refund

    @app.delete("/orders/{order_id}", status_code=204)
    async def delete_order(order_id: str) -> None:
        _order(order_id)

    @app.get("/text", response_class=PlainTextResponse)
    async def text() -> str:
        return "plain words"

    @app.get("/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("the database is down")

    return app


def _order(order_id: str) -> Order:
    order = ORDERS.get(order_id)
    if order is None:
        raise HTTPException(404, f"Order {order_id} not found")
    return order


@dataclass
class Served:
    """A running orders API."""

    base_url: str
    state: OrdersState
    app: FastAPI

    @property
    def spec_url(self) -> str:
        return f"{self.base_url}/openapi.json"


@contextmanager
def serve_openapi_service(startup_timeout_s: float = 5.0) -> Iterator[Served]:
    """Run the orders API on a free 127.0.0.1 port in a real uvicorn server; yield it."""
    state = OrdersState()
    app = create_app(state)
    # Bind first and hand uvicorn the socket: no race for the port between choosing and binding.
    sock = listening_socket("127.0.0.1", 0)  # TCP_NODELAY on its connections, as tactful's
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="off",
        ws="none",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="openapi-orders", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("openapi_service: uvicorn did not start")
            time.sleep(0.01)
        yield Served(base_url=f"http://127.0.0.1:{port}", state=state, app=app)
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
