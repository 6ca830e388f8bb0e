"""The sandbox canned responses render in: bounded in work and size, and blind to whole mappings.

Jinja2's immutable sandbox already refuses attribute tricks and mutation; this environment adds
what a template written by anyone must not be able to do to the server or to the customer:

- work: every loop iteration, call (functions, methods, macros, recursion) and filter is a step;
  a render takes at most ``TemplateLimits.max_steps`` of them, and stops at its deadline;
- size: no text a template builds (``*``, ``+``, ``%``, ``~``, filters, macro and block output)
  may pass ``TemplateLimits.max_chars``; growth is refused before it is computed
  (``'x' * 10**7`` and ``10**10**8`` never run), and ranges and lists stay within the steps;
- data: mappings among the fields are ``FieldMap``\\ s, read field by field; printing one whole,
  turning it into text or looping over it disqualifies the template, and so does printing a list
  or any other object whole (only scalars are printed).

Every refusal is a ``TemplateRefused`` whose message says what the template did; ``canned.render``
turns it, like any other exception, into a disqualification with that reason.
"""

from __future__ import annotations

import datetime
import decimal
import math
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps
from typing import Any, NoReturn

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.filters import (
    do_batch,
    do_center,
    do_indent,
    do_replace,
    do_wordwrap,
    make_attrgetter,
    sync_do_join,
    sync_do_slice,
    sync_do_sum,
)
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, LoopContext, Undefined, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tactful.domain.canned import REMOVED_FILTERS


@dataclass(frozen=True)
class TemplateLimits:
    """How far one render may go (``Settings.template_max_chars``, ``template_max_steps``,
    ``template_timeout_s``; these defaults are the settings' defaults)."""

    # The longest text a template may send or build.
    max_chars: int = 4000
    # Loop iterations, calls and filters, together, per render.
    max_steps: int = 10_000
    # Wall time per render, checked at every step.
    timeout_s: float = 1.0


class TemplateRefused(Exception):
    """A template went past a limit or tried to print what it may not; the message says what."""


# Values a template may print or turn into text.
SCALARS = (
    str,
    int,
    float,
    decimal.Decimal,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
    type(None),
)
# Filters that stringify their input (``{{ customer|upper }}`` would print the whole mapping).
_TEXT_FILTERS = frozenset(
    {
        *("capitalize", "center", "e", "escape", "forceescape", "format", "indent", "lower"),
        *("replace", "safe", "string", "striptags", "title", "trim", "truncate", "upper"),
        *("wordcount", "wordwrap"),
    }
)
# str methods that grow a text by a width, count or table (the filters are bounded instead).
_GROWING_STR_METHODS = frozenset(
    {
        *("center", "ljust", "rjust", "zfill", "expandtabs", "format", "format_map", "join"),
        *("replace", "translate", "maketrans"),
    }
)
# Printed digits of a float at most ("%f" of 1e308), for the % formatting estimate.
_FLOAT_CHARS = 330


class _Budget:
    """What one render has used so far."""

    __slots__ = ("deadline", "limits", "steps")

    def __init__(self, limits: TemplateLimits) -> None:
        self.limits = limits
        self.steps = 0
        self.deadline = time.monotonic() + limits.timeout_s

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise TemplateRefused(
                f"takes more than {self.limits.max_steps} steps (loop iterations, calls "
                "and filters)"
            )
        if time.monotonic() > self.deadline:
            raise TemplateRefused(f"takes longer than {self.limits.timeout_s:g} s to render")

    def chars(self, size: int, what: str = "builds a text") -> None:
        if size > self.limits.max_chars:
            raise TemplateRefused(
                f"{what} of {size} characters (the limit is {self.limits.max_chars})"
            )

    def items(self, size: int) -> None:
        if size > self.limits.max_steps:
            raise TemplateRefused(
                f"builds a sequence of {size} items (the limit is {self.limits.max_steps})"
            )

    def iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.step()
            yield item


_BUDGET: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:
        # Only at compile time, where Jinja folds constants: this defers the work to the render.
        raise RuntimeError("templates render through canned.render")
    return budget


def run_bounded(limits: TemplateLimits, render: Callable[[], str]) -> str:
    """Run ``render`` (one template's render) with a fresh budget of ``limits``."""
    token = _BUDGET.set(_Budget(limits))
    try:
        return render()
    finally:
        _BUDGET.reset(token)


