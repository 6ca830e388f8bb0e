"""Python tools: ``@tactful.tool`` turns an ``async def`` into a tool the engine can call.

```python
@tactful.tool(consequential=True)
async def refund(
    context: tactful.ToolContext,
    order_id: Annotated[str, tactful.ToolParam(description="The order", examples=["A-1042"])],
    reason: Literal["damaged", "late", "other"] = "other",
) -> tactful.ToolResult:
    \"\"\"Refund an order.\"\"\"
    ...
```

The parameters after the ``ToolContext`` become a pydantic model: it validates the arguments
before every call and gives the JSON schema the model sees (``ToolSpec.parameters``).
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, ParamSpec, TypeVar, get_args, get_origin, overload

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from tactful.domain import ToolSpec, tool_id
from tactful.errors import ConflictError, NotFoundError
from tactful.tools.base import (
    ToolArgumentsError,
    ToolContext,
    ToolError,
    ToolResult,
    ToolService,
)
from tactful.tools.registry import RegisteredTool, ToolRegistry

log = logging.getLogger("tactful.tools")

P = ParamSpec("P")
R = TypeVar("R")

# What a choice provider may be: plain or async, given the running context.
ChoiceProvider = Callable[[ToolContext], Awaitable[Sequence[str]] | Sequence[str]]

HIDDEN_KEY = "x-tactful-hidden"
CHOICES_KEY = "x-tactful-choices"
DEFAULT_SERVICE = "local"


@dataclass(frozen=True)
class ToolParam:
    """Options of one tool parameter, given as ``Annotated[type, ToolParam(...)]``.

    ``description`` and ``examples`` go into the parameter's JSON schema for the model.
    ``hidden`` parameters are filled from context by the engine, never inferred by the model
    (their schema carries ``"x-tactful-hidden": true``). ``choices`` is a function of the
    ``ToolContext`` (plain or async) returning the allowed values at run time; the schema
    carries ``"x-tactful-choices": true`` and arguments outside the choices are refused.
    Fixed choices need no provider: annotate with ``Literal[...]`` or an ``Enum``.
    """

    description: str | None = None
    examples: Sequence[Any] = ()
    hidden: bool = False
    choices: ChoiceProvider | None = None

    def __post_init__(self) -> None:
        # A tuple keeps the frozen dataclass hashable whatever sequence was given.
        object.__setattr__(self, "examples", tuple(self.examples))


def _argument_problems(error: pydantic.ValidationError) -> list[str]:
    problems = []
    for e in error.errors():
        where = ".".join(str(part) for part in e["loc"]) or "arguments"
        if e["type"] == "missing":
            problems.append(f"{where}: missing (required)")
        elif e["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown argument")
        else:
            got = repr(e["input"])
            got = got if len(got) <= 60 else got[:57] + "..."
            problems.append(f"{where}: {e['msg']} (got {got})")
    return problems


def _tidy_schema(node: Any, defs: Mapping[str, Any], seen: frozenset[str] = frozenset()) -> Any:
    """Inline ``$ref``s and drop pydantic's titles: a self-contained schema the engine can
    embed anywhere (refs to ``#/$defs`` break once nested) and fewer tokens for the model."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = str(node["$ref"]).rsplit("/", 1)[-1]
        if name in seen:
            raise TypeError(f"recursive parameter type {name!r} is not supported in a tool")
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return _tidy_schema({**defs[name], **siblings}, defs, seen | {name})
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title":
            continue
        if key in ("properties", "$defs"):
            # A mapping of names to schemas: a property may well be called "title".
            out[key] = {k: _tidy_schema(v, defs, seen) for k, v in value.items()}
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            out[key] = [_tidy_schema(v, defs, seen) for v in value]
        elif key in ("items", "additionalProperties", "not"):
            out[key] = _tidy_schema(value, defs, seen)
        else:
            # Data, not schemas: defaults, examples, enums keep their own keys.
            out[key] = value
    return out


def _tool_param(annotation: Any) -> ToolParam | None:
    if get_origin(annotation) is Annotated:
        found = [m for m in get_args(annotation)[1:] if isinstance(m, ToolParam)]
        if len(found) > 1:
            raise TypeError("a parameter takes at most one ToolParam(...)")
        return found[0] if found else None
    return None


def _parameter_types(
    fn: Callable[..., Any], names: Sequence[str], where: str, local: Mapping[str, Any]
) -> dict[str, Any]:
    """The parameters' annotations, evaluated if they are strings (``from __future__ import
    annotations``) in the function's module and its defining scope; the return annotation
    is left alone, it plays no part in a tool."""
    raw = inspect.get_annotations(fn)
    scope = getattr(inspect.unwrap(fn), "__globals__", {})
    hints = {}
    for name in names:
        if name not in raw:
            continue
        annotation = raw[name]
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, scope, dict(local))
            except NameError as e:
                raise TypeError(
                    f"{where}: cannot resolve the type of {name!r} ({e}); "
                    "define what it names before the tool, or at module level"
                ) from e
        hints[name] = annotation
    return hints


