"""The Voltmart conversation that tests/cassettes/voltmart.json records: the same server and the
same customer messages for the recorder (record_voltmart.py) and the replay test.

The server is the Voltmart example on the real offline embedder, serving HTTP on loopback, with
its order database seeded on a pinned day: tool results (delivery dates) and hence the prompts
are the same on every run, which a replay needs.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from types import ModuleType

import tactful
from tactful.agent_files import import_file
from tactful.client import TactfulClient, TurnResult
from tactful.llm.base import Generator

ROOT = Path(__file__).resolve().parents[2]
AGENT_FILE = ROOT / "examples" / "voltmart" / "agent.py"
CASSETTE = Path(__file__).resolve().with_name("voltmart.json")
RECORD_COMMAND = "python tests/cassettes/record_voltmart.py (docs/cassettes.md)"
# The order database's clock: a Friday; VM10234568 shipped and is due 3 days later.
TODAY = date(2025, 3, 14)
AGENT_ID = "voltmart-support"

# Asks where an order is (the tool cannot run yet), gives the number (it runs), asks about
# shipping (a glossary term), then thanks and says goodbye.
CUSTOMER_MESSAGES = (
    "Hi! Where is my order? It still hasn't arrived.",
    "It's VM10234568",
    "Can I get express shipping on my next order? How much is it?",
    "Great, thanks for your help! That's all for today.",
)


def example() -> ModuleType:
    """The Voltmart example module, imported by path as the CLI does."""
    module, _ = import_file(AGENT_FILE)
    return module


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def voltmart_server(generator: Generator, folder: Path) -> AsyncIterator[tactful.Server]:
    """A Voltmart server answering with ``generator`` on a free loopback port; its order
    database is a file in ``folder``, seeded on ``TODAY``."""
    voltmart = example()
    database = folder / "voltmart-orders.db"
    seeded = voltmart.orders.OrderStore(database, today=lambda: TODAY)
    await seeded.order("VM10234568")  # creates and seeds the file
    await seeded.close()
    before = os.environ.get(voltmart.orders.DB_ENV)
    os.environ[voltmart.orders.DB_ENV] = str(database)
    try:
        async with tactful.Server(
            transient=True, generator=generator, host="127.0.0.1", port=_free_port()
        ) as server:
            await voltmart.define(server)
            await server.start_http()
            yield server
    finally:
        if before is None:
            os.environ.pop(voltmart.orders.DB_ENV, None)
        else:
            os.environ[voltmart.orders.DB_ENV] = before


async def hold_conversation(url: str) -> tuple[str, list[TurnResult]]:
    """A new session with Voltmart Support over the HTTP API, one turn per customer message;
    returns the session's id and the turns."""
    async with TactfulClient(url) as client:
        session = await client.create_session(AGENT_ID, title="cassette")
        turns = [await client.send(session.id, text, timeout=60) for text in CUSTOMER_MESSAGES]
        return session.id, turns