# -- fields --------------------------------------------------------------------------------------


class FieldMap:
    """A mapping among a template's fields, read one field at a time (``{{std.customer.name}}``,
    ``{{order["items"]}}``). It cannot be printed, turned into text or looped over whole, so a
    template never sends a whole metadata dictionary; its nested mappings are FieldMaps too."""

    __slots__ = ("_path", "_seen", "_values")

    def __init__(self, path: str, values: Mapping[Any, Any]) -> None:
        self._path = path
        self._values = values
        self._seen: dict[Any, Any] = {}

    def __getitem__(self, key: Any) -> Any:
        if key not in self._seen:
            self._seen[key] = view(self._values[key], f"{self._path}.{key}")
        return self._seen[key]

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __bool__(self) -> bool:
        return bool(self._values)

    def __iter__(self) -> NoReturn:
        raise TemplateRefused(
            f"loops over the whole mapping {self._path}; read its fields by name instead"
        )

    def __str__(self) -> NoReturn:
        raise TemplateRefused(
            f"turns the whole mapping {self._path} into text; print one of its fields instead"
        )

    def __format__(self, spec: str) -> NoReturn:
        self.__str__()

    def __repr__(self) -> str:
        return f"<fields of {self._path}>"


def view(value: Any, path: str) -> Any:
    """``value`` as templates see it: mappings become FieldMaps, lists and sets tuples (of views),
    anything else stays as it is."""
    if isinstance(value, Mapping):
        return FieldMap(path, value)
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(view(v, f"{path}[{i}]") for i, v in enumerate(value))
    return value


def _whole(value: Any) -> tuple[str, str]:
    """What a non-scalar value is, and what to do instead of making text of it whole."""
    if isinstance(value, FieldMap):
        return f"the whole mapping {value._path}", "use one of its fields instead"
    if isinstance(value, Mapping):
        return "a whole mapping", "use one of its fields instead"
    if isinstance(value, list | tuple | set | frozenset):
        return "a whole list", "loop over it, or join its items, instead"
    return f"a whole object ({type(value).__name__})", "use one of its fields instead"


def _scalar(value: Any, doing: str) -> Any:
    """``value`` if it may become text; else refused (``doing``: "prints {}", ...)."""
    if isinstance(value, (*SCALARS, Undefined)):
        return value
    what, instead = _whole(value)
    raise TemplateRefused(f"{doing.format(what)}; {instead}")


def finalize(value: Any) -> Any:
    """Jinja's hook on every ``{{ }}`` value: only scalars are printed."""
    return _scalar(value, "prints {}")


class FieldUndefined(jinja2.StrictUndefined):
    """A missing field: named by its path (``std.customer.name``) when it is in a FieldMap."""

    @property
    def _undefined_message(self) -> str:
        obj = self._undefined_obj
        if isinstance(obj, FieldMap) and self._undefined_hint is None:
            return f"{obj._path}.{self._undefined_name}"
        return str(super()._undefined_message)


# -- sizes ---------------------------------------------------------------------------------------


def _check_repeat(budget: _Budget, left: Any, right: Any) -> None:
    """``a * b``: a text or sequence repeated, or a product of integers."""
    if isinstance(left, int) and not isinstance(right, int):
        left, right = right, left
    if not isinstance(right, int):
        return
    if isinstance(left, str | bytes):
        budget.chars(len(left) * max(right, 0))
    elif isinstance(left, list | tuple):
        budget.items(len(left) * max(right, 0))
    elif isinstance(left, int):
        _check_bits(budget, left.bit_length() + right.bit_length())


def _check_bits(budget: _Budget, bits: int) -> None:
    # About max_chars decimal digits: a number longer than that could never be sent.
    if bits > budget.limits.max_chars * 4:
        raise TemplateRefused(
            f"computes a number of about {int(bits * 0.30103)} digits "
            f"(the limit is {budget.limits.max_chars})"
        )


def _check_power(budget: _Budget, base: Any, exponent: Any) -> None:
    # Only integer powers grow without bound; floats overflow at once.
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        _check_bits(budget, math.ceil(exponent * math.log2(abs(base))))


def _check_add(budget: _Budget, left: Any, right: Any) -> None:
    if isinstance(left, str | bytes) and isinstance(right, str | bytes):
        budget.chars(len(left) + len(right))
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        budget.items(len(left) + len(right))


