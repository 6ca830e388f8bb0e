"""Context variables: created (``POST /context-variables``), defined
(``Agent.create_variable``), changed and deleted with one set of rules. Their values (per
customer, per tag, global) are data, kept by ``tactful.engine.variables``.

The rules:
- ``freshness_rules`` is a cron expression (``check_freshness_rules``), stored stripped;
- tags are stored tags' ids or ``agent:<id>`` of a stored agent;
- ``tool_id`` names a stored tool (a registered ``@tactful.tool`` function, a connected
  service's tool).

Created, every tag and the tool are checked; changed, what the change brings in (tags it adds,
a new tool), so that a reference gone since (an ``agent:<id>`` tag of a deleted agent) does not
block other changes. Defined through the SDK, the tool is taken on trust: a program defines its
agent at start-up while its stored services are still reconnecting in the background, and a
tool function given to the SDK is registered first (``services.register_tools``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tactful.definitions import deletion
from tactful.definitions.references import check_tool, edit_tags
from tactful.definitions.tags import check_tags
from tactful.domain import ContextVariable
from tactful.engine.variables import check_freshness_rules
from tactful.store.base import Store


async def check_variable(
    store: Store,
    variable: ContextVariable,
    *,
    since: ContextVariable | None = None,
    trust_tool: bool = False,
) -> ContextVariable:
    """``variable`` as it is to be stored (rules stripped, tags without repeats).

    Raises ``ValidationError`` for a bad cron expression, ``NotFoundError`` for an unknown tag
    or tool: all of them, or (with ``since``, the stored version being changed) those it did not
    name. ``trust_tool`` skips the tool (the SDK's definitions).
    """
    rules = check_freshness_rules(variable.freshness_rules)
    before = set(since.tags) if since is not None else set()
    await check_tags(store, [t for t in variable.tags if t not in before])
    changed_tool = since is None or variable.tool_id != since.tool_id
    if variable.tool_id is not None and changed_tool and not trust_tool:
        await check_tool(store, variable.tool_id)
    tags = list(dict.fromkeys(variable.tags))
    return variable.model_copy(update={"freshness_rules": rules, "tags": tags})


async def create_variable(store: Store, variable: ContextVariable) -> ContextVariable:
    """Store a new variable. Raises ``ConflictError`` when its id is taken."""
    async with store.transaction():
        return await store.create(await check_variable(store, variable))


async def define_variable(
    store: Store, variable: ContextVariable, *, key: str | None
) -> ContextVariable:
    """Store ``variable``, replacing the one with the same id (``key`` None) or ``key``
    (``variable_key``): the SDK's idempotent definition, its tool taken on trust."""
    async with store.transaction():
        checked = await check_variable(store, variable, trust_tool=True)
        stored, _ = await store.upsert(checked, key=key)
        return stored


async def update_variable(
    store: Store,
    variable_id: str,
    changes: Mapping[str, Any],
    *,
    add_tags: Sequence[str] = (),
    remove_tags: Sequence[str] = (),
) -> ContextVariable:
    """Change the given attributes of a variable (``tool_id`` or ``freshness_rules`` None
    removes it); its tags gain ``add_tags`` and lose ``remove_tags``."""
    async with store.transaction():
        old = await store.get(ContextVariable, variable_id)
        merged = {**old.model_dump(), **changes, "id": old.id, "creation_utc": old.creation_utc}
        merged["tags"] = edit_tags(merged["tags"], add_tags, remove_tags)
        variable = ContextVariable.model_validate(merged)
        return await store.update(await check_variable(store, variable, since=old))


async def delete_variable(store: Store, variable_id: str) -> None:
    """Delete a variable with its values. Raises ``NotFoundError`` for an unknown one."""
    async with store.transaction():
        await store.get(ContextVariable, variable_id)
        await deletion.delete_variable(store, variable_id)


async def delete_variables(store: Store, *, tag_id: str | None = None) -> list[str]:
    """Delete the variables carrying ``tag_id`` (every variable without it) with their values,
    all or none; returns their ids."""
    async with store.transaction():
        gone = [
            v.id for v in await store.list(ContextVariable) if tag_id is None or tag_id in v.tags
        ]
        for variable_id in gone:
            await deletion.delete_variable(store, variable_id)
        return gone
