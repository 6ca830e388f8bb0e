"""The recorded Voltmart conversation (voltmart.json) replayed through a real server's HTTP API,
with no model and no network: the same replies, the same tool call, every recording used.

When this fails after a deliberate change to the engine's prompts or the Voltmart example,
re-record: ``python tests/cassettes/record_voltmart.py`` (docs/cassettes.md).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from voltmart_conversation import CASSETTE, CUSTOMER_MESSAGES, hold_conversation, voltmart_server

from tactful.client import TactfulClient
from tactful.llm.cassette import Cassette, ReplayingGenerator

EXPECTED_REPLIES = [
    "Sorry your order hasn't turned up yet! You can follow it live under Account > Order "
    "History. If you send me your order number (VM followed by 8 digits), I'll check its "
    "latest status for you.",
    "Good news: your order VM10234568 (Lumen 27-inch 4K monitor) has shipped and should arrive "
    "by Monday, March 17. You can follow it live under Account > Order History.",
    "Yes! Express shipping delivers in 2 business days for $12.99, and Next Day is $24.99 when "
    "you order by 2 pm ET on a business day. You choose the speed at checkout.",
    "You're welcome, happy to help! Enjoy your new monitor, and start a new chat anytime if you "
    "need us.",
]
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture
def outbound(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Refuses (and lists) every connection or name lookup that is not on loopback."""
    attempts: list[Any] = []
    connect, connect_ex, getaddrinfo = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.getaddrinfo,
    )

    def refused(address: Any) -> bool:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in LOOPBACK:
            attempts.append(address)
            return True
        return False

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        if refused(address):
            raise ConnectionRefusedError(f"test: no outbound connection to {address}")
        connect(sock, address)

    def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
        if refused(address):
            raise ConnectionRefusedError(f"test: no outbound connection to {address}")
        return connect_ex(sock, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and refused((name, None)):
            raise socket.gaierror(f"test: no name lookup for {name}")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield attempts


def test_the_guard_refuses_outbound_connections(outbound: list[Any]) -> None:
    with pytest.raises(ConnectionRefusedError), socket.socket() as sock:
        sock.connect(("192.0.2.1", 443))
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("api.openai.com", 443)
    assert outbound == [("192.0.2.1", 443), ("api.openai.com", None)]


def test_the_cassette_is_small_and_holds_the_whole_conversation() -> None:
    assert CASSETTE.stat().st_size < 200_000
    cassette = Cassette.load(CASSETTE)
    assert [i.stage for i in cassette.interactions] == ["match", "compose"] * 4
    # One match and one compose call per customer message, each named by that message.
    assert [i.excerpt for i in cassette.interactions] == [
        m for m in CUSTOMER_MESSAGES for _ in range(2)
    ]
    replies = [i.answer["message"] for i in cassette.interactions if i.stage == "compose"]
    assert replies == EXPECTED_REPLIES


@pytest.mark.embedder
async def test_the_recorded_conversation_replays_with_no_network(
    outbound: list[Any], tmp_path: Path
) -> None:
    replayer = ReplayingGenerator(CASSETTE)
    # Nothing in it could reach a provider: no SDK client, no HTTP client.
    assert not [v for v in vars(replayer).values() if "client" in type(v).__name__.lower()]
    async with voltmart_server(replayer, tmp_path) as server:
        session_id, turns = await hold_conversation(server.url)
        async with TactfulClient(server.url) as client:
            traces = [await client.get_trace(t.trace_id, wait=2) for t in turns]
            tool_events = await client.read_events(session_id, kinds=["tool"])

    assert [t.error for t in turns] == [None] * 4
    assert [[r.message for r in t.replies] for t in turns] == [[r] for r in EXPECTED_REPLIES]
    # Every turn on the model tier, from the recording, with nothing degraded.
    model = replayer.model_name  # the recorded one
    for trace in traces:
        assert trace.tier == f"model:{model}"
        assert [(c.stage, c.ok, c.model) for c in trace.model_calls] == [
            ("match", True, model),
            ("compose", True, model),
        ]
        assert trace.composition.degraded is None
    recorded = Cassette.load(CASSETTE).interactions
    assert [c.prompt_tokens for t in traces for c in t.model_calls] == [
        i.usage.prompt_tokens for i in recorded
    ]
    # The model's matching drove the turns: tracking, then the looked-up status.
    assert "vm-orders-track" in traces[0].final_guideline_ids
    assert "vm-orders-track-lookup" in traces[1].final_guideline_ids
    assert "vm-shipping-options" in traces[2].final_guideline_ids
    assert {"vm-thanks", "vm-goodbye"} <= set(traces[3].final_guideline_ids)
    # The tool ran once, in the second turn, on the number the model took from the customer.
    calls = [c for e in tool_events for c in e.data["tool_calls"]]
    assert [(c["tool_id"], c["arguments"]) for c in calls] == [
        ("voltmart:order_status", {"order_id": "VM10234568"})
    ]
    assert calls[0]["result"]["data"]["status"] == "shipped"
    assert tool_events[0].trace_id == turns[1].trace_id
    # The conversation took exactly the recorded path, and nothing left the machine.
    assert replayer.unused() == []
    assert outbound == []


@pytest.mark.embedder
async def test_a_call_missing_from_the_cassette_degrades_its_turn_and_says_why(
    tmp_path: Path,
) -> None:
    cassette = json.loads(CASSETTE.read_text())
    del cassette["interactions"][-1]  # the reply to "Great, thanks ..."
    shortened = tmp_path / "shortened.json"
    shortened.write_text(json.dumps(cassette))
    replayer = ReplayingGenerator(shortened)
    async with voltmart_server(replayer, tmp_path) as server:
        _, turns = await hold_conversation(server.url)
        async with TactfulClient(server.url) as client:
            last = await client.get_trace(turns[-1].trace_id, wait=2)

    replies = [[r.message for r in t.replies] for t in turns]
    assert replies[:3] == [[r] for r in EXPECTED_REPLIES[:3]]
    # The turn still answers (from the canned responses), as with a failing model.
    [reply] = turns[-1].replies
    assert reply.message != EXPECTED_REPLIES[-1]
    assert "model failed while composing" in (last.composition.degraded or "")
    [failed] = [c for c in last.model_calls if not c.ok]
    assert failed.stage == "compose"
    assert failed.error is not None
    assert "no recording for the generate call of stage 'compose' (ReplyAnswer)" in failed.error
    assert CUSTOMER_MESSAGES[-1] in failed.error
    assert "python tests/cassettes/record_voltmart.py" in failed.error
    assert replayer.unused() == []