def _percent_widths(fmt: str) -> int:
    """The widths and precisions of a %-format string, added up; ``*`` (a width taken from the
    values) is refused. Follows Python's parser: ``%(key)`` with nested parentheses, flags,
    width, ``.precision``, length modifier, conversion."""
    total, i, n = 0, 0, len(fmt)
    while (i := fmt.find("%", i) + 1) and i < n:
        if fmt[i] == "(":
            depth, i = 1, i + 1
            while i < n and depth:
                depth += {"(": 1, ")": -1}.get(fmt[i], 0)
                i += 1
        while i < n and fmt[i] in "#0- +":
            i += 1
        for part in ("width", "precision"):
            if i < n and fmt[i] == "*":
                raise TemplateRefused("uses a % format whose width comes from the values")
            start = i
            while i < n and "0" <= fmt[i] <= "9":
                i += 1
            total += int(fmt[start:i] or 0)
            if part == "width" and i < n and fmt[i] == ".":
                i += 1
            else:
                break
        while i < n and fmt[i] in "hlL":
            i += 1
        i += 1  # the conversion character (or the second % of %%)
    return total


def percent(budget: _Budget, fmt: str, values: Any) -> str:
    """``fmt % values`` once its widest possible result fits: values are scalars, one or a
    tuple (a mapping, for ``%(name)s``, is refused: name the values in the template instead)."""
    if isinstance(values, Mapping | FieldMap):
        raise TemplateRefused("formats with a whole mapping; pass its fields as values instead")
    items = values if isinstance(values, tuple) else (values,)
    worst = len(fmt) + _percent_widths(fmt)
    for v in items:
        _scalar(v, "formats {}")
        worst += len(str(v)) + (_FLOAT_CHARS if isinstance(v, float) else 0)
    budget.chars(worst, "formats a text")
    result: str = fmt % values
    return result


# -- filters -------------------------------------------------------------------------------------


@jinja2.pass_eval_context
def _join(eval_ctx: EvalContext, value: Any, d: str = "", attribute: Any = None) -> str:
    if attribute is not None:
        value = map(make_attrgetter(eval_ctx.environment, attribute), value)
    items = [_scalar(v, "joins {}") for v in value]
    budget = _budget()
    budget.chars(sum(len(str(v)) for v in items) + len(str(d)) * max(len(items) - 1, 0))
    return sync_do_join(eval_ctx, items, d)


@jinja2.pass_environment
def _sum(environment: jinja2.Environment, value: Any, attribute: Any = None, start: Any = 0) -> Any:
    # From a number, adding a list or a text fails at once: never one list of every item.
    if isinstance(start, bool) or not isinstance(start, int | float | decimal.Decimal):
        raise TemplateRefused("sums from something other than a number: sum adds numbers only")
    return sync_do_sum(environment, value, attribute, start)


def _center(value: Any, width: int = 80) -> str:
    _budget().chars(width, "centers a text in a width")
    return do_center(value, width)


def _indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = str(s)
    each = len(width) if isinstance(width, str) else width
    _budget().chars(len(text) + (text.count("\n") + 1) * max(each, 0), "indents a text")
    return do_indent(s, width, first, blank)


