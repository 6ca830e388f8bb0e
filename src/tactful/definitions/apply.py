"""Checking a document against a store, planning it, and applying the plan in one transaction
that is one revision.

``check`` gathers every problem before anything is written: unknown tools, canned responses,
guidelines, tags or journeys named, invalid templates, cron expressions and journey graphs,
relationship cycles. ``apply`` connects the tool services the document adds or changes (outside
the transaction: they are network calls), then deletes what the plan prunes and writes what it
creates and updates, in one transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from tactful.definitions import deletion
from tactful.definitions.document import (
    KINDS,
    AgentDefinitions,
    collect,
    derived_id,
    from_document,
    invalid,
    section_of,
    tool_ids,
)
from tactful.definitions.plan import ChangeAction, Plan, plan, prunable
from tactful.definitions.services import known_tools
from tactful.definitions.tags import named
from tactful.domain import (
    Agent,
    CannedResponse,
    Endpoint,
    EndpointKind,
    Entity,
    Guideline,
    Journey,
    Relationship,
    Tag,
    ToolServiceConfig,
)
from tactful.domain.audit import revision
from tactful.domain.canned import template_error
from tactful.domain.journeys import validate
from tactful.domain.relationships import admit, guidelines_by_tag
from tactful.engine.variables import cron_problem
from tactful.errors import TactfulError, ValidationError
from tactful.store.base import Store
from tactful.tools.registry import ToolRegistry
from tactful.tools.services import connect


async def holdings(store: Store) -> dict[type[Entity], list[Entity]]:
    """Every stored definition, by kind."""
    return {kind: list(await store.list(kind)) for kind in KINDS}


@dataclass
class Context:
    """What a document is checked against: the store's definitions other than the agent's."""

    stored: dict[type[Entity], list[Entity]]
    current: AgentDefinitions | None
    tools: set[str]

    def others(self, kind: type[Entity]) -> list[Entity]:
        """Stored definitions of ``kind`` that are not the agent's own (shared or another's)."""
        if self.current is None:
            return list(self.stored[kind])
        mine = {e.id for e in getattr(self.current, section_of(kind))}
        return [e for e in self.stored[kind] if e.id not in mine]


async def context(store: Store, tools: ToolRegistry, agent_id: str) -> Context:
    stored = await holdings(store)
    return Context(stored, collect(stored, agent_id), await known_tools(store, tools))


def check(
    ctx: Context, wanted: AgentDefinitions, *, pending_services: Collection[str] = ()
) -> None:
    """Raise ``ValidationError`` listing every problem of applying ``wanted``.

    ``pending_services``: services the document adds that are not connected yet (a plan);
    their tools are taken on trust.
    """
    problems: list[str] = []
    tools = ctx.tools
    canned = {c.id for c in [*ctx.others(CannedResponse), *wanted.canned_responses]}
    guidelines = {g.id: g for g in ctx.others(Guideline) if isinstance(g, Guideline)}
    guidelines.update({g.id: g for g in wanted.guidelines})
    journeys = {j.id: j for j in ctx.others(Journey) if isinstance(j, Journey)}
    journeys.update({j.id: j for j in wanted.journeys})
    tags = {t.id for t in ctx.stored[Tag]} | {t.id for t in wanted.tags}
    agents = {a.id for a in ctx.stored[Agent]} | {wanted.agent.id}

    for tool in sorted(tool_ids(wanted)):
        if tool not in tools and tool.partition(":")[0] not in pending_services:
            problems.append(f"tool {tool!r} is not registered on the server")
    for c in wanted.canned_responses:
        if error := template_error(c.value):
            problems.append(f"canned response {c.id!r}: invalid template: {error}")
    for g in wanted.guidelines:
        problems += [
            f"guideline {g.id!r}: canned response {r!r} does not exist"
            for r in g.canned_responses
            if r not in canned
        ]
    for v in wanted.variables:
        if v.freshness_rules and (problem := cron_problem(v.freshness_rules)):
            problems.append(f"variable {v.name!r}: freshness rules: {problem}")
    owned = [*wanted.guidelines, *wanted.canned_responses, *wanted.terms, *wanted.capabilities]
    for entity in [*owned, *wanted.journeys]:
        for tag in getattr(entity, "tags", []):
            if not _tag_exists(tag, tags, agents, journeys):
                problems.append(f"{entity.id!r}: tag {tag!r} does not exist")
    for j in wanted.journeys:
        problems += [
            f"journey {j.title!r}: condition {c!r} is not a guideline"
            for c in j.conditions
            if c not in guidelines
        ]
        others = {i: o for i, o in journeys.items() if i != j.id}
        for problem in validate(
            j, known_tools=None, known_canned_responses=canned, journeys=others
        ):
            problems.append(f"journey {j.title!r}: {problem}")
    problems += _relationship_problems(ctx, wanted, guidelines, tags, agents, journeys)
    if problems:
        raise invalid(problems)


def _tag_exists(
    tag: str, tags: Collection[str], agents: Collection[str], journeys: Collection[str]
) -> bool:
    """Whether ``tag`` names something the document or the store holds (``tags.named``)."""
    kind, id = named(tag)
    known = {Agent: agents, Journey: journeys}.get(kind, tags)
    return id in known


def _relationship_problems(
    ctx: Context,
    wanted: AgentDefinitions,
    guidelines: dict[str, Guideline],
    tags: Collection[str],
    agents: Collection[str],
    journeys: Collection[str],
) -> list[str]:
    problems = []

    def exists(end: Endpoint) -> bool:
        if end.kind is EndpointKind.GUIDELINE:
            return end.id in guidelines
        if end.kind is EndpointKind.TAG:
            return _tag_exists(end.id, tags, agents, journeys)
        return True  # tools: checked with the others

    current = ctx.current or AgentDefinitions(agent=wanted.agent)
    pruned = {r.id for r in prunable(current, wanted)}
    kept = [
        r for r in ctx.stored[Relationship] if isinstance(r, Relationship) and r.id not in pruned
    ]
    by_tag = guidelines_by_tag(guidelines.values())
    for r in wanted.relationships:
        missing = [e for e in (r.source, r.target) if not exists(e)]
        if missing:
            problems += [
                f"relationship {r.id!r}: {e.kind.value} {e.id!r} does not exist" for e in missing
            ]
            continue
        try:
            if admit(r, kept, by_tag) is None:
                kept.append(r)
        except TactfulError as e:
            problems.append(f"relationship {r.id!r}: {e}")
    return problems


async def read_document(store: Store, document: Mapping[str, Any]) -> AgentDefinitions:
    """A document (the file format) as the definitions of its agent: ``agent.id``, else the
    stored agent of that name, else a new one whose id is derived from the name."""
    agent = document.get("agent")
    if not isinstance(agent, dict) or not isinstance(agent.get("name"), str):
        raise ValidationError(
            "a definitions document needs an `agent` mapping with its name",
            loc=("body", "document", "agent"),
        )
    agent_id = agent.get("id")
    if not isinstance(agent_id, str) or not agent_id:
        named = await store.list(Agent, name=agent["name"])
        agent_id = named[0].id if named else derived_id("agent", agent["name"])
    return from_document(document, agent_id)


@dataclass(frozen=True)
class Applied:
    plan: Plan
    # The revision the changes form (None: nothing changed).
    revision: int | None


async def plan_document(store: Store, tools: ToolRegistry, wanted: AgentDefinitions) -> Plan:
    """Check ``wanted`` against the store and say what applying it would change."""
    ctx = await context(store, tools, wanted.agent.id)
    stored_services = {
        s.name: s for s in ctx.stored[ToolServiceConfig] if isinstance(s, ToolServiceConfig)
    }
    pending = {s.name for s in wanted.services if s.name not in stored_services}
    check(ctx, wanted, pending_services=pending)
    return plan(ctx.current, wanted)


async def apply_document(
    store: Store, tools: ToolRegistry, wanted: AgentDefinitions, *, summary: str
) -> Applied:
    """Make the stored definitions of ``wanted.agent`` those of ``wanted``: connect the
    services it adds or changes, check everything, then write the plan in one transaction,
    recorded as one revision described by ``summary``."""
    stored_services = {s.name: s for s in await store.list(ToolServiceConfig)}
    for service in wanted.services:
        old = stored_services.get(service.name)
        if old is None or (old.kind, old.url, old.source) != (
            service.kind,
            service.url,
            service.source,
        ):
            if old is not None:
                await tools.remove_service(service.name)
            await connect(tools, store, service)
    with revision(summary) as scope:
        async with store.transaction():
            ctx = await context(store, tools, wanted.agent.id)
            check(ctx, wanted)
            changes = plan(ctx.current, wanted)
            await _write(store, ctx, wanted, changes)
    return Applied(changes, scope.id)


async def _write(store: Store, ctx: Context, wanted: AgentDefinitions, changes: Plan) -> None:
    deleted = {c.id for c in changes.changes if c.action is ChangeAction.DELETE}
    current = ctx.current

    async def put(entity: Entity, *, key: str | None = None) -> None:
        # Read again: a deletion above may have changed it (a journey's tag forgotten).
        old = await store.find(type(entity), entity.id)
        if old is None:
            if key is not None:
                await store.upsert(entity, key=key)
            else:
                await store.upsert(entity)
        elif entity.model_copy(update={"creation_utc": old.creation_utc}) != old:
            # ``update`` keeps the natural key an SDK definition was made under.
            await store.update(entity.model_copy(update={"creation_utc": old.creation_utc}))

    await put(wanted.agent)
    for t in wanted.tags:
        await put(t)
    for s in wanted.services:
        stored = await store.list(ToolServiceConfig, name=s.name)
        await store.upsert(
            s.model_copy(update={"id": stored[0].id}) if stored else s, key=f"service:{s.name}"
        )
    if current is not None:
        for r in current.relationships:
            if r.id in deleted:
                await deletion.delete_relationship(store, r.id)
        for j in current.journeys:
            if j.id in deleted:
                await deletion.delete_journey(store, j.id, keep_observations=True)
        for g in current.guidelines:
            if g.id in deleted:
                await deletion.delete_guideline(store, g.id)
        for c in current.canned_responses:
            if c.id in deleted:
                await deletion.delete_canned_response(store, c.id)
        for term in current.terms:
            if term.id in deleted:
                await deletion.delete_term(store, term.id)
        for capability in current.capabilities:
            if capability.id in deleted:
                await deletion.delete_capability(store, capability.id)
        for v in current.variables:
            if v.id in deleted:
                await deletion.delete_variable(store, v.id)
    for entity in [
        *wanted.canned_responses,
        *wanted.guidelines,
        *wanted.terms,
        *wanted.capabilities,
        *wanted.variables,
        *wanted.journeys,
    ]:
        await put(entity)
    existing = await store.list(Relationship)
    for r in wanted.relationships:
        if not any(e.same_as(r) for e in existing):
            await put(r, key=r.natural_key)
