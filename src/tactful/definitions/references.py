"""What a definition names must exist: its tags and its tools. Checked here, the same way for
the SDK and the REST API, before anything is written (an unknown one is ``NotFoundError``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tactful.domain import Agent, Tag, ToolSpec, agent_id_of_tag
from tactful.errors import NotFoundError
from tactful.store.base import Store


async def check_tags(store: Store, tags: Iterable[str], *, agent_tags: bool = True) -> list[str]:
    """The tags without repeats, in order; each must be a stored tag's id or (when
    ``agent_tags``) ``agent:<id>`` of a stored agent."""
    checked = list(dict.fromkeys(tags))
    for tag in checked:
        agent_id = agent_id_of_tag(tag)
        if agent_id is not None and agent_tags:
            if await store.find(Agent, agent_id) is None:
                raise NotFoundError("Agent", agent_id)
        elif await store.find(Tag, tag) is None:
            raise NotFoundError("Tag", tag)
    return checked


def edit_tags(current: Sequence[str], add: Sequence[str], remove: Sequence[str]) -> list[str]:
    """``current`` plus ``add`` minus ``remove``, without repeats, order kept."""
    dropped = set(remove)
    return [t for t in dict.fromkeys([*current, *add]) if t not in dropped]


async def check_tool(store: Store, tool_id: str) -> str:
    """``tool_id`` (``service:name``) when a tool with that id is stored: a ``@tactful.tool``
    function once registered, or a tool of a connected service."""
    service, _, name = tool_id.partition(":")
    if not await store.list(ToolSpec, service_name=service, name=name):
        raise NotFoundError("Tool", tool_id)
    return tool_id
