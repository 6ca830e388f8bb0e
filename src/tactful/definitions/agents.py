"""Agents: created (``POST /agents``), defined (``Server.create_agent``), changed and deleted
with one set of rules.

An agent's tags must be stored tags (``agent:<id>`` tags scope other definitions to an agent,
and are not for agents themselves). Created, every tag is checked; changed, the tags the change
brings in. Deleting an agent deletes its sessions (with their events, traces and flags); the
definitions tagged ``agent:<id>`` stay, unused, in case an agent with that id comes back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tactful.definitions.references import edit_tags
from tactful.definitions.tags import check_tags
from tactful.domain import Agent, Session
from tactful.store.base import Store


async def check_agent(store: Store, agent: Agent, *, since: Agent | None = None) -> Agent:
    """``agent`` as it is to be stored (tags without repeats). Raises ``NotFoundError`` for a
    tag that is not stored, among all of them, or (with ``since``, the stored version being
    changed) among those it did not have."""
    before = set(since.tags) if since is not None else set()
    await check_tags(store, [t for t in agent.tags if t not in before], agent_tags=False)
    return agent.model_copy(update={"tags": list(dict.fromkeys(agent.tags))})


async def create_agent(store: Store, agent: Agent) -> Agent:
    """Store a new agent. Raises ``ConflictError`` when its id is taken."""
    async with store.transaction():
        return await store.create(await check_agent(store, agent))


async def define_agent(store: Store, agent: Agent, *, key: str | None) -> Agent:
    """Store ``agent``, replacing the one with the same id (``key`` None) or ``key``
    (``agent_key(name)``): the SDK's idempotent definition. Returns the stored agent, which
    keeps its first id and creation time."""
    async with store.transaction():
        checked = await check_agent(store, agent)
        stored, _ = await store.upsert(checked, key=key)
        return stored


async def update_agent(
    store: Store,
    agent_id: str,
    changes: Mapping[str, Any],
    *,
    add_tags: Sequence[str] = (),
    remove_tags: Sequence[str] = (),
) -> Agent:
    """Change the given attributes of an agent; its tags gain ``add_tags`` and lose
    ``remove_tags``. Raises ``NotFoundError`` for an unknown agent or added tag."""
    async with store.transaction():
        old = await store.get(Agent, agent_id)
        merged = {**old.model_dump(), **changes, "id": old.id, "creation_utc": old.creation_utc}
        merged["tags"] = edit_tags(merged["tags"], add_tags, remove_tags)
        agent = await check_agent(store, Agent.model_validate(merged), since=old)
        return await store.update(agent)


async def delete_agent(store: Store, agent_id: str) -> None:
    """Delete an agent with its sessions. Raises ``NotFoundError`` for an unknown agent."""
    async with store.transaction():
        await store.get(Agent, agent_id)
        for session in await store.list(Session, agent_id=agent_id):
            await store.delete(Session, session.id)
        await store.delete(Agent, agent_id)
