"""Stage 2, context variables: the values a turn knows about its customer, and which of them a
prompt needs.

A variable holds values per key: a customer id, ``tag:<tag id>`` or ``DEFAULT`` (global). For
one customer the value used is, in order of precedence: the customer's own, else the value for
the first of the customer's tags (in the customer's tag order) that has one, else ``DEFAULT``.
The guest customer is shared by every anonymous visitor, so a guest's own values are kept per
session (``guest:<session id>``), before the values set for every guest (``guest``).
Variables are scoped like every definition: untagged ones are global, tagged ones belong to the
agents carrying one of their tags (``agent:<id>`` or a tag the agent has).

A variable backed by a tool gets its customer's value from that tool, called with no arguments
but its hidden ones (filled from the customer and the session). It is refreshed when the
customer has no value of their own yet, or, with a freshness rule (a cron expression), when a
tick of the rule passed since the value was written: ``*/5 * * * *`` refreshes at most once per
five minutes. All refreshes of a turn run concurrently, and a failure never raises: the old
value stays and the error is reported (see ``VariableValue.error``).

``relevant`` keeps the variables a prompt needs, and ``for_prompt`` and ``fields`` render them
for the composer and for canned-response templates.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
from cronsim import CronSim, CronSimError
from pydantic_core import to_jsonable_python

from tactful.domain import (
    GUEST_CUSTOMER_ID,
    ContextVariable,
    ContextVariableValue,
    Customer,
    VariableUsed,
    utcnow,
)
from tactful.domain.variables import GLOBAL_KEY, tag_key, value_natural_key
from tactful.engine.context import TurnContext, in_agent_scope
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.options import TOOL_TIMEOUT_S
from tactful.engine.tools import HIDDEN, context_values
from tactful.errors import ValidationError
from tactful.store.base import Store
from tactful.tools.base import ToolContext
from tactful.tools.registry import ToolRegistry
from tactful.tools.runner import ToolCall, run_tools

log = logging.getLogger("tactful.engine")

# Relevance: cosine similarity of a variable's name and description to what was said. Measured
# with the offline embedder (all-MiniLM-L6-v2): related pairs score 0.34-0.55 ("how many points
# do I have?" / "loyalty points: ..."), unrelated ones below 0.25.
DEFAULT_THRESHOLD = 0.3
DEFAULT_LIMIT = 8
# Earlier messages count a little less than the latest one (as in retrieval).
EARLIER_WEIGHT = 0.9
PROMPT_VALUE_CHARS = 1000

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


# -- freshness rules ------------------------------------------------------------------------------


def _expand(expression: str) -> str:
    text = " ".join(expression.split())
    return _MACROS.get(text.lower(), text)


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a usable cron expression, or None when it is.

    Five fields (minute hour day-of-month month day-of-week), an optional leading seconds field,
    or one of ``@hourly @daily @midnight @weekly @monthly @yearly @annually``.
    """
    text = _expand(expression)
    if not text:
        return "it is empty"
    try:
        next(CronSim(text, datetime(2000, 1, 1, tzinfo=UTC)))
    except CronSimError as e:
        return str(e) or "not a cron expression"
    except (StopIteration, ValueError, OverflowError):
        return "it never fires"
    return None


def check_freshness_rules(expression: str | None) -> str | None:
    """``expression`` normalised (outer spaces stripped), or None for no rule; raises
    ``ValidationError`` saying what is wrong with a bad cron expression."""
    if expression is None or not expression.strip():
        return None
    if problem := cron_problem(expression):
        raise ValidationError(
            f"invalid freshness rule {expression!r}: {problem} (expected a cron expression "
            "such as '*/5 * * * *': minute hour day-of-month month day-of-week)"
        )
    return expression.strip()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def last_tick(expression: str, now: datetime) -> datetime | None:
    """The most recent time ``expression`` fired before ``now``; None if it never did or the
    expression is invalid."""
    try:
        return next(CronSim(_expand(expression), _aware(now).astimezone(UTC), reverse=True))
    except (CronSimError, StopIteration, ValueError, OverflowError):
        return None


