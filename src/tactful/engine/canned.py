"""Canned responses: Jinja2 templates whose missing fields disqualify them structurally.

Templates render in a bounded sandbox (``template_sandbox``): Jinja2's immutable sandbox, with a
budget of steps and time per render, a limit on the size of every text it builds and of what it
sends, and scalar-only printing, so that ``{{customer}}`` never sends a whole metadata
dictionary. Fields come from the customer, the agent, context variables, tool results and
retrievers; ``{{generative.<name>}}`` fields are written by the model when it picks the
template (so without a model such a template never qualifies).

Whatever goes wrong while rendering (a missing field, a limit, a refused operation, any
exception) disqualifies that template with a reason; it never fails the turn. Renders run in a
worker thread (``render_each``), each batch of a turn in one hop, so a slow template never holds
up the event loop and the other sessions.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

import jinja2
from jinja2 import meta

from tactful.engine.template_sandbox import (
    TemplateEnvironment,
    TemplateLimits,
    TemplateRefused,
    run_bounded,
    view,
)

__all__ = [
    "GENERATIVE",
    "Rendering",
    "TemplateLimits",
    "generative_fields",
    "render",
    "render_each",
    "render_many",
    "template_fields",
]

_ENV = TemplateEnvironment()
DEFAULT_LIMITS = TemplateLimits()
# Renders run in their own threads: slow ones never take the default executor from the blocking
# work tools hand to asyncio.to_thread. Few, since a render holds the GIL while it runs.
_RENDERERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tactful-templates")
GENERATIVE = "generative"
_GENERATIVE_FIELD = re.compile(r"\bgenerative\.(\w+)")
# An exception's message is cut to this in the trace.
_REASON_CHARS = 300

# One template to render: its text, and the model's values for its generative fields (or None).
Job = tuple[str, Mapping[str, str] | None]


@dataclass(frozen=True)
class Rendering:
    """A template rendered this turn, or why it was disqualified."""

    # The text to send; None when the template is disqualified.
    text: str | None
    # The fields it needs that are absent this turn (``transaction_id``, ``std.customer.name``).
    missing: list[str] = field(default_factory=list)
    # Why it is disqualified, for the trace; None when it rendered.
    reason: str | None = None


@lru_cache(maxsize=4096)
def _parse(template: str) -> tuple[jinja2.Template, frozenset[str]]:
    tree = _ENV.parse(template)
    names = frozenset(meta.find_undeclared_variables(tree))
    return _ENV.compile_bounded(tree), names


def template_fields(template: str) -> frozenset[str]:
    """Top-level names the template refers to (``std`` for ``{{std.customer.name}}``)."""
    return _parse(template)[1]


def generative_fields(template: str) -> frozenset[str]:
    """The ``{{generative.<name>}}`` fields the model fills: their names."""
    return frozenset(_GENERATIVE_FIELD.findall(template))


def render(
    template: str,
    fields: Mapping[str, Any],
    generative: Mapping[str, str] | None = None,
    limits: TemplateLimits = DEFAULT_LIMITS,
) -> Rendering:
    """The rendered text, or None with what was missing and why. ``generative`` holds the
    model's values for the template's generative fields (missing ones disqualify it). Runs in
    the calling thread; the engine renders through ``render_each``."""
    return render_many([(template, generative)], fields, limits)[0]


def render_many(
    jobs: Sequence[Job], fields: Mapping[str, Any], limits: TemplateLimits = DEFAULT_LIMITS
) -> list[Rendering]:
    """Each template of ``jobs`` rendered over the same ``fields``, each within ``limits``."""
    try:
        seen = {name: view(value, name) for name, value in fields.items()}
    except Exception as e:  # e.g. a tool's field that is a list holding itself
        return [_failed(e, "the fields could not be read")] * len(jobs)
    return [_render(template, seen, generative, limits) for template, generative in jobs]


async def render_each(
    jobs: Sequence[Job], fields: Mapping[str, Any], limits: TemplateLimits = DEFAULT_LIMITS
) -> list[Rendering]:
    """``render_many`` in a worker thread, in one hop: the event loop keeps serving other
    sessions while templates render."""
    if not jobs:
        return []
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_RENDERERS, render_many, jobs, fields, limits)


def _render(
    template: str,
    seen: Mapping[str, Any],
    generative: Mapping[str, str] | None,
    limits: TemplateLimits,
) -> Rendering:
    try:
        compiled, names = _parse(template)
    except jinja2.TemplateSyntaxError as e:
        return Rendering(None, reason=f"syntax error: {e.message}")
    except Exception as e:  # e.g. RecursionError on absurdly nested source
        return _failed(e)
    if GENERATIVE in names:
        given = generative or {}
        wanted = generative_fields(template)
        absent = sorted(f"{GENERATIVE}.{n}" for n in wanted if not str(given.get(n, "")).strip())
        if absent:
            return _missing(absent)
        seen = {**seen, GENERATIVE: view({n: given[n] for n in wanted}, GENERATIVE)}
    missing = sorted(names - seen.keys())
    if missing:
        return _missing(missing)
    try:
        return Rendering(run_bounded(limits, lambda: _generate(compiled, seen, limits)))
    except jinja2.UndefinedError as e:
        # A nested field, e.g. {{std.customer.name}} for an anonymous customer.
        return _missing([e.message or "a nested field"])
    except TemplateRefused as e:
        return Rendering(None, reason=str(e))
    except jinja2.exceptions.SecurityError as e:
        return Rendering(None, reason=f"unsafe template: {e}")
    except Exception as e:  # OverflowError, RecursionError, MemoryError, TypeError, ...
        return _failed(e)


def _generate(compiled: jinja2.Template, seen: Mapping[str, Any], limits: TemplateLimits) -> str:
    """The text, piece by piece, stopped as soon as it passes the limit."""
    pieces: list[str] = []
    size = 0
    stream = cast(Generator[str, None, None], compiled.generate(dict(seen)))
    try:
        for piece in stream:
            size += len(piece)
            if size > limits.max_chars:
                raise TemplateRefused(f"renders more than {limits.max_chars} characters")
            pieces.append(piece)
    finally:
        stream.close()
    return "".join(pieces)


def _missing(names: list[str]) -> Rendering:
    return Rendering(None, names, f"missing fields: {', '.join(names)}")


def _failed(e: Exception, what: str = "failed") -> Rendering:
    message = str(e)
    if len(message) > _REASON_CHARS:
        message = message[:_REASON_CHARS] + "..."
    return Rendering(None, reason=f"{what}: {type(e).__name__}: {message}")
