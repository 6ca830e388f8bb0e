"""Checks that ids named in a request exist, and the clean-ups that deleting an entity needs.

Routers call the checks before writing anything, so a request naming an unknown id writes
nothing (404). Deletes cascade: sessions go with their agent or customer, references to a
deleted tag, guideline, canned response or journey are removed from whatever holds them.
"""

from __future__ import annotations

from collections.abc import Iterable

from tactful.api.params import unique
from tactful.domain import (
    GUEST_CUSTOMER_ID,
    Agent,
    CannedResponse,
    ContextVariable,
    Customer,
    EndpointKind,
    Entity,
    Guideline,
    Journey,
    Relationship,
    Session,
    Tag,
    Term,
    ToolSpec,
    agent_id_of_tag,
    journey_tag,
)
from tactful.domain.variables import ContextVariableValue, tag_key
from tactful.errors import ConflictError, NotFoundError
from tactful.store.base import Store

# Entities with a ``tags`` list of tag ids.
TAGGED: tuple[type[Entity], ...] = (
    Agent,
    Customer,
    Guideline,
    Term,
    CannedResponse,
    Journey,
    ContextVariable,
)


async def check_tags(store: Store, tags: Iterable[str], *, agent_tags: bool = True) -> list[str]:
    """The tags without repeats; each must be a tag id or (if allowed) ``agent:<agent id>``."""
    checked = unique(list(tags))
    for tag in checked:
        agent_id = agent_id_of_tag(tag)
        if agent_id is not None and agent_tags:
            if await store.find(Agent, agent_id) is None:
                raise NotFoundError("Agent", agent_id)
        elif await store.find(Tag, tag) is None:
            raise NotFoundError("Tag", tag)
    return checked


async def check_canned_responses(store: Store, ids: Iterable[str]) -> list[str]:
    checked = unique(list(ids))
    for cid in checked:
        await store.get(CannedResponse, cid)
    return checked


def split_tool_id(tool: str) -> tuple[str, str]:
    service, _, name = tool.partition(":")
    return service, name


async def check_tool(store: Store, service_name: str, tool_name: str) -> str:
    """The tool id ``service:name`` of a registered tool."""
    found = await store.list(ToolSpec, service_name=service_name, name=tool_name)
    if not found:
        raise NotFoundError("Tool", f"{service_name}:{tool_name}")
    return f"{service_name}:{tool_name}"


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


async def forget_tag(store: Store, tag_id: str) -> None:
    """Remove a deleted tag from every tagged entity and drop relationships that name it."""
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


async def forget_guideline(store: Store, guideline_id: str) -> None:
    """Drop relationships naming a deleted guideline, and its place among journey conditions."""
    await _drop_relationships(store, EndpointKind.GUIDELINE, guideline_id)
    for journey in await store.list(Journey):
        if guideline_id in journey.conditions:
            kept = [c for c in journey.conditions if c != guideline_id]
            await store.update(journey.model_copy(update={"conditions": kept}))


async def forget_canned_response(store: Store, canned_response_id: str) -> None:
    """Remove a deleted canned response from the guidelines and journey states naming it."""
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


async def forget_journey(store: Store, journey: Journey) -> None:
    """Clean up after deleting ``journey``: delete its condition observations that nothing
    else needs (no other journey starts on them, no action, no relationship names them), and
    forget its tag (removed from what carries it, relationships naming it dropped)."""
    needed = {c for j in await store.list(Journey) if j.id != journey.id for c in j.conditions}
    for r in await store.list(Relationship):
        needed.update(e.id for e in (r.source, r.target) if e.kind is EndpointKind.GUIDELINE)
    for condition in journey.conditions:
        observation = await store.find(Guideline, condition)
        if observation is not None and observation.action is None and condition not in needed:
            await store.delete(Guideline, condition)
    await forget_tag(store, journey_tag(journey.id))


async def _drop_relationships(store: Store, kind: EndpointKind, entity_id: str) -> None:
    for r in await store.list(Relationship):
        ends = (r.source, r.target)
        if any(e.kind is kind and e.id == entity_id for e in ends):
            await store.delete(Relationship, r.id)
