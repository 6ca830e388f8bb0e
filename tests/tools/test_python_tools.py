"""@tactful.tool: schemas from signatures, validation, calling through the service."""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import Annotated, Any, Literal

import pytest
from pydantic import Field

import tactful
from tactful.domain import ToolSpec
from tactful.errors import ConflictError, NotFoundError
from tactful.tools import (
    PythonToolService,
    SessionControl,
    ToolArgumentsError,
    ToolContext,
    ToolError,
    ToolParam,
    ToolRegistry,
    ToolResult,
    ToolService,
    register_python,
    tool,
)


def ctx(emit: Any = None) -> ToolContext:
    return ToolContext(agent_id="a1", session_id="s1", customer_id="c1", _emit=emit)


class Size(Enum):
    SMALL = "small"
    LARGE = "large"


@tactful.tool
async def add(context: ToolContext, a: int, b: int = 2) -> int:
    """Add two numbers."""
    return a + b


@tactful.tool(name="find_order", description="Look an order up.", consequential=True, timeout_s=3)
async def lookup(
    context: ToolContext,
    order_id: Annotated[str, ToolParam(description="The order number", examples=["A-1042", "B-7"])],
    speed: Literal["standard", "express"] = "standard",
    size: Size | None = None,
    account: Annotated[str, ToolParam(hidden=True)] = "",
) -> ToolResult:
    return ToolResult(
        data={"order": order_id, "speed": speed, "size": size.value if size else None},
        fields={"order_id": order_id},
        control=SessionControl.HANDOFF,
    )


async def _branches(context: ToolContext) -> list[str]:
    await asyncio.sleep(0)
    return [f"{context.customer_id}-north", f"{context.customer_id}-south"]


def _colors(context: ToolContext) -> list[str]:
    return ["red", "green"]


@tool
async def pick(
    context: ToolContext,
    branch: Annotated[str, ToolParam(choices=_branches)],
    colors: Annotated[list[str], ToolParam(choices=_colors)],
) -> str:
    return f"{branch}:{','.join(colors)}"


@tool
async def broken(context: ToolContext, n: int) -> None:
    raise LookupError(f"no record {n}")


@tool
async def refused(context: ToolContext) -> None:
    raise ToolError("the CRM said no")


@tool
async def chatty(context: ToolContext) -> str:
    await context.emit_status("typing", step=1)
    await context.emit_message("One moment, please")
    await context.emit_custom({"card": "order"})
    return "done"


@tool
async def aliases(context: ToolContext, json: str, model_id: int, title: str = "t") -> str:
    return f"{json}/{model_id}/{title}"


# -- schemas ----------------------------------------------------------------------------------


def test_bare_decorator_builds_a_spec_from_the_signature_and_docstring() -> None:
    assert add.tool_id == "local:add"
    assert add.consequential is False
    assert add.timeout_s is None
    spec = add.spec
    assert isinstance(spec, ToolSpec)
    assert (spec.id, spec.service_name, spec.name) == ("local:add", "local", "add")
    assert spec.description == "Add two numbers."
    assert spec.required == ["a"]
    assert spec.parameters == {
        "type": "object",
        "additionalProperties": False,
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer", "default": 2}},
        "required": ["a"],
    }


def test_options_examples_enums_and_hidden_parameters() -> None:
    spec = lookup.spec
    assert lookup.tool_id == "local:find_order"
    assert (spec.name, spec.description, spec.consequential) == (
        "find_order",
        "Look an order up.",
        True,
    )
    assert lookup.timeout_s == 3
    props = spec.parameters["properties"]
    assert props["order_id"] == {
        "type": "string",
        "description": "The order number",
        "examples": ["A-1042", "B-7"],
    }
    assert props["speed"] == {
        "type": "string",
        "enum": ["standard", "express"],
        "default": "standard",
    }
    # An Enum is inlined: no $ref, so the schema can be embedded anywhere.
    assert props["size"] == {
        "anyOf": [{"type": "string", "enum": ["small", "large"]}, {"type": "null"}],
        "default": None,
    }
    assert props["account"] == {"type": "string", "default": "", "x-tactful-hidden": True}
    assert "$defs" not in spec.parameters
    assert spec.required == ["order_id"]
    assert lookup.hidden == {"account"}


def test_parameters_named_like_pydantic_attributes_work() -> None:
    props = aliases.spec.parameters["properties"]
    assert list(props) == ["json", "model_id", "title"]
    assert props["title"] == {"type": "string", "default": "t"}
    assert aliases.validate({"json": "j", "model_id": "3"}) == {
        "json": "j",
        "model_id": 3,
        "title": "t",
    }


