"""A real MCP server for the MCP tool service tests, built with the official SDK's ``MCPServer``.

Run it over stdio (``python tests/tools/mcp_server.py stdio``) or as streamable HTTP on
127.0.0.1 (``python tests/tools/mcp_server.py http PORT``, endpoint ``/mcp``). The tests start
it as a subprocess both ways: through ``MCPService.stdio`` itself, and on a free loopback port
for HTTP so that a test can stop and restart it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel

# CRITICAL: the SDK logs failing tools with rich tracebacks, slow to render and noisy here.
server = MCPServer("orders-test", log_level="CRITICAL")


class Order(BaseModel):
    """An order as the shop's back office knows it."""

    order_id: str
    status: str
    total: float
    items: list[str]


ORDERS = {
    "A1": Order(order_id="A1", status="shipped", total=42.5, items=["kettle"]),
    "B2": Order(order_id="B2", status="processing", total=9.99, items=["cable", "plug"]),
}


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def find_order(order_id: str) -> Order:
    """Find an order by its id."""
    order = ORDERS.get(order_id)
    if order is None:
        # The SDK passes a ToolError's message on to the client; other exceptions it hides.
        raise ToolError(f"no order {order_id!r}")
    return order


@server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
def cancel_order(order_id: str, reason: str = "") -> dict[str, str]:
    """Cancel an order."""
    return {"order_id": order_id, "status": "cancelled", "reason": reason}


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@server.tool(structured_output=False)
def greet(name: str) -> str:
    """Greet someone (text content only, no structured output)."""
    return f"Hello, {name}!"


@server.tool()
def fail() -> str:
    """Always fails."""
    raise RuntimeError("the warehouse is on fire")


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer: for timeouts."""
    await anyio.sleep(seconds)
    return "done"


@server.tool()
def whoami() -> int:
    """This server's process id: lets a test check that the process is gone."""
    return os.getpid()


@server.tool()
def crash() -> str:
    """Exit the server process at once, mid-request."""
    os._exit(3)


def main(argv: list[str]) -> None:
    kind = argv[1] if len(argv) > 1 else "stdio"
    if kind == "stdio":
        server.run("stdio")
    elif kind == "http":
        options: dict[str, Any] = {"host": "127.0.0.1", "port": int(argv[2])}
        server.run("streamable-http", **options)
    else:
        raise SystemExit(f"usage: {argv[0]} stdio | http PORT")


if __name__ == "__main__":
    main(sys.argv)