@jinja2.pass_environment
def _wordwrap(
    environment: jinja2.Environment,
    s: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    text = str(s)
    wrap = environment.newline_sequence if wrapstring is None else str(wrapstring)
    # At most one line per character; the result is checked again once wrapped.
    _budget().chars(len(text) + (text.count("\n") + len(text) // max(width, 1) + 1) * len(wrap))
    return do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


@jinja2.pass_eval_context
def _replace(eval_ctx: EvalContext, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old_text, new_text = str(s), str(old), str(new)
    found = text.count(old_text) if old_text else len(text) + 1
    if count is not None and count >= 0:
        found = min(found, count)
    _budget().chars(len(text) + found * (len(new_text) - len(old_text)), "replaces into a text")
    return do_replace(eval_ctx, s, old, new, count)


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    if kwargs:
        raise TemplateRefused("the format filter takes values in order, not by name")
    return percent(_budget(), str(value), args)


def _batch(value: Any, linecount: int, fill_with: Any = None) -> Iterator[list[Any]]:
    _budget().items(linecount)
    return do_batch(value, linecount, fill_with)


def _slice(value: Any, slices: int, fill_with: Any = None) -> Iterator[list[Any]]:
    _budget().items(slices)
    return sync_do_slice(value, slices, fill_with)


_BOUNDED_FILTERS: dict[str, Callable[..., Any]] = {
    "batch": _batch,
    "center": _center,
    "format": _format,
    "indent": _indent,
    "join": _join,
    "replace": _replace,
    "slice": _slice,
    "sum": _sum,
    "wordwrap": _wordwrap,
}


def _counted(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    """``f`` as a step of the render: its text input a scalar, its text output within the limit."""
    # Filters marked pass_context/pass_eval_context/pass_environment take that first.
    skip = 1 if getattr(f, "jinja_pass_arg", None) is not None else 0
    text_input = name in _TEXT_FILTERS

    @wraps(f)  # keeps the pass_* mark
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        if text_input and len(args) > skip:
            _scalar(args[skip], f"passes {{}} to the {name} filter")
        result = f(*args, **kwargs)
        if isinstance(result, str):
            budget.chars(len(result))
        return result

    return bounded


def _filters(defaults: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    chosen = {n: f for n, f in defaults.items() if n not in REMOVED_FILTERS}
    chosen.update(_BOUNDED_FILTERS)
    return {n: _counted(n, f) for n, f in chosen.items()}


def _range(*args: int) -> range:
    numbers = range(*args)
    try:
        size = len(numbers)
    except OverflowError:
        size = abs(numbers.stop - numbers.start) // abs(numbers.step)
    if size > _budget().limits.max_steps:
        raise TemplateRefused(
            f"asks for a range of {size} numbers (the limit is {_budget().limits.max_steps})"
        )
    return numbers


# -- the environment -----------------------------------------------------------------------------


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator, with ``~`` joined by the environment (checked) instead of
    ``str_join``."""

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.join_text(context, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class TemplateEnvironment(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with budgets on work and size, scalar-only printing, bounded
    filters, and no str methods that grow a text (see the module's docstring)."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=FieldUndefined, autoescape=False, finalize=finalize)
        self.filters = _filters(self.filters)
        del self.globals["lipsum"]  # random text of any length
        self.globals["range"] = _range

    def compile_bounded(self, tree: nodes.Template) -> jinja2.Template:
        """The template of ``tree`` (a parsed template, changed in place) with every ``for``
        loop counting its iterations, even over a literal list."""
        for loop in tree.find_all(nodes.For):
            counter = nodes.EnvironmentAttribute("count_iterations", lineno=loop.lineno)
            loop.iter = nodes.Call(counter, [loop.iter], [], None, None, lineno=loop.lineno)
        tree.set_environment(self)
        return self.from_string(tree)

    def count_iterations(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """A ``for`` loop's items, one step each."""
        return _budget().iterate(iterable)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        if operator == "*":
            _check_repeat(budget, left, right)
        elif operator == "**":
            _check_power(budget, left, right)
        elif operator == "+":
            _check_add(budget, left, right)
        elif operator == "%" and isinstance(left, str):
            return percent(budget, left, right)
        return super().call_binop(context, operator, left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Every call is a step; a recursive loop's ``loop(children)`` counts its iterations."""
        budget = _budget()
        budget.step()
        if isinstance(obj, LoopContext) and args:
            args = (budget.iterate(args[0]), *args[1:])
        return super().call(context, obj, *args, **kwargs)

    def join_text(self, context: Context, parts: tuple[Any, ...]) -> str:
        """``a ~ b``: scalars only, and the joined text within the limit."""
        texts = [str(_scalar(p, "joins {} into a text")) for p in parts]
        _budget().chars(sum(len(t) for t in texts))
        if context.eval_ctx.autoescape:
            return markup_join(texts)
        return str_join(texts)

    def concat(self, parts: Iterable[str]) -> str:
        """A macro's, block's, ``{% set %}``'s or ``{% filter %}``'s output, within the limit."""
        budget = _budget()
        pieces, size = [], 0
        for piece in parts:
            size += len(piece)
            budget.chars(size)
            pieces.append(piece)
        return "".join(pieces)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr in _GROWING_STR_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> None:
        # str.format and format_map are refused like the other growing str methods.
        return None