def test_pydantic_fields_in_annotated_keep_their_options() -> None:
    @tool
    async def f(
        context: ToolContext,
        a: Annotated[int, Field(description="How many", ge=1), ToolParam(examples=[3])],
    ) -> None:
        return None

    assert f.spec.parameters["properties"]["a"] == {
        "type": "integer",
        "description": "How many",
        "minimum": 1,
        "examples": [3],
    }
    with pytest.raises(ToolArgumentsError, match="greater than or equal to 1"):
        f.validate({"a": 0})


def test_choice_parameters_are_marked_in_the_schema() -> None:
    props = pick.spec.parameters["properties"]
    assert props["branch"]["x-tactful-choices"] is True
    assert props["colors"]["x-tactful-choices"] is True


def test_sync_functions_are_refused() -> None:
    def plain(context: ToolContext, a: int) -> int:
        return a

    with pytest.raises(TypeError, match="async def"):
        tool(plain)  # type: ignore[arg-type]


def test_the_first_parameter_must_be_the_context() -> None:
    async def no_context(a: int) -> int:
        return a

    with pytest.raises(TypeError, match="first parameter must be the ToolContext"):
        tool(no_context)

    async def nothing() -> None:
        return None

    with pytest.raises(TypeError, match="first parameter must be the ToolContext"):
        tool(nothing)


def test_parameters_need_types_and_names() -> None:
    async def untyped(context: ToolContext, a) -> None:  # type: ignore[no-untyped-def]
        return None

    with pytest.raises(TypeError, match="'a' needs a type annotation"):
        tool(untyped)

    async def star(context: ToolContext, *rest: int) -> None:
        return None

    with pytest.raises(TypeError, match="'rest' must be a named parameter"):
        tool(star)


def test_names_cannot_contain_the_id_separator() -> None:
    async def f(context: ToolContext) -> None:
        return None

    with pytest.raises(ValueError, match="no ':'"):
        tool(name="a:b")(f)
    with pytest.raises(ValueError, match="positive"):
        tool(timeout_s=0)(f)


# -- validation -------------------------------------------------------------------------------


def test_validate_converts_and_fills_defaults() -> None:
    assert add.validate({"a": "5"}) == {"a": 5, "b": 2}
    values = lookup.validate({"order_id": "A-1", "size": "large"})
    assert values["size"] is Size.LARGE
    assert values["speed"] == "standard"


def test_validation_errors_name_every_bad_argument() -> None:
    with pytest.raises(ToolArgumentsError) as caught:
        lookup.validate({"speed": "rocket", "size": "huge", "colour": "red"})
    error = caught.value
    assert isinstance(error, ToolError)
    assert error.tool == "local:find_order"
    problems = "\n".join(error.problems)
    assert "order_id: missing (required)" in problems
    assert "speed: Input should be 'standard' or 'express' (got 'rocket')" in problems
    assert "size" in problems
    assert "colour: unknown argument" in problems
    assert str(error).startswith("invalid arguments for tool 'local:find_order': ")


def test_validation_refuses_what_is_not_an_object() -> None:
    with pytest.raises(ToolArgumentsError, match="expected an object"):
        add.validate(["a"])  # type: ignore[arg-type]


async def test_choices_from_sync_and_async_providers_and_fixed_enums() -> None:
    assert await pick.choices_for("branch", ctx()) == ["c1-north", "c1-south"]
    assert await pick.choices_for("colors", ctx()) == ["red", "green"]
    assert await lookup.choices_for("speed", ctx()) == ["standard", "express"]
    assert await lookup.choices_for("order_id", ctx()) is None
    with pytest.raises(KeyError):
        await lookup.choices_for("nope", ctx())


async def test_values_outside_the_choices_are_refused() -> None:
    service = PythonToolService(tools=[pick])
    ok = await service.call("pick", {"branch": "c1-north", "colors": ["red"]}, ctx())
    assert ok.data == "c1-north:red"
    with pytest.raises(ToolArgumentsError) as caught:
        await service.call("pick", {"branch": "c9-east", "colors": ["red", "blue"]}, ctx())
    assert caught.value.problems == [
        "branch: 'c9-east' is not one of ['c1-north', 'c1-south']",
        "colors: 'blue' is not one of ['red', 'green']",
    ]


# -- calling ----------------------------------------------------------------------------------