def is_stale(variable: ContextVariable, value: ContextVariableValue | None, now: datetime) -> bool:
    """Whether a tool-backed ``variable`` needs its tool called for this customer ``value``:
    there is none yet, or a tick of its freshness rule passed since it was written."""
    if value is None:
        return True
    if not variable.freshness_rules:
        return False
    tick = last_tick(variable.freshness_rules, now)
    return tick is not None and _aware(value.last_modified) < tick


# -- reading and writing values -------------------------------------------------------------------


@dataclass(frozen=True)
class VariableValue:
    """One variable's value for this turn, and where it came from.

    ``key`` is the scope that gave it (the customer id, ``tag:<id>`` or ``DEFAULT``), or "" when
    no scope has a value. ``refreshed``: its tool was called this turn. ``error``: its refresh
    failed (the value is the previous one, if any).
    """

    variable: ContextVariable
    value: Any = None
    key: str = ""
    refreshed: bool = False
    error: str | None = None

    @property
    def name(self) -> str:
        return self.variable.name

    @property
    def found(self) -> bool:
        return bool(self.key)

    def describe(self) -> VariableUsed:
        """For the trace (the value as JSON)."""
        return VariableUsed(
            variable_id=self.variable.id,
            name=self.variable.name,
            key=self.key,
            value=to_jsonable_python(self.value, fallback=str),
            refreshed=self.refreshed,
            error=self.error,
        )


def own_key(customer: Customer, session_id: str | None = None) -> str:
    """Where the values of this conversation's customer live: the customer's id, or for the
    guest customer, whom every anonymous visitor shares, the session's (no guest sees what a
    tool fetched for another)."""
    if customer.id == GUEST_CUSTOMER_ID and session_id:
        return f"{GUEST_CUSTOMER_ID}:{session_id}"
    return customer.id


def scope_keys(customer: Customer, session_id: str | None = None) -> list[str]:
    """The keys that may hold a value for ``customer``, most specific first."""
    own = own_key(customer, session_id)
    shared = [customer.id] if own != customer.id else []
    return list(dict.fromkeys([own, *shared, *(tag_key(t) for t in customer.tags), GLOBAL_KEY]))


async def stored_values(
    store: Store, customer: Customer, session_id: str | None = None
) -> dict[str, dict[str, ContextVariableValue]]:
    """Every stored value that applies to ``customer``: variable id -> key -> value."""
    found: dict[str, dict[str, ContextVariableValue]] = {}
    for key in scope_keys(customer, session_id):
        for value in await store.list(ContextVariableValue, key=key):
            found.setdefault(value.variable_id, {})[key] = value
    return found


def choose(
    values: Mapping[str, ContextVariableValue],
    customer: Customer,
    session_id: str | None = None,
) -> ContextVariableValue | None:
    """The value that counts for ``customer``: theirs, else their first tag's, else global."""
    for key in scope_keys(customer, session_id):
        if key in values:
            return values[key]
    return None


async def write_value(
    store: Store, variable_id: str, key: str, data: Any, *, now: datetime | None = None
) -> ContextVariableValue:
    """Set the value of ``variable_id`` at ``key`` (one value per key: replaced if present)."""
    value = ContextVariableValue(
        variable_id=variable_id, key=key, data=data, updated_utc=_aware(now or utcnow())
    )
    stored, _ = await store.upsert(value, key=value_natural_key(variable_id, key))
    return stored


async def read_value(store: Store, variable_id: str, key: str) -> ContextVariableValue | None:
    """The value stored at exactly ``key``, or None."""
    return await store.get_by_key(ContextVariableValue, value_natural_key(variable_id, key))


async def delete_values(store: Store, variable_id: str) -> int:
    """Delete every value of a variable; returns how many."""
    values = await store.list(ContextVariableValue, variable_id=variable_id)
    for v in values:
        await store.delete(ContextVariableValue, v.id)
    return len(values)


