"""What a definition names must exist: its tools (its tags: ``definitions.tags``). Checked here,
the same way for the SDK and the REST API, before anything is written (an unknown one is
``NotFoundError``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tactful.domain import ToolSpec
from tactful.errors import NotFoundError
from tactful.store.base import Store


def edit_tags(current: Sequence[str], add: Sequence[str], remove: Sequence[str]) -> list[str]:
    """``current`` plus ``add`` minus ``remove``, without repeats, order kept."""
    dropped = set(remove)
    return [t for t in dict.fromkeys([*current, *add]) if t not in dropped]


async def check_tools(store: Store, ids: Iterable[str], *, held: Iterable[str] = ()) -> list[str]:
    """The tool ids (``service:name``) without repeats; each not in ``held`` (what the stored
    definition already names) must be a stored tool (``check_tool``)."""
    checked = list(dict.fromkeys(ids))
    kept = set(held)
    for tool in checked:
        if tool not in kept:
            await check_tool(store, tool)
    return checked


async def check_tool(store: Store, tool_id: str) -> str:
    """``tool_id`` (``service:name``) when a tool with that id is stored: a ``@tactful.tool``
    function once registered, or a tool of a connected service."""
    service, _, name = tool_id.partition(":")
    if not await store.list(ToolSpec, service_name=service, name=name):
        raise NotFoundError("Tool", tool_id)
    return tool_id