async def test_a_direct_call_runs_the_function_as_written() -> None:
    assert await add(ctx(), a=1) == 3
    result = await lookup(ctx(), order_id="A-1")
    assert result.control is SessionControl.HANDOFF
    assert add.__name__ == "add"
    assert add.__doc__ == "Add two numbers."


async def test_the_service_validates_runs_and_wraps_plain_values() -> None:
    service = PythonToolService("local", [add, lookup])
    assert isinstance(service, ToolService)
    assert [s.name for s in await service.list_tools()] == ["add", "find_order"]
    result = await service.call("add", {"a": 40}, ctx())
    assert result == ToolResult(data=42)
    returned = await service.call("find_order", {"order_id": "A-1", "size": "small"}, ctx())
    assert returned.data == {"order": "A-1", "speed": "standard", "size": "small"}
    assert returned.fields == {"order_id": "A-1"}
    with pytest.raises(ToolArgumentsError):
        await service.call("add", {"a": "x"}, ctx())
    with pytest.raises(ToolError, match="has no tool 'nope'"):
        await service.call("nope", {}, ctx())


async def test_exceptions_become_tool_errors_with_their_type() -> None:
    service = PythonToolService(tools=[broken, refused])
    with pytest.raises(ToolError) as caught:
        await service.call("broken", {"n": 7}, ctx())
    assert str(caught.value) == "LookupError: no record 7"
    assert isinstance(caught.value.__cause__, LookupError)
    with pytest.raises(ToolError, match=r"^the CRM said no$"):
        await service.call("refused", {}, ctx())


async def test_the_context_lets_a_tool_speak_while_it_works() -> None:
    sent: list[tuple[str, Any]] = []

    async def emit(kind: str, data: Any) -> None:
        sent.append((kind, data))

    result = await PythonToolService(tools=[chatty]).call("chatty", {}, ctx(emit))
    assert result.data == "done"
    assert sent == [
        ("status", {"status": "typing", "data": {"step": 1}}),
        ("message", {"message": "One moment, please"}),
        ("custom", {"card": "order"}),
    ]


def test_a_service_refuses_another_function_under_a_taken_name() -> None:
    service = PythonToolService(tools=[add])
    service.add(add)  # the same tool again: nothing changes

    @tool(name="add")
    async def other(context: ToolContext) -> None:
        return None

    with pytest.raises(ConflictError, match="two different functions"):
        service.add(other)
    with pytest.raises(ValueError, match="belongs to service 'crm'"):
        service.add(tool(service="crm")(other.fn))
    with pytest.raises(NotFoundError):
        service.get("missing")


# -- registry ---------------------------------------------------------------------------------


class Remote(ToolService):
    """A stand-in for an MCP or OpenAPI service."""

    def __init__(self, name: str, names: list[str]) -> None:
        self.name = name
        self.names = names

    async def list_tools(self) -> list[ToolSpec]:
        return [ToolSpec(service_name=self.name, name=n) for n in self.names]

    async def call(self, tool: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        return ToolResult(data=tool)


async def test_the_registry_maps_ids_to_services_idempotently() -> None:
    registry = ToolRegistry()
    entry = register_python(registry, add)
    register_python(registry, add)
    register_python(registry, lookup)
    assert entry.tool_id == "local:add"
    assert registry.get("local:find_order").timeout_s == 3
    assert "local:add" in registry
    assert "local:nope" not in registry
    remote = Remote("crm", ["search"])
    await registry.register_service(remote)
    remote.names = ["search", "update"]
    await registry.register_service(remote)  # listed again: picks up the new tool
    assert [s.id for s in registry.specs()] == [
        "local:add",
        "local:find_order",
        "crm:search",
        "crm:update",
    ]
    assert [s.name for s in registry.services()] == ["local", "crm"]
    assert registry.get("crm:update").service is remote
    with pytest.raises(NotFoundError):
        registry.get("crm:delete")
    with pytest.raises(ConflictError):
        await registry.register_service(Remote("crm", []))
    with pytest.raises(ConflictError, match="taken by Remote"):
        register_python(registry, tool(service="crm")(add.fn))
    await registry.close()


async def test_a_registered_python_service_keeps_its_tools_timeouts() -> None:
    registry = ToolRegistry()
    await registry.register_service(PythonToolService(tools=[lookup]))
    assert registry.get("local:find_order").timeout_s == 3
    register_python(registry, add)
    assert [s.id for s in registry.specs()] == ["local:find_order", "local:add"]
