"""Canned responses: Jinja2 templates whose missing fields disqualify them structurally.

Templates render in Jinja2's immutable sandbox (no attribute tricks, no mutation of the data
they are given). Fields come from the customer, the agent, context variables, tool results and
retrievers; ``{{generative.<name>}}`` fields are written by the model when it picks the
template (so without a model such a template never qualifies).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
GENERATIVE = "generative"
_GENERATIVE_FIELD = re.compile(r"\bgenerative\.(\w+)")


@lru_cache(maxsize=4096)
def _parse(template: str) -> tuple[jinja2.Template, frozenset[str]]:
    ast = _ENV.parse(template)
    return _ENV.from_string(ast), frozenset(meta.find_undeclared_variables(ast))


def template_fields(template: str) -> frozenset[str]:
    """Top-level names the template refers to (``std`` for ``{{std.customer.name}}``)."""
    return _parse(template)[1]


def generative_fields(template: str) -> frozenset[str]:
    """The ``{{generative.<name>}}`` fields the model fills: their names."""
    return frozenset(_GENERATIVE_FIELD.findall(template))


def render(
    template: str, fields: dict[str, Any], generative: dict[str, str] | None = None
) -> tuple[str | None, list[str]]:
    """The rendered text, or None and what was missing this turn. ``generative`` holds the
    model's values for the template's generative fields (missing ones disqualify it)."""
    try:
        compiled, names = _parse(template)
    except jinja2.TemplateSyntaxError as e:
        return None, [f"syntax error: {e.message}"]
    wanted = generative_fields(template)
    if GENERATIVE in names:
        given = generative or {}
        absent = sorted(f"{GENERATIVE}.{n}" for n in wanted if not str(given.get(n, "")).strip())
        if absent:
            return None, absent
        fields = {**fields, GENERATIVE: {n: given[n] for n in wanted}}
    missing = sorted(names - fields.keys())
    if missing:
        return None, missing
    try:
        return compiled.render(**fields), []
    except jinja2.UndefinedError as e:
        # A nested field, e.g. {{std.customer.name}} for an anonymous customer.
        return None, [e.message or "a nested field"]
    except jinja2.exceptions.SecurityError as e:
        return None, [f"unsafe template: {e}"]


def is_valid_template(template: str) -> str | None:
    """None when the template parses, else the syntax error to show the author."""
    try:
        _parse(template)
    except jinja2.TemplateSyntaxError as e:
        return f"line {e.lineno}: {e.message}"
    return None