# -- resolving a turn's values --------------------------------------------------------------------


def _hidden_arguments(
    registry: ToolRegistry, tool_id: str, known: Mapping[str, Any]
) -> dict[str, Any]:
    properties = registry.get(tool_id).spec.parameters.get("properties", {})
    return {
        name: known[name]
        for name, schema in properties.items()
        if isinstance(schema, dict) and schema.get(HIDDEN) and name in known
    }


async def definitions(store: Store, ctx: TurnContext) -> list[ContextVariable]:
    """The variables in the agent's scope: the snapshot's (definitions change its revision),
    else read from the store (a context built by hand)."""
    if ctx.snapshot is not None:
        return list(ctx.snapshot.variables)
    return [v for v in await store.list(ContextVariable) if in_agent_scope(v.tags, ctx.agent)]


async def resolve_values(
    store: Store,
    ctx: TurnContext,
    *,
    registry: ToolRegistry | None = None,
    now: datetime | None = None,
    timeout_s: float = TOOL_TIMEOUT_S,
) -> list[VariableValue]:
    """The value of every variable in the agent's scope for the turn's customer, in creation
    order (variables without any value included, with ``key == ""``).

    Tool-backed variables whose tool is in ``registry`` are refreshed first where stale (see
    the module docstring), all at once, each cut at its tool's timeout (else ``timeout_s``);
    a fresh value is stored under the customer's key. Never raises for a tool: a failure keeps
    the previous value and sets ``error``. Without ``registry`` nothing is refreshed.
    """
    now = _aware(now or utcnow())
    customer = ctx.customer
    variables = await definitions(store, ctx)
    if not variables:
        return []
    session_id = ctx.session.id
    own = own_key(customer, session_id)
    stored = await stored_values(store, customer, session_id)
    due = [
        v
        for v in variables
        if v.tool_id
        and registry is not None
        and v.tool_id in registry
        and is_stale(v, stored.get(v.id, {}).get(own), now)
    ]
    refreshed: set[str] = set()
    errors: dict[str, str] = {}
    if due and registry is not None:
        known = context_values(ctx)
        calls = [
            ToolCall(
                tool_id=v.tool_id or "",
                arguments=_hidden_arguments(registry, v.tool_id or "", known),
            )
            for v in due
        ]
        context = ToolContext(
            agent_id=ctx.agent.id,
            session_id=ctx.session.id,
            customer_id=customer.id,
            customer_name=customer.name,
            customer_metadata=dict(customer.metadata),
        )
        outcomes = await run_tools(registry, calls, context, default_timeout_s=timeout_s)
        for variable, outcome in zip(due, outcomes, strict=True):
            if outcome.result is None:
                errors[variable.id] = outcome.error or "failed"
                continue
            try:
                value = await write_value(store, variable.id, own, outcome.result.data, now=now)
            except Exception as e:
                log.warning("could not store variable %s", variable.id, exc_info=True)
                errors[variable.id] = f"could not store the value: {type(e).__name__}: {e}"
                continue
            stored.setdefault(variable.id, {})[own] = value
            refreshed.add(variable.id)
    if registry is not None:
        for v in variables:
            if v.tool_id and v.tool_id not in registry:
                errors[v.id] = f"tool {v.tool_id!r} is not registered: the value was not refreshed"
    out = []
    for v in variables:
        chosen = choose(stored.get(v.id, {}), customer, session_id)
        out.append(
            VariableValue(
                variable=v,
                value=chosen.data if chosen is not None else None,
                key=chosen.key if chosen is not None else "",
                refreshed=v.id in refreshed,
                error=errors.get(v.id),
            )
        )
    return out


# -- relevance ------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _mention(name: str) -> re.Pattern[str]:
    """``name`` as a whole word or phrase, any case, spaces, ``_`` and ``-`` interchangeable."""
    parts = [re.escape(p) for p in re.split(r"[\s_-]+", name.strip()) if p]
    return re.compile(r"(?<![\w])" + r"[\s_-]+".join(parts) + r"(?![\w])", re.IGNORECASE)