def _check_name(kind: str, value: str) -> None:
    if not value or ":" in value or value.strip() != value:
        raise ValueError(f"invalid tool {kind} {value!r}: non-empty, no ':' and no outer spaces")


class PythonTool(Generic[P, R]):
    """An ``async def`` made into a tool by ``@tactful.tool``.

    Calling it directly (``await refund(context, order_id="A-1")``) runs the function as
    written: no validation, no wrapping, handy in unit tests. The engine goes through
    ``run()``, which validates the arguments and always returns a ``ToolResult``.
    """

    # Copied from the function, like any decorator's (functools.update_wrapper).
    __name__: str

    def __init__(
        self,
        fn: Callable[P, Coroutine[Any, Any, R]],
        *,
        name: str | None = None,
        description: str | None = None,
        consequential: bool = False,
        timeout_s: float | None = None,
        service: str = DEFAULT_SERVICE,
        namespace: Mapping[str, Any] | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"@tactful.tool needs an `async def` function, and {fn!r} is not one; "
                "run blocking work inside it with `await asyncio.to_thread(...)`"
            )
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s!r}")
        self.fn = fn
        self.name = name or fn.__name__
        self.service = service
        _check_name("name", self.name)
        _check_name("service", self.service)
        self.description = (
            description if description is not None else inspect.getdoc(fn) or ""
        ).strip()
        self.consequential = consequential
        self.timeout_s = timeout_s
        self.params: dict[str, ToolParam] = {}
        self._namespace = dict(namespace or {})
        self._model, self._fields = self._parameters_model()
        self.spec = self._make_spec()
        functools.update_wrapper(self, fn)

    @property
    def tool_id(self) -> str:
        """``service:name``, the id guidelines refer to."""
        return tool_id(self.service, self.name)

    @property
    def hidden(self) -> frozenset[str]:
        """Parameters the engine fills from context; the model never infers them."""
        return frozenset(p for p, opts in self.params.items() if opts.hidden)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<tool {self.tool_id}>"

    # -- the parameters ---------------------------------------------------------------------------

    def _parameters_model(self) -> tuple[type[BaseModel], dict[str, str]]:
        where = f"tool {self.tool_id!r} ({self.fn.__qualname__})"
        params = list(inspect.signature(self.fn).parameters.values())
        if not params:
            raise TypeError(f"{where}: the first parameter must be the ToolContext")
        hints = _parameter_types(self.fn, [p.name for p in params], where, self._namespace)
        first = params[0]
        context_type = hints.get(first.name, ToolContext)
        if not (isinstance(context_type, type) and issubclass(context_type, ToolContext)):
            raise TypeError(
                f"{where}: the first parameter must be the ToolContext, "
                f"not {first.name!r}: {context_type!r}"
            )
        fields: dict[str, Any] = {}
        # Internal field names, the parameter names as aliases: a parameter may be called
        # `json` or `model_id` without clashing with pydantic's own attributes.
        names: dict[str, str] = {}
        for i, p in enumerate(params[1:]):
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                raise TypeError(f"{where}: parameter {p.name!r} must be a named parameter")
            if p.name not in hints:
                raise TypeError(f"{where}: parameter {p.name!r} needs a type annotation")
            annotation = hints[p.name]
            opts = _tool_param(annotation) or ToolParam()
            self.params[p.name] = opts
            # Only what the ToolParam sets: a None would erase a pydantic Field(description=...)
            # given in the same Annotated.
            options: dict[str, Any] = {}
            if opts.description is not None:
                options["description"] = opts.description
            if opts.examples:
                options["examples"] = list(opts.examples)
            extra = {HIDDEN_KEY: True} if opts.hidden else {}
            if opts.choices is not None:
                extra[CHOICES_KEY] = True
            if extra:
                options["json_schema_extra"] = extra
            default = ... if p.default is p.empty else p.default
            field = Field(default, alias=p.name, **options)
            fields[f"p{i}"] = (annotation, field)
            names[f"p{i}"] = p.name
        model = pydantic.create_model(
            f"{self.name}_arguments",
            __config__=ConfigDict(extra="forbid"),
            **fields,
        )
        return model, names

    def _make_spec(self) -> ToolSpec:
        raw = self._model.model_json_schema()
        schema = _tidy_schema({k: v for k, v in raw.items() if k != "$defs"}, raw.get("$defs", {}))
        schema.setdefault("properties", {})
        return ToolSpec(
            id=self.tool_id,
            service_name=self.service,
            name=self.name,
            description=self.description,
            parameters=schema,
            required=list(schema.get("required", [])),
            consequential=self.consequential,
        )

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments checked and converted to the parameters' types, defaults filled in.

        Raises ``ToolArgumentsError`` naming every missing, unknown or invalid argument.
        """
        if not isinstance(arguments, Mapping):
            raise ToolArgumentsError(self.tool_id, [f"expected an object, got {arguments!r}"])
        try:
            parsed = self._model.model_validate(dict(arguments))
        except pydantic.ValidationError as e:
            raise ToolArgumentsError(self.tool_id, _argument_problems(e)) from None
        return {param: getattr(parsed, field) for field, param in self._fields.items()}

    async def choices_for(self, param: str, context: ToolContext) -> list[str] | None:
        """The values ``param`` may take now: its choice provider's answer, else its fixed
        ``Literal``/``Enum`` values, else None (any value of its type)."""
        if param not in self.params:
            raise KeyError(f"tool {self.tool_id!r} has no parameter {param!r}")
        provider = self.params[param].choices
        if provider is not None:
            answer = provider(context)
            if inspect.isawaitable(answer):
                answer = await answer
            return [str(c) for c in answer]
        enum = self.spec.parameters["properties"][param].get("enum")
        return None if enum is None else [str(c) for c in enum]

    async def check(self, arguments: Mapping[str, Any], context: ToolContext) -> dict[str, Any]:
        """``validate()``, then the choice providers: a value outside its choices is refused."""
        values = self.validate(arguments)
        problems = []
        for param, opts in self.params.items():
            value = values[param]
            if opts.choices is None or value is None:
                continue
            try:
                allowed = await self.choices_for(param, context)
            except Exception as e:
                raise ToolError(f"choices of {param!r} failed: {type(e).__name__}: {e}") from e
            given = value if isinstance(value, list | tuple | set | frozenset) else [value]
            wrong = [v for v in given if str(getattr(v, "value", v)) not in (allowed or [])]
            if wrong:
                shown = ", ".join(repr(c) for c in (allowed or [])[:20])
                more = "" if len(allowed or []) <= 20 else ", ..."
                problems.append(f"{param}: {wrong[0]!r} is not one of [{shown}{more}]")
        if problems:
            raise ToolArgumentsError(self.tool_id, problems)
        return values

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        """Validate, call, and wrap a plain return value as ``ToolResult(data=value)``.

        Every failure is a ``ToolError``: ``ToolArgumentsError`` for bad arguments, otherwise
        ``"ExceptionType: message"`` of what the function raised.
        """
        values = await self.check(arguments, context)
        fn: Callable[..., Coroutine[Any, Any, Any]] = self.fn
        try:
            value = await fn(context, **values)
        except ToolError:
            raise
        except Exception as e:
            log.warning("tool %s raised %s", self.tool_id, type(e).__name__, exc_info=True)
            message = str(e)
            raise ToolError(
                f"{type(e).__name__}: {message}" if message else type(e).__name__
            ) from e
        return value if isinstance(value, ToolResult) else ToolResult(data=value)


@overload
def tool(fn: Callable[P, Coroutine[Any, Any, R]], /) -> PythonTool[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    consequential: bool = False,
    timeout_s: float | None = None,
    service: str = DEFAULT_SERVICE,
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], PythonTool[P, R]]: ...


def tool(
    fn: Callable[P, Coroutine[Any, Any, R]] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    consequential: bool = False,
    timeout_s: float | None = None,
    service: str = DEFAULT_SERVICE,
) -> PythonTool[P, R] | Callable[[Callable[P, Coroutine[Any, Any, R]]], PythonTool[P, R]]:
    """Make an ``async def f(context: ToolContext, ...)`` a tool; use bare or with options.

    ``name`` defaults to the function's name and ``description`` to its docstring. A
    ``consequential`` tool (one that changes something: a refund, a booking) never runs on
    arguments the model guessed. ``timeout_s`` overrides the engine's per-call timeout. The
    tool's id is ``service:name`` (``"local:<name>"`` by default). Sync functions are refused:
    a thread cannot be cut at a timeout, so run blocking work with ``asyncio.to_thread``.
    """

    def make(f: Callable[P, Coroutine[Any, Any, R]]) -> PythonTool[P, R]:
        return PythonTool(
            f,
            name=name,
            description=description,
            consequential=consequential,
            timeout_s=timeout_s,
            service=service,
            # The defining scope, for string annotations naming local types or providers.
            namespace=sys._getframe(2).f_locals,
        )

    def decorate(f: Callable[P, Coroutine[Any, Any, R]]) -> PythonTool[P, R]:
        return make(f)  # through one frame, like the bare form: make() looks two frames up

    return decorate if fn is None else make(fn)


class PythonToolService(ToolService):
    """The ``@tactful.tool`` functions of one service name, served in process."""

    def __init__(self, name: str = DEFAULT_SERVICE, tools: Iterable[PythonTool[Any, Any]] = ()):
        _check_name("service", name)
        self.name = name
        self._tools: dict[str, PythonTool[Any, Any]] = {}
        for t in tools:
            self.add(t)

    def add(self, tool: PythonTool[Any, Any]) -> None:
        """Serve ``tool``; adding the same tool again does nothing, another of its name fails."""
        if tool.service != self.name:
            raise ValueError(f"{tool!r} belongs to service {tool.service!r}, not {self.name!r}")
        known = self._tools.get(tool.name)
        if known is not None and known is not tool:
            raise ConflictError(
                f"two different functions are both tool {tool.tool_id!r}: "
                f"{known.fn.__module__}.{known.fn.__qualname__} and "
                f"{tool.fn.__module__}.{tool.fn.__qualname__}; give one another name"
            )
        self._tools[tool.name] = tool

    def get(self, name: str) -> PythonTool[Any, Any]:
        """The tool called ``name``; ``NotFoundError`` if there is none."""
        if name not in self._tools:
            raise NotFoundError("tool", tool_id(self.name, name))
        return self._tools[name]

    async def list_tools(self) -> list[ToolSpec]:
        return [t.spec for t in self._tools.values()]

    async def check(
        self, tool: str, arguments: Mapping[str, Any], context: ToolContext
    ) -> dict[str, Any]:
        """Validate ``arguments`` for ``tool`` without calling it (see ``PythonTool.check``)."""
        return await self._tool(tool).check(arguments, context)

    async def check_arguments(
        self, spec: ToolSpec, arguments: Mapping[str, Any], context: ToolContext
    ) -> None:
        await self.check(spec.name, arguments, context)

    def tool_timeout_s(self, tool: str) -> float | None:
        return self.get(tool).timeout_s

    async def choices_for(self, tool: str, param: str, context: ToolContext) -> list[str] | None:
        return await self._tool(tool).choices_for(param, context)

    async def call(self, tool: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        return await self._tool(tool).run(arguments, context)

    def _tool(self, name: str) -> PythonTool[Any, Any]:
        if name not in self._tools:
            raise ToolError(f"service {self.name!r} has no tool {name!r}")
        return self._tools[name]


def register_python(registry: ToolRegistry, tool: PythonTool[Any, Any]) -> RegisteredTool:
    """Serve a ``@tactful.tool`` function in ``registry``, under its service (a
    ``PythonToolService`` created on first use); the same tool again changes nothing."""
    service = registry.service(tool.service)
    if service is None:
        service = PythonToolService(tool.service)
    elif not isinstance(service, PythonToolService):
        raise ConflictError(
            f"tool service {tool.service!r} is taken by {type(service).__name__}; "
            f"give {tool!r} another service name"
        )
    service.add(tool)
    return registry.add(service, tool.spec)
