"""MCPService against a real MCP server (tests/tools/mcp_server.py), over stdio and HTTP.

Over stdio the service starts the server itself; over streamable HTTP the tests run it on a
free loopback port. Down servers, bad commands and slow tools must all end in a ``ToolError``
quickly, and the next call must connect again.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tactful.tools.base import ToolContext, ToolError
from tactful.tools.mcp import MCPService
from tactful.tools.outbound import OutboundPolicy

SERVER = str(Path(__file__).with_name("mcp_server.py"))
CONTEXT = ToolContext(agent_id="a", session_id="s", customer_id="c")
# The test servers listen on loopback, which tool services reach only when allowed explicitly.
LOOPBACK = OutboundPolicy(["127.0.0.1"])


def stdio_service(**options: float) -> MCPService:
    return MCPService.stdio("orders", sys.executable, [SERVER, "stdio"], **options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_http_server(port: int, startup_timeout_s: float = 10.0) -> subprocess.Popen[bytes]:
    """``mcp_server.py http PORT`` as a subprocess, once it accepts connections."""
    process = subprocess.Popen(
        [sys.executable, SERVER, "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + startup_timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop(process)
                raise RuntimeError("the MCP test server did not start") from None
            time.sleep(0.02)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    port = free_port()
    process = start_http_server(port)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop(process)


async def pid_of(service: MCPService) -> int:
    result = await service.call("whoami", {}, CONTEXT)
    pid: int = result.data["result"]
    return pid


# --- stdio ---------------------------------------------------------------------------------


async def test_stdio_lists_tools_and_calls_them() -> None:
    service = stdio_service()
    try:
        specs = {spec.name: spec for spec in await service.list_tools()}
        assert {"find_order", "add", "greet", "fail", "cancel_order"} <= set(specs)
        find = specs["find_order"]
        assert find.id == "orders:find_order"
        assert find.service_name == "orders"
        assert find.description == "Find an order by its id."
        assert find.parameters["type"] == "object"
        assert find.parameters["properties"]["order_id"]["type"] == "string"
        assert find.required == ["order_id"]
        assert specs["add"].required == ["a", "b"]
        assert specs["add"].parameters["properties"]["b"]["type"] == "integer"
        # Annotations: read-only is not consequential, a declared destructive tool is.
        assert find.consequential is False
        assert specs["cancel_order"].consequential is True
        assert specs["add"].consequential is False

        found = await service.call("find_order", {"order_id": "A1"}, CONTEXT)
        assert found.data == {
            "order_id": "A1",
            "status": "shipped",
            "total": 42.5,
            "items": ["kettle"],
        }
        assert found.metadata["service"] == "orders"
        # Structured content wins over text; a text-only tool answers its text.
        assert (await service.call("add", {"a": 2, "b": 3}, CONTEXT)).data == {"result": 5}
        assert (await service.call("greet", {"name": "Ana"}, CONTEXT)).data == "Hello, Ana!"

        with pytest.raises(
            ToolError, match=r"MCP service 'orders': tool 'find_order' failed: .*'Z9'"
        ):
            await service.call("find_order", {"order_id": "Z9"}, CONTEXT)
        with pytest.raises(ToolError, match=r"tool 'fail' failed"):
            await service.call("fail", {}, CONTEXT)
        with pytest.raises(ToolError, match=r"tool 'nope' failed: Unknown tool"):
            await service.call("nope", {}, CONTEXT)
        with pytest.raises(ToolError, match=r"tool 'add' failed: .*validation"):
            await service.call("add", {"a": "x"}, CONTEXT)

        # Concurrent calls share the one session (and so the one server process).
        pids = await asyncio.gather(*(pid_of(service) for _ in range(5)))
        assert len(set(pids)) == 1
    finally:
        await service.close()


async def test_close_stops_the_server_and_a_later_call_connects_again() -> None:
    service = stdio_service()
    pid = await pid_of(service)
    assert not process_gone(pid)

    # A call in flight in another task when the service closes: a ToolError, not a hang.
    in_flight = asyncio.create_task(service.call("slow", {"seconds": 30}, CONTEXT))
    await asyncio.sleep(0.2)
    await asyncio.wait_for(service.close(), 6)
    assert process_gone(pid)
    with pytest.raises(ToolError, match=r"MCP service 'orders' was closed"):
        await asyncio.wait_for(in_flight, 2)

    try:
        again = await pid_of(service)
        assert again != pid
    finally:
        await service.close()
    assert process_gone(again)
    await service.close()  # closing twice is harmless


async def test_a_server_that_dies_mid_call_is_an_error_then_restarts() -> None:
    service = stdio_service()
    try:
        pid = await pid_of(service)
        with pytest.raises(ToolError, match=r"MCP service 'orders' is unreachable .*'crash'"):
            await service.call("crash", {}, CONTEXT)
        assert process_gone(pid)
        assert await pid_of(service) != pid
    finally:
        await service.close()


async def test_a_slow_tool_times_out_and_the_session_survives() -> None:
    service = stdio_service(timeout_s=0.5)
    try:
        pid = await pid_of(service)
        with pytest.raises(ToolError, match=r"did not answer 'slow' within 0.5s"):
            await asyncio.wait_for(service.call("slow", {"seconds": 10}, CONTEXT), 3)
        assert await pid_of(service) == pid
    finally:
        await service.close()


async def test_a_command_that_does_not_exist_is_a_quick_tool_error() -> None:
    service = MCPService.stdio("ghost", "tactful-no-such-mcp-server", ["--flag"])
    with pytest.raises(ToolError) as caught:
        await asyncio.wait_for(service.list_tools(), 3)
    message = str(caught.value)
    assert message.startswith(
        "MCP service 'ghost' is unreachable (tactful-no-such-mcp-server --flag)"
    )
    assert "No such file or directory" in message
    # And again on the next call: every call tries to connect afresh.
    with pytest.raises(ToolError, match="unreachable"):
        await service.call("add", {"a": 1, "b": 2}, CONTEXT)
    await service.close()


async def test_a_server_that_crashes_at_start_is_quoted() -> None:
    code = "import sys; sys.stderr.write('config file orders.toml is missing\\n'); sys.exit(2)"
    service = MCPService.stdio("broken", sys.executable, ["-c", code])
    with pytest.raises(ToolError) as caught:
        await service.call("add", {}, CONTEXT)
    message = str(caught.value)
    assert message.startswith("MCP service 'broken' is unreachable")
    assert "config file orders.toml is missing" in message
    await service.close()


async def test_a_server_that_never_answers_times_out_connecting() -> None:
    # Reads its stdin and says nothing, like a program that is not an MCP server.
    code = "import sys; sys.stdin.read()"
    service = MCPService.stdio("mute", sys.executable, ["-c", code], connect_timeout_s=0.5)
    with pytest.raises(
        ToolError, match=r"MCP service 'mute' is unreachable .*no answer within 0.5s"
    ):
        await asyncio.wait_for(service.list_tools(), 3)
    await service.close()


async def test_close_while_connecting_does_not_wait_for_the_connect_timeout() -> None:
    code = "import sys; sys.stdin.read()"
    service = MCPService.stdio("mute", sys.executable, ["-c", code], connect_timeout_s=30)
    connecting = asyncio.create_task(service.list_tools())
    await asyncio.sleep(0.3)
    await asyncio.wait_for(service.close(), 3)
    with pytest.raises(ToolError, match=r"MCP service 'mute' was closed while connecting"):
        await asyncio.wait_for(connecting, 2)


# --- streamable HTTP -----------------------------------------------------------------------


async def test_http_lists_and_calls(http_url: str) -> None:
    service = MCPService.http(
        "orders", http_url, headers={"x-tactful-test": "yes"}, outbound=LOOPBACK
    )
    try:
        specs = {spec.name: spec for spec in await service.list_tools()}
        assert specs["find_order"].parameters["properties"]["order_id"]["type"] == "string"
        result = await service.call("find_order", {"order_id": "B2"}, CONTEXT)
        assert result.data["items"] == ["cable", "plug"]
        assert (await service.call("add", {"a": 20, "b": 22}, CONTEXT)).data == {"result": 42}
        with pytest.raises(ToolError, match=r"tool 'fail' failed"):
            await service.call("fail", {}, CONTEXT)
    finally:
        await service.close()


async def test_http_connects_only_where_its_policy_allows(http_url: str) -> None:
    # Used on its own, a service gets the default policy: public addresses only. The check
    # is made as the connection opens, so the running server sees nothing.
    service = MCPService.http("orders", http_url, connect_timeout_s=2)
    port = http_url.split(":")[2].split("/")[0]
    try:
        with pytest.raises(ToolError) as caught:
            await asyncio.wait_for(service.call("add", {"a": 1, "b": 2}, CONTEXT), 3)
    finally:
        await service.close()
    assert str(caught.value) == (
        f"MCP service 'orders' is unreachable ({http_url}): 127.0.0.1:{port} may not be "
        "reached: 127.0.0.1 is a loopback address, which only an entry naming it allows; to "
        f'allow it, add "127.0.0.1:{port}" (this port) or "127.0.0.1" to outbound_hosts '
        "(TACTFUL_OUTBOUND_HOSTS)"
    )
    await service.use_outbound(LOOPBACK)
    try:
        assert (await service.call("add", {"a": 1, "b": 2}, CONTEXT)).data == {"result": 3}
    finally:
        await service.close()


async def test_http_server_down_is_a_quick_tool_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    service = MCPService.http("orders", url, connect_timeout_s=2, outbound=LOOPBACK)
    with pytest.raises(ToolError) as caught:
        await asyncio.wait_for(service.call("add", {"a": 1, "b": 2}, CONTEXT), 3)
    assert str(caught.value).startswith(f"MCP service 'orders' is unreachable ({url}): ")
    assert "ConnectError" in str(caught.value)
    await service.close()


async def test_http_reconnects_after_the_server_restarts() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    service = MCPService.http("orders", url, timeout_s=5, connect_timeout_s=2, outbound=LOOPBACK)
    process = start_http_server(port)
    try:
        assert (await service.call("add", {"a": 1, "b": 1}, CONTEXT)).data == {"result": 2}
        stop(process)
        with pytest.raises(ToolError, match=r"MCP service 'orders' is unreachable"):
            await service.call("add", {"a": 1, "b": 1}, CONTEXT)
        process = start_http_server(port)
        assert (await service.call("add", {"a": 2, "b": 2}, CONTEXT)).data == {"result": 4}
    finally:
        await service.close()
        stop(process)
