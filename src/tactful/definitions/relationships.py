"""Storing relationships, the same way for the SDK (``Agent.prioritize``, ``depend``,
``reevaluate_after``...) and for ``POST /relationships``.

Relationships have no update: one is identified by its kind and ends, so relating the same
ends in the same way again answers the stored one, and changing it means deleting it
(``definitions.deletion.delete_relationship``) and relating anew.
"""

from __future__ import annotations

from collections.abc import Sequence

from tactful.definitions.ends import check_end
from tactful.domain import Endpoint, Guideline, Relationship, RelationshipKind
from tactful.domain.relationships import admit, guidelines_by_tag
from tactful.store.base import Store


async def relate(
    store: Store, kind: RelationshipKind, source: Endpoint, targets: Sequence[Endpoint]
) -> list[Relationship]:
    """One ``kind`` relationship from ``source`` to each of ``targets``, in their order: the
    stored one where the same kind already relates the same ends, else a new one stored under
    its natural key. All or none, in one transaction.

    Raises ``NotFoundError`` when an end names nothing stored (``definitions.ends.check_end``)
    and ``ValidationError`` when ``domain.relationships.admit`` refuses one (a tool end for a
    kind that relates guidelines, the same end twice, a cycle: the message names it).
    """
    async with store.transaction():
        for end in (source, *targets):
            await check_end(store, end)
        existing = await store.list(Relationship)
        by_tag = guidelines_by_tag(await store.list(Guideline))
        related = []
        for target in targets:
            new = Relationship(kind=kind, source=source, target=target)
            stored = admit(new, existing, by_tag)
            if stored is None:
                stored, _ = await store.upsert(new, key=new.natural_key)
                existing.append(stored)
            related.append(stored)
    return related
