"""Checks that ids named in a request exist, and the clean-ups that deleting an entity needs.

Routers call the checks before writing anything, so a request naming an unknown id writes
nothing (404). The rules for tags and tools are the definitions layer's
(``tactful.definitions.references``). Sessions go with their agent or customer; what deleting
a definition entails is ``tactful.definitions.deletion``'s.
"""

from __future__ import annotations

from collections.abc import Iterable

from tactful.definitions import references
from tactful.definitions.customers import ensure_guest as ensure_guest

# The rule for tags is the definitions layer's; routers still find it here.
from tactful.definitions.tags import check_tags as check_tags
from tactful.domain import Session
from tactful.store.base import Store


def split_tool_id(tool: str) -> tuple[str, str]:
    service, _, name = tool.partition(":")
    return service, name


async def check_tool(store: Store, service_name: str, tool_name: str) -> str:
    """The tool id ``service:name`` of a registered tool (``definitions.references``)."""
    return await references.check_tool(store, f"{service_name}:{tool_name}")


async def delete_sessions(store: Store, sessions: Iterable[Session]) -> None:
    """Delete sessions with their events, traces and flags (the store cascades them)."""
    for s in sessions:
        await store.delete(Session, s.id)