def mentioned(variable: ContextVariable, texts: Iterable[str]) -> bool:
    """Whether one of ``texts`` names the variable (``loyalty points``, ``loyalty_points``,
    ``{{loyalty_points}}``...)."""
    pattern = _mention(variable.name)
    return any(pattern.search(t) for t in texts if t)


def variable_text(variable: ContextVariable) -> str:
    """What stands for a variable in relevance: its name in words, and its description."""
    name = " ".join(re.split(r"[\s_-]+", variable.name.strip()))
    return f"{name}: {variable.description}" if variable.description else name


def _queries(ctx: TurnContext) -> tuple[list[str], list[float]]:
    """The latest customer messages (the latest weighs 1, the others ``EARLIER_WEIGHT``) and the
    agent's last message (what a short "yes" answers)."""
    recent = ctx.recent_customer_messages(3)
    texts = list(recent)
    weights = [EARLIER_WEIGHT] * (len(recent) - 1) + ([1.0] if recent else [])
    agent = [u.text for u in ctx.messages if u.role == "agent"]
    if agent:
        texts.append(agent[-1])
        weights.append(EARLIER_WEIGHT)
    return texts, weights


async def relevant(
    values: Sequence[VariableValue],
    ctx: TurnContext,
    cache: EmbeddingCache,
    *,
    texts: Sequence[str] = (),
    threshold: float = DEFAULT_THRESHOLD,
    limit: int = DEFAULT_LIMIT,
) -> list[VariableValue]:
    """The variables with a value that a prompt of this turn should include, in input order.

    The rule: a variable is relevant when

    * one of ``texts`` names it (pass the active guidelines' conditions and actions, and the
      candidate canned responses' templates): always kept, whatever ``limit``; or
    * its name and description are similar to what is being said: cosine similarity of
      ``variable_text`` to each of the last three customer messages and the agent's last
      message (the latest customer message weighs 1, the others ``EARLIER_WEIGHT``), best of
      them at or above ``threshold``; at most ``limit`` of these, most similar first.

    Embeddings come from ``cache`` (by content: a variable is embedded once per process, and
    the messages are the ones retrieval embedded already).
    """
    present = [v for v in values if v.found]
    if not present:
        return []
    keep = {id(v) for v in present if mentioned(v.variable, texts)}
    others = [v for v in present if id(v) not in keep]
    queries, weights = _queries(ctx)
    if others and queries and limit > 0:
        q = await cache.embed_messages(queries)
        docs = await cache.embed([variable_text(v.variable) for v in others])
        scores = ((docs @ q.T) * np.asarray(weights, dtype=np.float32)).max(axis=1)
        ranked = sorted(
            (i for i in range(len(others)) if scores[i] >= threshold),
            key=lambda i: -float(scores[i]),
        )
        keep.update(id(others[i]) for i in ranked[:limit])
    return [v for v in present if id(v) in keep]


# -- rendering ------------------------------------------------------------------------------------


def _render(value: Any, max_chars: int) -> str:
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def for_prompt(values: Iterable[VariableValue], *, max_chars: int = PROMPT_VALUE_CHARS) -> str:
    """One line per variable with a value: ``- name: value`` (JSON for non-strings, each value
    cut at ``max_chars``)."""
    return "\n".join(f"- {v.name}: {_render(v.value, max_chars)}" for v in values if v.found)


def field_name(name: str) -> str:
    """A name usable as a template field: ``Loyalty points`` -> ``loyalty_points``."""
    return re.sub(r"\W+", "_", name.strip()).strip("_").lower()


def fields(values: Iterable[VariableValue]) -> dict[str, Any]:
    """Values canned-response templates may use: each variable's name, and its name as an
    identifier (``field_name``) when that differs, mapped to its value."""
    out: dict[str, Any] = {}
    for v in values:
        if not v.found:
            continue
        out[v.name] = v.value
        slug = field_name(v.name)
        if slug and slug != v.name:
            out.setdefault(slug, v.value)
    return out
