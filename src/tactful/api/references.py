"""Checks that ids named in a request exist, and the clean-ups that deleting an entity needs.

Routers call the checks before writing anything, so a request naming an unknown id writes
nothing (404). The rules for tags and tools are the definitions layer's
(``tactful.definitions.references``). Sessions go with their agent or customer; what deleting
a definition entails is ``tactful.definitions.deletion``'s.
"""

from __future__ import annotations

from collections.abc import Iterable

from tactful.definitions import references

# The rule for tags is the definitions layer's; routers still find it here.
from tactful.definitions.tags import check_tags as check_tags
from tactful.domain import GUEST_CUSTOMER_ID, Customer, Session
from tactful.errors import ConflictError
from tactful.store.base import Store


def split_tool_id(tool: str) -> tuple[str, str]:
    service, _, name = tool.partition(":")
    return service, name


async def check_tool(store: Store, service_name: str, tool_name: str) -> str:
    """The tool id ``service:name`` of a registered tool (``definitions.references``)."""
    return await references.check_tool(store, f"{service_name}:{tool_name}")


async def ensure_guest(store: Store) -> Customer:
    """The guest customer (id ``guest``), created on first use."""
    guest = await store.find(Customer, GUEST_CUSTOMER_ID)
    if guest is not None:
        return guest
    try:
        return await store.create(Customer(id=GUEST_CUSTOMER_ID, name="Guest"))
    except ConflictError:
        # Another request created it in between.
        return await store.get(Customer, GUEST_CUSTOMER_ID)


async def delete_sessions(store: Store, sessions: Iterable[Session]) -> None:
    """Delete sessions with their events, traces and flags (the store cascades them)."""
    for s in sessions:
        await store.delete(Session, s.id)
