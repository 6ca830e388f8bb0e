"""run_tools: one turn's calls validated, in parallel, cut at their timeouts, never raising."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Annotated, Any

import pytest

from tactful.domain import ToolSpec
from tactful.tools import (
    ToolArgumentsError,
    ToolCall,
    ToolContext,
    ToolError,
    ToolParam,
    ToolRegistry,
    ToolResult,
    ToolService,
    register_python,
    run_tools,
    schema_problems,
    tool,
)


def ctx() -> ToolContext:
    return ToolContext(agent_id="a1", session_id="s1", customer_id="c1")


class Rendezvous:
    """Two tools that each wait for the other: they finish only if they run at once."""

    def __init__(self) -> None:
        self.ping = asyncio.Event()
        self.pong = asyncio.Event()


def registry_with(*tools: Any) -> ToolRegistry:
    registry = ToolRegistry()
    for t in tools:
        register_python(registry, t)
    return registry


async def test_calls_run_concurrently_and_come_back_in_order() -> None:
    meet = Rendezvous()

    @tool
    async def ping(context: ToolContext) -> str:
        meet.ping.set()
        await meet.pong.wait()
        return "ping"

    @tool
    async def pong(context: ToolContext) -> str:
        meet.pong.set()
        await meet.ping.wait()
        return "pong"

    outcomes = await run_tools(
        registry_with(ping, pong),
        [ToolCall(tool_id="local:pong"), ToolCall(tool_id="local:ping")],
        ctx(),
        default_timeout_s=5,
    )
    assert [o.tool_id for o in outcomes] == ["local:pong", "local:ping"]
    assert [o.result.data if o.result else None for o in outcomes] == ["pong", "ping"]
    assert all(o.ok and not o.timed_out for o in outcomes)
    for o in outcomes:
        assert o.started <= o.ended
        assert o.duration_ms >= 0


async def test_a_hanging_tool_is_cut_at_its_timeout() -> None:
    never = asyncio.Event()

    @tool(timeout_s=0.05)
    async def hang(context: ToolContext) -> None:
        await never.wait()

    @tool
    async def hang_default(context: ToolContext) -> None:
        await never.wait()

    [own, default] = await run_tools(
        registry_with(hang, hang_default),
        [ToolCall(tool_id="local:hang"), ToolCall(tool_id="local:hang_default")],
        ctx(),
        default_timeout_s=0.05,
    )
    for outcome in (own, default):
        assert outcome.timed_out
        assert outcome.result is None
        assert outcome.error == "timed out after 0.05 s"


async def test_the_tools_own_timeout_wins_over_the_default() -> None:
    never = asyncio.Event()

    @tool(timeout_s=0.05)
    async def hang(context: ToolContext) -> None:
        await never.wait()

    [outcome] = await run_tools(
        registry_with(hang), [ToolCall(tool_id="local:hang")], ctx(), default_timeout_s=3600
    )
    assert outcome.timed_out


async def test_a_timeout_error_raised_by_the_tool_is_not_a_cut() -> None:
    @tool
    async def upstream(context: ToolContext) -> None:
        raise TimeoutError("the CRM took too long")

    [outcome] = await run_tools(
        registry_with(upstream), [ToolCall(tool_id="local:upstream")], ctx(), default_timeout_s=5
    )
    assert not outcome.timed_out
    assert outcome.error == "TimeoutError: the CRM took too long"


async def test_invalid_arguments_are_never_sent() -> None:
    entered: list[int] = []

    @tool
    async def charge(context: ToolContext, amount: int, currency: str = "EUR") -> int:
        entered.append(amount)
        return amount

    [bad, good] = await run_tools(
        registry_with(charge),
        [
            ToolCall(tool_id="local:charge", arguments={"amount": "lots", "extra": 1}),
            ToolCall(tool_id="local:charge", arguments={"amount": 3}),
        ],
        ctx(),
        default_timeout_s=5,
    )
    assert bad.error is not None
    assert bad.error.startswith("invalid arguments: ")
    assert "amount: Input should be a valid integer" in bad.error
    assert "extra: unknown argument" in bad.error
    assert bad.result is None
    assert bad.arguments == {"amount": "lots", "extra": 1}
    assert good.result == ToolResult(data=3)
    assert entered == [3]


async def test_values_outside_a_providers_choices_are_never_sent() -> None:
    entered: list[str] = []

    async def branches(context: ToolContext) -> list[str]:
        return ["north"]

    @tool
    async def visit(
        context: ToolContext, branch: Annotated[str, ToolParam(choices=branches)]
    ) -> None:
        entered.append(branch)

    [outcome] = await run_tools(
        registry_with(visit),
        [ToolCall(tool_id="local:visit", arguments={"branch": "south"})],
        ctx(),
        default_timeout_s=5,
    )
    assert outcome.error == "invalid arguments: branch: 'south' is not one of ['north']"
    assert entered == []


async def test_unknown_tools_are_an_outcome() -> None:
    [outcome] = await run_tools(
        ToolRegistry(), [ToolCall(tool_id="crm:nope")], ctx(), default_timeout_s=5
    )
    assert outcome.error == "unknown tool 'crm:nope'"
    assert not outcome.timed_out


async def test_one_failing_call_does_not_affect_the_other() -> None:
    @tool
    async def boom(context: ToolContext) -> None:
        raise ValueError("bad state")

    @tool
    async def fine(context: ToolContext) -> str:
        return "ok"

    [failed, succeeded] = await run_tools(
        registry_with(boom, fine),
        [ToolCall(tool_id="local:boom"), ToolCall(tool_id="local:fine")],
        ctx(),
        default_timeout_s=5,
    )
    assert failed.error == "ValueError: bad state"
    assert failed.result is None
    assert succeeded.result == ToolResult(data="ok")


async def test_no_calls_no_outcomes() -> None:
    assert await run_tools(ToolRegistry(), [], ctx(), default_timeout_s=5) == []


async def test_cancelling_the_caller_cancels_the_calls() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @tool
    async def slow(context: ToolContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    turn = asyncio.create_task(
        run_tools(registry_with(slow), [ToolCall(tool_id="local:slow")], ctx(), default_timeout_s=5)
    )
    await started.wait()
    turn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await turn
    assert cancelled.is_set()


# -- services that are not Python ---------------------------------------------------------------


class Remote(ToolService):
    """A stand-in for an MCP server: it checks nothing itself, and one tool breaks badly."""

    def __init__(self) -> None:
        self.name = "crm"
        self.received: list[dict[str, Any]] = []

    async def list_tools(self) -> list[ToolSpec]:
        return [
            ToolSpec(
                service_name="crm",
                name="search",
                parameters={
                    "type": "object",
                    "properties": {
                        "query": {"type": "string"},
                        "limit": {"type": "integer"},
                        "sort": {"enum": ["new", "old"]},
                    },
                    "additionalProperties": False,
                },
                required=["query"],
            ),
            ToolSpec(service_name="crm", name="crash"),
            ToolSpec(service_name="crm", name="refuse"),
        ]

    async def call(self, tool: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        if tool == "crash":
            raise ConnectionError("socket closed")
        if tool == "refuse":
            raise ToolError("HTTP 403: forbidden")
        self.received.append(arguments)
        return ToolResult(data=arguments)


async def test_other_services_are_checked_against_their_schema() -> None:
    remote = Remote()
    registry = ToolRegistry()
    await registry.register_service(remote)
    bad, good, crash, refuse = await run_tools(
        registry,
        [
            ToolCall(tool_id="crm:search", arguments={"limit": 2.5, "sort": "x", "page": 1}),
            ToolCall(tool_id="crm:search", arguments={"query": "tv", "limit": 2.0}),
            ToolCall(tool_id="crm:crash"),
            ToolCall(tool_id="crm:refuse"),
        ],
        ctx(),
        default_timeout_s=5,
    )
    assert bad.error == (
        "invalid arguments: query: missing (required); limit: expected integer (got 2.5); "
        "sort: 'x' is not one of ['new', 'old']; page: unknown argument"
    )
    assert good.ok
    assert remote.received == [{"query": "tv", "limit": 2.0}]
    assert crash.error == "ConnectionError: socket closed"
    assert refuse.error == "HTTP 403: forbidden"


class Strict(Remote):
    """A service with its own argument check and a per-tool timeout, through the port."""

    async def check_arguments(
        self, spec: ToolSpec, arguments: Mapping[str, Any], context: ToolContext
    ) -> None:
        if arguments.get("query") == "secret":
            raise ToolArgumentsError(spec.id, ["query: not allowed here"])

    def tool_timeout_s(self, tool: str) -> float | None:
        return 0.05 if tool == "crash" else None

    async def call(self, tool: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        if tool == "crash":
            await asyncio.Event().wait()
        return await super().call(tool, arguments, context)


async def test_a_service_checks_arguments_and_times_its_tools_itself() -> None:
    strict = Strict()
    registry = ToolRegistry()
    entries = {e.spec.name: e for e in await registry.register_service(strict)}
    assert (entries["crash"].timeout_s, entries["search"].timeout_s) == (0.05, None)
    refused, unchecked, hung = await run_tools(
        registry,
        [
            ToolCall(tool_id="crm:search", arguments={"query": "secret"}),
            # Its own check replaces the schema's: an unknown argument goes through.
            ToolCall(tool_id="crm:search", arguments={"page": 2}),
            ToolCall(tool_id="crm:crash"),
        ],
        ctx(),
        default_timeout_s=3600,
    )
    assert refused.error == "invalid arguments: query: not allowed here"
    assert unchecked.ok and strict.received == [{"page": 2}]
    assert hung.timed_out and hung.error == "timed out after 0.05 s"


def test_schema_problems_knows_json_types() -> None:
    spec = ToolSpec(
        service_name="s",
        name="t",
        parameters={
            "type": "object",
            "properties": {
                "flag": {"type": "boolean"},
                "n": {"type": "number"},
                "maybe": {"type": ["string", "null"]},
                "kind": {"const": "x"},
            },
        },
    )
    assert schema_problems(spec, {"flag": True, "n": 1, "maybe": None, "kind": "x"}) == []
    assert schema_problems(spec, {"n": True, "flag": 1, "maybe": 3, "kind": "y", "other": 1}) == [
        "n: expected number (got True)",
        "flag: expected boolean (got 1)",
        "maybe: expected string or null (got 3)",
        "kind: must be 'x'",
    ]
