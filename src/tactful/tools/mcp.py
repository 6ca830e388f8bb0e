"""MCP servers as tool services, through the official ``mcp`` SDK (stdio or streamable HTTP).

A service keeps one session with its server, opened on first use. The SDK's transports are
anyio task groups that must be exited by the task that entered them, so each session is owned
by a background task: any task may call tools on it, and any task may close it. A server that
cannot be reached, or a session that breaks, becomes a ``ToolError`` naming the service, and
the next call connects afresh. Every wait is bounded: connecting by ``connect_timeout_s``,
each request by ``timeout_s``. Over HTTP, every connection goes only where the service's
``OutboundPolicy`` allows (``tactful.tools.outbound``); a stdio server is a command the program
runs, with no URL to check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO, TypeVar

import anyio
import httpx2
import mcp_types
from mcp import Client, StdioServerParameters
from mcp.client import Transport
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from tactful.domain import ToolServiceKind, ToolSpec
from tactful.domain.tools import tool_id
from tactful.tools.base import ToolContext, ToolError, ToolResult, ToolService
from tactful.tools.outbound import OutboundPolicy, OutboundRefused

__all__ = ["MCPService"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Pages of tools/list to walk before giving up on a server that paginates forever.
_MAX_TOOL_PAGES = 100
# The SDK times requests out itself; this margin only catches a transport that blocks a send.
_REQUEST_MARGIN_S = 2.0
# The SDK bounds its own teardown (a stdio server gets ~2 s to exit, then is killed).
_TEARDOWN_TIMEOUT_S = 10.0
# How long past its connect deadline a session may take to report the failure itself.
_SETTLE_MARGIN_S = 0.25
# After a request loses its connection: how long to wait for the session to say why.
_FAILURE_REASON_WAIT_S = 1.0
# What of a stdio server's stderr error messages quote.
_STDERR_KEEP_BYTES = 4000
_STDERR_QUOTE_LINES = 3
_STDERR_QUOTE_CHARS = 400
# After the server is gone: how long to wait for the rest of its stderr.
_STDERR_DRAIN_S = 0.5


class MCPService(ToolService):
    """The tools of one MCP server.

    Build it with ``MCPService.stdio(...)`` (the service starts the server as a subprocess and
    owns it) or ``MCPService.http(...)`` (streamable HTTP). Nothing connects until the first
    ``list_tools()`` or ``call()``. ``close()`` ends the session and stops a stdio server; a
    later call connects again. Over HTTP it connects only where ``outbound`` allows (default:
    public addresses); registered with a server, it follows the server's ``outbound_hosts``.
    """

    kind = ToolServiceKind.MCP

    def __init__(
        self,
        name: str,
        server: StdioServerParameters | str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        outbound: OutboundPolicy | None = None,
    ) -> None:
        """``server`` is what the SDK connects to: stdio parameters or a streamable HTTP URL."""
        if not name:
            raise ValueError("an MCP service needs a name")
        self.name = name
        self.server = server
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.outbound = outbound if outbound is not None else OutboundPolicy()
        self._session: _Session | None = None
        # Every session whose owner task still runs, the current one and any winding down.
        self._sessions: set[_Session] = set()
        self._lock = asyncio.Lock()

    @classmethod
    def stdio(
        cls,
        name: str,
        command: str,
        args: list[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        *,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
    ) -> MCPService:
        """A server the service runs as ``command *args`` and talks to over stdin/stdout.

        The SDK gives the server only a safe subset of this process's environment (``PATH``,
        ``HOME``, ...) plus ``env``. The server's stderr is logged here at INFO, and its last
        lines are quoted when the server fails.
        """
        params = StdioServerParameters(
            command=command, args=list(args or []), env=dict(env) if env else None, cwd=cwd
        )
        return cls(name, params, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s)

    @classmethod
    def http(
        cls,
        name: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        outbound: OutboundPolicy | None = None,
    ) -> MCPService:
        """A server at a streamable HTTP endpoint (e.g. ``http://host:8000/mcp``).

        ``headers`` go with every request (e.g. ``Authorization``); ``outbound`` says where it
        may connect (default: public addresses only).
        """
        return cls(
            name,
            url,
            headers=headers,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            outbound=outbound,
        )

    @property
    def where(self) -> str:
        """The server, as error messages name it: its URL or its command line."""
        if isinstance(self.server, str):
            return self.server
        return " ".join([self.server.command, *self.server.args])

    async def list_tools(self) -> list[ToolSpec]:
        """The server's tools, with their input schemas, as ``ToolSpec``s."""
        try:
            try:
                tools = await self._request(self._list_all)
            except _LostConnection as lost:
                if lost.closed:
                    raise
                # Listing changes nothing on the server, so one retry on a fresh session is safe.
                tools = await self._request(self._list_all)
        except _LostConnection as lost:
            if lost.closed:
                raise ToolError(
                    f"MCP service {self.name!r} was closed while listing tools"
                ) from None
            raise self._unreachable(lost.reason) from None
        except TimeoutError:
            raise ToolError(
                f"MCP service {self.name!r} did not list its tools within {self.timeout_s:g}s"
            ) from None
        except MCPError as exc:
            raise ToolError(
                f"MCP service {self.name!r} refused to list its tools: {exc.message}"
            ) from None
        except ToolError:
            raise
        except Exception as exc:
            # Whatever else the SDK raises is still this service failing, never a crash.
            raise ToolError(
                f"MCP service {self.name!r} failed to list its tools: {_describe(exc)}"
            ) from None
        return [self._spec(tool) for tool in tools]

    async def call(self, tool: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        """Call ``tool``; the result's structured content is the data, or else its text."""

        def send(client: Client) -> Awaitable[mcp_types.CallToolResult]:
            return client.call_tool(tool, arguments, read_timeout_seconds=self.timeout_s)

        try:
            result = await self._request(send)
        except _LostConnection as lost:
            if lost.closed:
                raise ToolError(
                    f"MCP service {self.name!r} was closed while calling {tool!r}"
                ) from None
            # Not retried: the server may have run the tool before the connection broke.
            raise self._unreachable(f"{lost.reason} (while calling {tool!r})") from None
        except TimeoutError:
            raise ToolError(
                f"MCP service {self.name!r} did not answer {tool!r} within {self.timeout_s:g}s"
            ) from None
        except MCPError as exc:
            raise ToolError(f"MCP service {self.name!r} refused {tool!r}: {exc.message}") from None
        except ToolError:
            raise
        except Exception as exc:
            # Whatever else the SDK raises is still this service failing, never a crash.
            raise ToolError(
                f"MCP service {self.name!r} failed calling {tool!r}: {_describe(exc)}"
            ) from None
        text = "\n".join(
            block.text for block in result.content if isinstance(block, mcp_types.TextContent)
        )
        if result.is_error:
            detail = text or "the tool reported an error without saying what"
            raise ToolError(f"MCP service {self.name!r}: tool {tool!r} failed: {detail}")
        meta: dict[str, Any] = {"service": self.name}
        unused = [block.type for block in result.content if block.type != "text"]
        if unused:
            # Images, audio and resources do not reach the model; the trace says they existed.
            meta["unused_content"] = unused
        if result.structured_content is not None:
            return ToolResult(data=result.structured_content, metadata=meta)
        return ToolResult(data=text if text else None, metadata=meta)

    async def close(self) -> None:
        """End the session: a stdio server has its stdin closed, then is killed if it lingers.

        Sessions that broke earlier and are still winding down are waited for too, so that no
        server process outlives ``close()``.
        """
        # No lock: closing must not wait behind a connection attempt; it ends that one too.
        session, self._session = self._session, None
        if session is not None:
            session.closed_on_request = True
        await asyncio.gather(*(each.close(force=True) for each in list(self._sessions)))

    def service_url(self) -> str:
        return self.server if isinstance(self.server, str) else ""

    def outbound_urls(self) -> list[str]:
        """The server's URL over HTTP; none over stdio."""
        return [self.server] if isinstance(self.server, str) else []

    async def use_outbound(self, policy: OutboundPolicy) -> None:
        """Connect only where ``policy`` allows; an open HTTP session is ended (the next call
        connects again under the new policy)."""
        if policy != self.outbound:
            self.outbound = policy
            if isinstance(self.server, str):
                await self.close()

    async def _request(self, send: Callable[[Client], Awaitable[T]]) -> T:
        """Send one request on the open session, mapping a broken session to ``_LostConnection``."""
        session = await self._open_session()
        try:
            async with asyncio.timeout(self.timeout_s + _REQUEST_MARGIN_S):
                return await send(session.client_or_lost())
        except MCPError as exc:
            if exc.code == mcp_types.REQUEST_TIMEOUT:
                raise TimeoutError from None
            if exc.code != mcp_types.CONNECTION_CLOSED:
                raise
            raise await self._broken(session, "the connection closed") from None
        except ValidationError as exc:
            # The server answered, but not in MCP: nothing later on this session can be trusted.
            raise await self._broken(
                session, f"it answered outside MCP: {_describe(exc)}"
            ) from None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise await self._broken(session, "the connection closed") from None
        except OSError as exc:
            raise await self._broken(session, _describe(exc)) from None

    async def _open_session(self) -> _Session:
        """The open session, connecting first if there is none or the last one broke."""
        async with self._lock:
            session = self._session
            if session is None or not session.open:
                if session is not None:
                    await session.close(wait_s=0)
                session = _Session(self)
                self._session = session
            if not await session.wait_ready():
                if self._session is session:
                    self._session = None
                if session.closed_on_request:
                    raise ToolError(f"MCP service {self.name!r} was closed while connecting")
                raise self._unreachable(session.failure or "the session ended")
            return session

    async def _broken(self, session: _Session, fallback: str) -> _LostConnection:
        """Retire a session a request found broken; say why, as far as it is known by now."""
        if self._session is session:
            self._session = None
        await session.close(wait_s=_FAILURE_REASON_WAIT_S)
        if session.closed_on_request:
            return _LostConnection("the service was closed", closed=True)
        if session.failure:
            return _LostConnection(session.failure)
        if session.stderr_quote:
            return _LostConnection(f"{fallback}; its stderr ends with: {session.stderr_quote}")
        return _LostConnection(fallback)

    async def _list_all(self, client: Client) -> list[mcp_types.Tool]:
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        for _ in range(_MAX_TOOL_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        return tools

    def _spec(self, tool: mcp_types.Tool) -> ToolSpec:
        schema = dict(tool.input_schema)
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        required = schema.get("required")
        return ToolSpec(
            id=tool_id(self.name, tool.name),
            service_name=self.name,
            name=tool.name,
            description=tool.description or tool.title or "",
            parameters=schema,
            required=[str(name) for name in required] if isinstance(required, list) else [],
            consequential=_consequential(tool.annotations),
        )

    def _unreachable(self, reason: str) -> ToolError:
        return ToolError(f"MCP service {self.name!r} is unreachable ({self.where}): {reason}")

    async def _transport(self, stack: AsyncExitStack, stderr: TextIO | None) -> Transport:
        """The SDK transport for this server; what it needs besides is entered on ``stack``."""
        if isinstance(self.server, StdioServerParameters):
            return stdio_client(self.server, errlog=stderr or sys.stderr)
        http = httpx2.AsyncClient(
            headers=self.headers,
            # The read timeout covers the server's event stream, which may idle for minutes.
            timeout=httpx2.Timeout(30.0, connect=self.connect_timeout_s, read=300.0),
            # Every connection is checked against the policy as it opens.
            transport=self.outbound.httpx2_transport(),
        )
        await stack.enter_async_context(http)
        return streamable_http_client(self.server, http_client=http)


class _Session:
    """One session with an MCP server, owned by its own task so that any task may end it."""

    def __init__(self, service: MCPService) -> None:
        self.service = service
        self.client: Client | None = None
        self.failure: str | None = None
        self.closed_on_request = False
        # The last lines of a stdio server's stderr, once the session has ended.
        self.stderr_quote = ""
        self._settled = asyncio.Event()
        self._stop = asyncio.Event()
        self._connecting: anyio.CancelScope | None = None
        self._task = asyncio.get_running_loop().create_task(
            self._own(), name=f"tactful-mcp-{service.name}"
        )
        # The service holds each session until its task ends, so close() can wait for it.
        service._sessions.add(self)
        self._task.add_done_callback(lambda _: service._sessions.discard(self))

    @property
    def open(self) -> bool:
        return self.client is not None and not self._stop.is_set() and not self._task.done()

    def client_or_lost(self) -> Client:
        if self.client is None or self._stop.is_set():
            raise anyio.ClosedResourceError
        return self.client

    async def wait_ready(self) -> bool:
        """Whether the session connected within the connect timeout.

        A failure is usually known at once (the process could not start, the port refused);
        a server that does not answer in time is reported without waiting for the SDK to
        finish stopping it, which goes on in the background.
        """
        try:
            async with asyncio.timeout(self.service.connect_timeout_s + _SETTLE_MARGIN_S):
                await self._settled.wait()
        except TimeoutError:
            self.failure = f"no answer within {self.service.connect_timeout_s:g}s"
            self._stop.set()
        return self.open

    async def close(self, *, wait_s: float = _TEARDOWN_TIMEOUT_S, force: bool = False) -> None:
        """Stop the owner task; wait up to ``wait_s`` for it to release everything.

        With ``force``, a task still running after that is cancelled: only a transport that
        ignores its own time bounds gets there.
        """
        self._stop.set()
        if self._connecting is not None and self.client is None:
            self._connecting.cancel()  # still connecting: stop that at once
        if self._task.done() or wait_s <= 0:
            return
        done, _ = await asyncio.wait({self._task}, timeout=wait_s)
        if not done and force:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=_TEARDOWN_TIMEOUT_S)

    async def _own(self) -> None:
        service = self.service
        # Windows event loops cannot read an anonymous pipe; the server's stderr goes to ours.
        capture = isinstance(service.server, StdioServerParameters) and sys.platform != "win32"
        stderr = _StderrTail(service.name) if capture else None
        connected = False
        try:
            if stderr is not None:
                await stderr.start()
            deadline = anyio.current_time() + service.connect_timeout_s
            # One scope around the whole session keeps anyio's nesting rules: the deadline
            # bounds connecting only and is lifted once the handshake is done.
            with anyio.CancelScope(deadline=deadline) as scope:
                self._connecting = scope
                async with AsyncExitStack() as stack:
                    transport = await service._transport(stack, stderr.writer if stderr else None)
                    client = await stack.enter_async_context(
                        Client(
                            transport,
                            client_info=_client_info(),
                            read_timeout_seconds=service.timeout_s,
                        )
                    )
                    scope.deadline = math.inf
                    connected = True
                    if stderr is not None:
                        stderr.spawned()
                    self.client = client
                    self._settled.set()
                    await self._stop.wait()
            if scope.cancelled_caught and not connected:
                self.failure = (
                    "closed while connecting"
                    if self._stop.is_set()
                    else f"no answer within {service.connect_timeout_s:g}s"
                )
        except Exception as exc:
            self.failure = f"the session broke: {_describe(exc)}" if connected else _describe(exc)
        finally:
            self.client = None
            if stderr is not None:
                self.stderr_quote = await stderr.finish()
                if self.failure and self.stderr_quote:
                    self.failure = f"{self.failure}; its stderr ends with: {self.stderr_quote}"
            self._settled.set()


class _StderrTail:
    """A stdio server's stderr: logged line by line, its last bytes kept for error messages."""

    def __init__(self, service_name: str) -> None:
        self._service_name = service_name
        read_fd, write_fd = os.pipe()
        self._reader = os.fdopen(read_fd, "rb", buffering=0)
        self.writer: TextIO = os.fdopen(write_fd, "w")
        self._tail = bytearray()
        self._line = bytearray()
        self._eof = asyncio.Event()
        self._transport: asyncio.ReadTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.connect_read_pipe(lambda: _TailProtocol(self), self._reader)

    def spawned(self) -> None:
        """The server holds its own copy of the pipe now; ours would keep EOF from arriving."""
        self.writer.close()

    def feed(self, data: bytes) -> None:
        self._tail += data
        del self._tail[:-_STDERR_KEEP_BYTES]
        self._line += data
        *lines, rest = self._line.split(b"\n")
        self._line = bytearray(rest)
        for line in lines:
            if line.strip():
                logger.info("MCP %s: %s", self._service_name, line.decode(errors="replace"))

    def ended(self) -> None:
        self._eof.set()

    async def finish(self) -> str:
        """Close the pipe (after a short drain) and quote its last lines."""
        self.writer.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_STDERR_DRAIN_S):
                await self._eof.wait()
        if self._transport is not None:
            self._transport.close()
        else:
            self._reader.close()
        lines = [ln.strip() for ln in self._tail.decode(errors="replace").splitlines()]
        quote = " | ".join([ln for ln in lines if ln][-_STDERR_QUOTE_LINES:])
        if len(quote) > _STDERR_QUOTE_CHARS:
            quote = "..." + quote[-_STDERR_QUOTE_CHARS:]
        return quote


class _TailProtocol(asyncio.Protocol):
    def __init__(self, tail: _StderrTail) -> None:
        self._tail = tail

    def data_received(self, data: bytes) -> None:
        self._tail.feed(data)

    def eof_received(self) -> bool | None:
        self._tail.ended()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._tail.ended()


def _client_info() -> mcp_types.Implementation:
    try:
        version = metadata.version("tactful")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree, not installed
        version = "0"
    return mcp_types.Implementation(name="tactful", version=version)


def _consequential(annotations: mcp_types.ToolAnnotations | None) -> bool:
    """Whether the server says the tool changes things for real (hints; none given = no)."""
    if annotations is None or annotations.read_only_hint is True:
        return False
    if annotations.destructive_hint is not None:
        return annotations.destructive_hint
    # The spec's default for a tool that says it is not read-only is "destructive".
    return annotations.read_only_hint is False


class _LostConnection(Exception):
    """The session broke (or was closed) under a request; the next request connects afresh."""

    def __init__(self, reason: str, *, closed: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.closed = closed


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _describe(exc: BaseException) -> str:
    """One line for what went wrong: the first real error inside (nested) exception groups."""
    leaves = [leaf for leaf in _leaves(exc) if not isinstance(leaf, asyncio.CancelledError)]
    leaf = leaves[0] if leaves else exc
    text = str(leaf).strip() or type(leaf).__name__
    if isinstance(leaf, MCPError | OutboundRefused):
        return text
    return f"{text} ({type(leaf).__name__})"
