"""Canned responses: Jinja2 templates whose missing fields disqualify them structurally."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


@lru_cache(maxsize=4096)
def _parse(template: str) -> tuple[jinja2.Template, frozenset[str]]:
    ast = _ENV.parse(template)
    return _ENV.from_string(ast), frozenset(meta.find_undeclared_variables(ast))


def template_fields(template: str) -> frozenset[str]:
    """Top-level names the template refers to (``std`` for ``{{std.customer.name}}``)."""
    return _parse(template)[1]


def render(template: str, fields: dict[str, Any]) -> tuple[str | None, list[str]]:
    """The rendered text, or None and what was missing this turn."""
    try:
        compiled, names = _parse(template)
    except jinja2.TemplateSyntaxError as e:
        return None, [f"syntax error: {e.message}"]
    missing = sorted(names - fields.keys())
    if missing:
        return None, missing
    try:
        return compiled.render(**fields), []
    except jinja2.UndefinedError as e:
        # A nested field, e.g. {{std.customer.name}} for an anonymous customer.
        return None, [e.message or "a nested field"]


def is_valid_template(template: str) -> str | None:
    """None when the template parses, else the syntax error to show the author."""
    try:
        _parse(template)
    except jinja2.TemplateSyntaxError as e:
        return f"line {e.lineno}: {e.message}"
    return None
