"""The ends of a relationship name something stored: checked the same way whether the
relationship is defined through the SDK (``Agent.prioritize``, ``reevaluate_after``...) or
``POST /relationships``."""

from __future__ import annotations

from tactful.definitions.tags import check_tags
from tactful.domain import (
    Endpoint,
    EndpointKind,
    Guideline,
    ToolSpec,
    journey_tag,
)
from tactful.errors import NotFoundError
from tactful.store.base import Store

_JOURNEY_TAG_PREFIX = journey_tag("")


async def check_end(store: Store, end: Endpoint) -> None:
    """Raise ``NotFoundError`` unless ``end`` names a stored guideline, journey (by its tag
    ``journey:<id>``, which stands for the journey), agent (by its tag ``agent:<id>``), tag,
    or tool (``service:name``, with its spec stored: a ``@tactful.tool`` function once
    registered, or a connected service's tool)."""
    if end.kind is EndpointKind.GUIDELINE:
        await store.get(Guideline, end.id)
    elif end.kind is EndpointKind.TOOL:
        service, _, name = end.id.partition(":")
        if not await store.list(ToolSpec, service_name=service, name=name):
            raise NotFoundError("Tool", end.id)
    else:
        await check_tags(store, [end.id], journey_tags=True)
