"""Deleting definitions, with what must follow: references to what is deleted are removed from
whatever holds them, and relationships naming it are dropped. Every function here joins the
caller's transaction; call them inside one so that a delete is all or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from tactful.domain import (
    Agent,
    CannedResponse,
    Capability,
    ContextVariable,
    Customer,
    EndpointKind,
    Entity,
    Guideline,
    Journey,
    Relationship,
    Tag,
    Term,
    journey_tag,
)
from tactful.domain.variables import ContextVariableValue, tag_key
from tactful.errors import ConflictError
from tactful.store.base import Store

# Entities with a ``tags`` list of tag ids.
TAGGED: tuple[type[Entity], ...] = (
    Agent,
    Customer,
    Guideline,
    Term,
    Capability,
    CannedResponse,
    Journey,
    ContextVariable,
)


async def delete_tag(store: Store, tag_id: str) -> bool:
    """Delete a tag: it leaves every entity carrying it, with relationships naming it and the
    context-variable values kept for it."""
    await forget_tag(store, tag_id)
    return await store.delete(Tag, tag_id)


async def forget_tag(store: Store, tag_id: str) -> None:
    """Remove a tag from every tagged entity and drop relationships that name it."""
    for kind in TAGGED:
        for entity in await store.list(kind):
            tags: list[str] = getattr(entity, "tags", [])
            if tag_id in tags:
                await store.update(
                    entity.model_copy(update={"tags": [t for t in tags if t != tag_id]})
                )
    await _drop_relationships(store, EndpointKind.TAG, tag_id)
    await forget_values(store, tag_key(tag_id))


async def forget_values(store: Store, key: str) -> None:
    """Delete the context-variable values kept for a customer (its id) or a tag (``tag:<id>``)."""
    for value in await store.list(ContextVariableValue, key=key):
        await store.delete(ContextVariableValue, value.id)


async def delete_guideline(store: Store, guideline_id: str) -> bool:
    """Delete a guideline (or observation): relationships naming it are dropped and journeys
    no longer start on it."""
    await _drop_relationships(store, EndpointKind.GUIDELINE, guideline_id)
    for journey in await store.list(Journey):
        if guideline_id in journey.conditions:
            kept = [c for c in journey.conditions if c != guideline_id]
            await store.update(journey.model_copy(update={"conditions": kept}))
    return await store.delete(Guideline, guideline_id)


async def delete_canned_response(store: Store, canned_response_id: str) -> bool:
    """Delete a canned response; the guidelines and journey states preferring it forget it."""
    for g in await store.list(Guideline):
        if canned_response_id in g.canned_responses:
            kept = [c for c in g.canned_responses if c != canned_response_id]
            await store.update(g.model_copy(update={"canned_responses": kept}))
    for journey in await store.list(Journey):
        if any(canned_response_id in s.canned_responses for s in journey.states):
            states = [
                s.model_copy(
                    update={
                        "canned_responses": [
                            c for c in s.canned_responses if c != canned_response_id
                        ]
                    }
                )
                for s in journey.states
            ]
            await store.update(journey.model_copy(update={"states": states}))
    return await store.delete(CannedResponse, canned_response_id)


async def delete_term(store: Store, term_id: str) -> bool:
    return await store.delete(Term, term_id)


async def delete_capability(store: Store, capability_id: str) -> bool:
    return await store.delete(Capability, capability_id)


async def delete_variable(store: Store, variable_id: str) -> bool:
    """Delete a context variable with every value kept for it."""
    for value in await store.list(ContextVariableValue, variable_id=variable_id):
        await store.delete(ContextVariableValue, value.id)
    return await store.delete(ContextVariable, variable_id)


async def delete_relationship(store: Store, relationship_id: str) -> bool:
    return await store.delete(Relationship, relationship_id)


def journeys_using(journeys: Iterable[Journey], journey_id: str) -> list[Journey]:
    """The other journeys that run ``journey_id`` as a sub-journey or lead into it."""
    return [
        j
        for j in journeys
        if j.id != journey_id
        and (
            any(s.sub_journey_id == journey_id for s in j.states)
            or any(t.target_journey_id == journey_id for t in j.transitions)
        )
    ]


async def delete_journey(store: Store, journey_id: str, *, keep_observations: bool = False) -> bool:
    """Delete a journey. Raises ``ConflictError`` while another journey runs it as a
    sub-journey or leads into it.

    Its condition observations go with it unless something else needs them (another journey
    starts on them, they have an action, a relationship names them) or ``keep_observations``
    (a document that keeps them). Its tag is forgotten: relationships naming it are dropped,
    and what carried it (guidelines, canned responses scoped to it) is kept without it.
    """
    journey = await store.find(Journey, journey_id)
    if journey is None:
        return False
    journeys = await store.list(Journey)
    if users := journeys_using(journeys, journey_id):
        named = ", ".join(f"{j.id!r} ({j.title!r})" for j in users)
        raise ConflictError(
            f"journey {journey_id!r} is still used by {named}, as a sub-journey or a "
            "transition into it: change their graphs first"
        )
    await store.delete(Journey, journey_id)
    if not keep_observations:
        needed = {c for j in journeys if j.id != journey_id for c in j.conditions}
        for r in await store.list(Relationship):
            needed.update(e.id for e in (r.source, r.target) if e.kind is EndpointKind.GUIDELINE)
        for condition in journey.conditions:
            observation = await store.find(Guideline, condition)
            if observation is not None and observation.is_observation and condition not in needed:
                await store.delete(Guideline, condition)
    await forget_tag(store, journey_tag(journey_id))
    return True


async def _drop_relationships(store: Store, kind: EndpointKind, entity_id: str) -> None:
    for r in await store.list(Relationship):
        ends = (r.source, r.target)
        if any(e.kind is kind and e.id == entity_id for e in ends):
            await store.delete(Relationship, r.id)
