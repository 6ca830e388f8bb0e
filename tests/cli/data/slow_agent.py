"""An agent whose turn takes as long as the test wants, for killing its server mid-turn.

``SLOW_AGENT_MARKS`` is a folder: each call of the tool leaves ``order-<n>`` there, and the
retriever that runs after it leaves ``retriever-<n>``. ``SLOW_TOOL_S`` and
``SLOW_RETRIEVER_S`` say how long each then sleeps (0 by default).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import tactful


def _mark(kind: str) -> None:
    marks = Path(os.environ["SLOW_AGENT_MARKS"])
    marks.mkdir(parents=True, exist_ok=True)
    (marks / f"{kind}-{len(list(marks.glob(f'{kind}-*')))}").write_text(kind)


@tactful.tool(consequential=True)
async def place_order(context: tactful.ToolContext) -> tactful.ToolResult:
    """Place the customer's order."""
    _mark("order")
    await asyncio.sleep(float(os.environ.get("SLOW_TOOL_S", "0")))
    return tactful.ToolResult(data={"order": "ORD-1"}, fields={"order_number": "ORD-1"})


async def slow_notes(context: tactful.RetrieverContext) -> str:
    _mark("retriever")
    await asyncio.sleep(float(os.environ.get("SLOW_RETRIEVER_S", "0")))
    return "nothing to add"


async def define(server: tactful.Server) -> tactful.Agent:
    agent = await server.create_agent(
        "Orders", id="orders", no_match_reply="I can only place orders."
    )
    placed = await agent.create_canned_response(
        "Your order {{order_number}} is placed.", id="placed"
    )
    guideline = await agent.create_guideline(
        condition="the customer wants to place an order",
        action="place the order",
        id="place",
        examples=["please place my order", "I want to place an order"],
        tools=[place_order],
        canned_responses=[placed],
    )
    agent.attach_retriever(slow_notes, guideline=guideline)
    return agent
