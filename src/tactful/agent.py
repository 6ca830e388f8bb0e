"""The SDK's ``Agent``: idempotent definitions of guidelines, canned responses, terms,
capabilities, relationships, context variables, code matchers and hooks for one agent."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from tactful.agent_code import AgentCode
from tactful.definitions import journeys, services
from tactful.definitions.canned import define_canned_response
from tactful.definitions.capabilities import define_capability
from tactful.definitions.customers import ensure_guest
from tactful.definitions.glossary import define_term
from tactful.definitions.guidelines import define_guideline, mark_always
from tactful.definitions.keys import (
    canned_response_key,
    capability_key,
    guideline_key,
    journey_key,
    observation_key,
    term_key,
    variable_key,
)
from tactful.definitions.prune import Pruned, prune_agent
from tactful.definitions.relationships import relate
from tactful.definitions.stored import StoredDefinitions
from tactful.definitions.variables import define_variable
from tactful.domain import (
    GUEST_CUSTOMER_ID,
    CannedResponse,
    CannedResponseField,
    Capability,
    CompositionMode,
    Criticality,
    Customer,
    Endpoint,
    EndpointKind,
    Entity,
    Guideline,
    Journey,
    Relationship,
    RelationshipKind,
    Tag,
    Term,
    agent_tag,
    journey_tag,
)
from tactful.domain import Agent as AgentModel
from tactful.domain.evaluations import Finding, ProposedGuideline
from tactful.domain.variables import GLOBAL_KEY, ContextVariable, ContextVariableValue, tag_key
from tactful.engine.variables import (
    choose,
    read_value,
    stored_values,
    write_value,
)
from tactful.errors import ValidationError
from tactful.journey import JourneyHandle
from tactful.runtime import Runtime

log = logging.getLogger("tactful")


# A guideline (or its id), a tag or a journey: one end of a relationship.
GuidelineRef = Guideline | str
EndRef = Guideline | Tag | JourneyHandle | Journey | str

_JOURNEY_TAG_PREFIX = journey_tag("")


def _end(ref: EndRef) -> Endpoint:
    if isinstance(ref, Guideline):
        return Endpoint.guideline(ref.id)
    if isinstance(ref, Tag):
        return Endpoint.tag(ref.id)
    if isinstance(ref, JourneyHandle | Journey):
        # A journey's tag stands for the journey itself: active while it is followed.
        return Endpoint.tag(journey_tag(ref.id))
    if isinstance(ref, str) and ref:
        return Endpoint.guideline(ref)
    raise ValidationError(f"{ref!r} is not a guideline, a guideline id, a tactful.Tag or a journey")


def _guideline_id(ref: GuidelineRef) -> str:
    end = _end(ref)
    if end.kind is not EndpointKind.GUIDELINE:
        raise ValidationError(f"{ref!r} is not a guideline or a guideline id")
    return end.id


def _variable_id(variable: ContextVariable | str) -> str:
    if isinstance(variable, ContextVariable):
        return variable.id
    if isinstance(variable, str) and variable:
        return variable
    raise ValidationError(f"{variable!r} is not a context variable or a context variable id")


class Agent(AgentCode):
    """An agent defined through the SDK. Its ``create_*`` methods are idempotent; the code it
    runs in this process (matchers, hooks, retrievers) attaches through ``AgentCode``.

    Each handle records what was defined through it (and through its journeys' handles), so
    that ``prune`` can delete what a run of the definitions no longer defines.
    """

    def __init__(self, runtime: Runtime, model: AgentModel) -> None:
        # Where it runs: the store its definitions go to, the engine its code attaches to.
        self.runtime = runtime
        self.model = model
        self._defined: set[tuple[type[Entity], str]] = set()
        # What was stored when this handle began defining: a restart writes nothing.
        self._stored = StoredDefinitions(runtime.store)

    @property
    def id(self) -> str:
        return self.model.id

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def tag(self) -> str:
        """The tag that scopes definitions to this agent."""
        return agent_tag(self.id)

    def _guideline_id(self, guideline: GuidelineRef) -> str:
        return _guideline_id(guideline)

    async def _register_tools(self, tools: Iterable[Any]) -> list[str]:
        """Ids of ``tools`` (``@tactful.tool`` functions registered in this process)."""
        return await services.register_tools(self.runtime.store, self.runtime.engine.tools, tools)

    async def create_guideline(
        self,
        condition: str,
        action: str | None = None,
        *,
        id: str | None = None,
        description: str | None = None,
        tools: Sequence[Any] = (),
        priority: int = 0,
        criticality: Criticality = Criticality.MEDIUM,
        tags: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
        examples: Sequence[str] = (),
        canned_responses: Sequence[CannedResponse | str] = (),
        composition_mode: CompositionMode | None = None,
        enabled: bool = True,
        always: bool = False,
        always_check: bool | None = None,
        about_reply: bool | None = None,
        labels: Sequence[str] = (),
    ) -> Guideline:
        """Define "when ``condition``, then ``action``". Without an action it is an observation.

        Idempotent: an explicit ``id`` is the stable identity; otherwise the condition and
        action are. ``always=True`` applies it every turn with no check; ``always_check``
        overrides whether it is always checked in detail (None: classified automatically).
        ``about_reply`` marks a condition about the agent's own reply ("the agent is about to
        promise a delivery date"), checked against the written draft before it is sent (None:
        recognised from the wording). Its tags and canned responses must be stored
        (``NotFoundError`` otherwise), as for ``POST /guidelines``. ``labels`` are added to a
        session's labels when the guideline is active in one of its turns (docs/sessions.md).
        """
        guideline = Guideline(
            condition=condition,
            action=action,
            description=description,
            priority=priority,
            criticality=criticality,
            tags=[self.tag, *tags],
            metadata=metadata or {},
            examples=list(examples),
            tools=await self._register_tools(tools),
            canned_responses=[c if isinstance(c, str) else c.id for c in canned_responses],
            composition_mode=composition_mode,
            enabled=enabled,
            always=always,
            always_check=always_check,
            about_reply=about_reply,
            labels=list(labels),
            **({"id": id} if id else {}),
        )
        key = guideline_key(self.id, tags, condition, action) if id is None else None
        stored = await define_guideline(self.runtime.store, guideline, key=key, stored=self._stored)
        self._defined.add((Guideline, stored.id))
        return stored

    async def create_observation(
        self,
        condition: str,
        *,
        id: str | None = None,
        description: str | None = None,
        tags: Sequence[str] = (),
        examples: Sequence[str] = (),
    ) -> Guideline:
        """A condition without an action: a fact other rules can depend on or be scoped by."""
        return await self.create_guideline(
            condition, None, id=id, description=description, tags=tags, examples=examples
        )

    async def create_canned_response(
        self,
        template: str,
        *,
        id: str | None = None,
        signals: Sequence[str] = (),
        fields: Sequence[CannedResponseField] = (),
        tags: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
    ) -> CannedResponse:
        """An exact reply template (Jinja2 ``{{field}}``); sent only when its fields are present.
        A template that does not compile raises ``ValidationError`` (``check_template``) and an
        unknown tag ``NotFoundError``, as ``POST /canned_responses`` does."""
        response = CannedResponse(
            value=template,
            signals=list(signals),
            fields=list(fields),
            tags=[self.tag, *tags],
            metadata=metadata or {},
            **({"id": id} if id else {}),
        )
        key = canned_response_key(self.id, tags, template) if id is None else None
        stored = await define_canned_response(self.runtime.store, response, key=key)
        self._defined.add((CannedResponse, stored.id))
        return stored

    async def create_term(
        self,
        name: str,
        description: str,
        *,
        synonyms: Sequence[str] = (),
        id: str | None = None,
        tags: Sequence[str] = (),
    ) -> Term:
        """A glossary term, identified by its name within this agent. An unknown tag raises
        ``NotFoundError``, as ``POST /terms`` does."""
        term = Term(
            name=name,
            description=description,
            synonyms=list(synonyms),
            tags=[self.tag, *tags],
            **({"id": id} if id else {}),
        )
        key = term_key(self.id, name) if id is None else None
        stored = await define_term(self.runtime.store, term, key=key)
        self._defined.add((Term, stored.id))
        return stored

    async def create_capability(
        self,
        title: str,
        description: str,
        *,
        signals: Sequence[str] = (),
        id: str | None = None,
        tags: Sequence[str] = (),
    ) -> Capability:
        """Something this agent can actually do for a customer ("Replace a broken phone"),
        offered in the turns it is relevant to: ``signals`` are things a customer says when
        they need it. Identified by its title within this agent (whatever its case). An
        unknown tag raises ``NotFoundError``, as ``POST /capabilities`` does."""
        capability = Capability(
            title=title,
            description=description,
            signals=list(signals),
            tags=[self.tag, *tags],
            **({"id": id} if id else {}),
        )
        key = capability_key(self.id, title) if id is None else None
        stored = await define_capability(self.runtime.store, capability, key=key)
        self._defined.add((Capability, stored.id))
        return stored

    async def capabilities(self) -> list[Capability]:
        """This agent's capabilities, in creation order."""
        return [c for c in await self.runtime.store.list(Capability) if self.tag in c.tags]

    async def create_journey(
        self,
        title: str,
        *,
        conditions: Sequence[str | Guideline] = (),
        description: str = "",
        id: str | None = None,
        tags: Sequence[str] = (),
        priority: int = 0,
        composition_mode: CompositionMode | None = None,
        labels: Sequence[str] = (),
    ) -> JourneyHandle:
        """A journey (a procedure the agent follows), started when any of ``conditions`` holds.

        Each condition text becomes an observation carrying the journey's tags (this agent's
        and ``tags``); an observation with that condition, no action and exactly those tags is
        reused rather than defined again (``POST /journeys`` does the same). An observation made
        with ``create_observation`` (for instance with example utterances, which help the
        offline tier recognise it) may be passed instead, as it is. ``composition_mode``
        applies to the journey's replies unless a state sets its own. Idempotent by ``id``,
        else by title within this agent; re-defining keeps the states and transitions already
        built (extend them with ``journey.initial_state.transition_to(...)``). Condition texts
        are stripped, blank ones and repeats skipped; ``tags`` must be stored tags
        (``NotFoundError`` otherwise), as for ``POST /journeys``. ``labels`` are added to a
        session's labels when a turn of it follows the journey (docs/sessions.md).
        """
        journey_tags = list(dict.fromkeys([self.tag, *tags]))
        key = journey_key(self.id, title)
        journey = Journey(
            title=title,
            description=description,
            tags=journey_tags,
            priority=priority,
            composition_mode=composition_mode,
            labels=list(labels),
            **({"id": id} if id else {}),
        )
        stored = await journeys.define_journey(
            self.runtime.store,
            journey,
            key=None if id else key,
            conditions=conditions,
            observation_key=lambda condition: observation_key(self.id, journey_tags, condition),
        )
        # The observations made (or reused) for its condition texts are this handle's too.
        given = {c.id for c in conditions if isinstance(c, Guideline)}
        self._defined.add((Journey, stored.id))
        self._defined.update((Guideline, c) for c in stored.conditions if c not in given)
        return JourneyHandle(self, stored)

    async def guidelines(self) -> list[Guideline]:
        """This agent's guidelines, in creation order."""
        return [g for g in await self.runtime.store.list(Guideline) if self.tag in g.tags]

    # -- context variables ------------------------------------------------------------------------

    async def create_variable(
        self,
        name: str,
        description: str = "",
        *,
        tool: Any = None,
        freshness_rules: str | None = None,
        id: str | None = None,
        tags: Sequence[str] = (),
    ) -> ContextVariable:
        """A context variable of this agent: a value per customer, per tag or global.

        With ``tool`` (a ``@tactful.tool`` function or a tool id) the customer's value comes from
        calling it with its hidden parameters filled from context, when the customer has none
        yet and, with ``freshness_rules`` (a cron expression such as ``"*/5 * * * *"``), again
        each time the rule ticked since. Idempotent by ``id``, else by name within this agent.
        Raises ``ValidationError`` for a bad cron expression and ``NotFoundError`` for a tag that
        is not stored, as ``POST /context-variables`` does; a tool id is taken on trust.
        """
        store = self.runtime.store
        async with store.transaction():
            tool_id = None
            if tool is not None:
                [tool_id] = await self._register_tools([tool])
            variable = ContextVariable(
                name=name,
                description=description,
                tool_id=tool_id,
                freshness_rules=freshness_rules,
                tags=[self.tag, *tags],
                **({"id": id} if id else {}),
            )
            key = None if id else variable_key(self.id, name)
            stored = await define_variable(store, variable, key=key)
        self._defined.add((ContextVariable, stored.id))
        return stored

    async def variables(self) -> list[ContextVariable]:
        """This agent's context variables, in creation order."""
        store = self.runtime.store
        return [v for v in await store.list(ContextVariable) if self.tag in v.tags]

    async def set_variable_value(
        self,
        variable: ContextVariable | str,
        value: Any,
        *,
        customer: Customer | str | None = None,
        tag: Tag | str | None = None,
    ) -> ContextVariableValue:
        """Set ``variable``'s value for ``customer``, for the customers carrying ``tag``, or
        (with neither) for everyone. Replaces the value of that scope."""
        store = self.runtime.store
        stored = await store.get(ContextVariable, _variable_id(variable))
        if customer is not None and tag is not None:
            raise ValidationError("set a value for a customer or for a tag, not both")
        if customer is not None:
            key = (await self._variable_customer(customer)).id
        elif tag is not None:
            key = tag_key(await self._variable_tag(tag))
        else:
            key = GLOBAL_KEY
        return await write_value(store, stored.id, key, value)

    async def variable_value(
        self,
        variable: ContextVariable | str,
        *,
        customer: Customer | str | None = None,
        tag: Tag | str | None = None,
    ) -> Any:
        """The value the agent would use (None if there is none; the tool is not called).

        For ``customer``: theirs, else the value of the first of their tags that has one, else
        the global one. For ``tag``: that tag's value, else the global one. With neither: the
        global value.
        """
        store = self.runtime.store
        stored = await store.get(ContextVariable, _variable_id(variable))
        if customer is not None and tag is not None:
            raise ValidationError("read the value of a customer or of a tag, not both")
        if customer is not None:
            who = await self._variable_customer(customer)
            found = choose((await stored_values(store, who)).get(stored.id, {}), who)
            return found.data if found is not None else None
        keys = [tag_key(await self._variable_tag(tag))] if tag is not None else []
        for key in [*keys, GLOBAL_KEY]:
            if (value := await read_value(store, stored.id, key)) is not None:
                return value.data
        return None

    async def _variable_customer(self, customer: Customer | str) -> Customer:
        if isinstance(customer, Customer):
            return customer
        if customer == GUEST_CUSTOMER_ID:
            await ensure_guest(self.runtime.store)
        return await self.runtime.store.get(Customer, customer)

    async def _variable_tag(self, tag: Tag | str) -> str:
        tag_id = tag.id if isinstance(tag, Tag) else tag
        await self.runtime.store.get(Tag, tag_id)
        return tag_id

    # -- relationships ----------------------------------------------------------------------------

    async def prioritize(self, guideline: EndRef, *, over: EndRef) -> Relationship:
        """When both are active, ``guideline`` wins and ``over`` is dropped. Either may be a
        ``tactful.Tag`` (every guideline carrying it) or a journey (active while it is
        followed), here and in every relationship below."""
        [r] = await self._relate(RelationshipKind.PRIORITY, guideline, [over])
        return r

    async def entail(self, guideline: EndRef, then: EndRef) -> Relationship:
        """Whenever ``guideline`` is active, ``then`` is active too."""
        [r] = await self._relate(RelationshipKind.ENTAILMENT, guideline, [then])
        return r

    async def exclude(self, guideline: EndRef, other: EndRef) -> Relationship:
        """The two are never active together: the higher numeric priority stays, then the
        better match, then ``guideline``."""
        [r] = await self._relate(RelationshipKind.EXCLUSION, guideline, [other])
        return r

    async def depend(
        self,
        guideline: EndRef,
        *,
        on: Sequence[EndRef] = (),
        on_any: Sequence[EndRef] = (),
    ) -> list[Relationship]:
        """``guideline`` is active only if ALL of ``on`` are, and (when ``on_any`` is given) at
        least one of ``on_any``. Observations make good dependencies."""
        if not on and not on_any:
            raise ValidationError("depend() needs `on` (all of) or `on_any` (any of)")
        async with self.runtime.store.transaction():
            return [
                *await self._relate(RelationshipKind.DEPENDENCY, guideline, on),
                *await self._relate(RelationshipKind.DEPENDENCY_ANY, guideline, on_any),
            ]

    async def disambiguate(
        self, observation: GuidelineRef, options: Sequence[EndRef]
    ) -> list[Relationship]:
        """When ``observation`` holds and two or more ``options`` match, the agent asks which
        one the customer means instead of guessing."""
        if len(options) < 2:
            raise ValidationError("disambiguate() needs at least two options")
        source = _guideline_id(observation)
        return await self._relate(RelationshipKind.DISAMBIGUATION, source, options)

    async def relationships(self) -> list[Relationship]:
        """Relationships with an end among this agent's guidelines, its tag or its journeys."""
        store = self.runtime.store
        ids = {g.id for g in await self.guidelines()}
        ours = {(EndpointKind.GUIDELINE, i) for i in ids} | {(EndpointKind.TAG, self.tag)}
        ours |= {
            (EndpointKind.TAG, journey_tag(j.id))
            for j in await store.list(Journey)
            if self.tag in j.tags
        }
        return [
            r
            for r in await store.list(Relationship)
            if {(r.source.kind, r.source.id), (r.target.kind, r.target.id)} & ours
        ]

    async def prune(self) -> Pruned:
        """Delete this agent's definitions that were not defined through this handle.

        Call it after running all of an agent's definitions on a fresh handle (``tactful serve
        --agent FILE`` does, after the file's ``define``): whatever left the definitions leaves
        the server. The agent's definitions are its journeys, guidelines, observations, canned
        responses, terms, capabilities and context variables (everything carrying its tag,
        including what was created through REST: the definitions manage the agent); deleting
        them cleans up as the REST deletes do (a variable's values go with it, journeys and
        guidelines forget a deleted canned response, journeys forget a deleted condition).
        Relationships go when an end is deleted, or when they were not defined through this
        handle, have an end among the agent's guidelines, journeys or tag, and no end belonging
        to something else (another agent's or an untagged guideline or journey); tool and
        plain-tag ends count for neither. All in one transaction. Not pruned: the agent
        itself, tags, tools, states and transitions of a journey still defined, matchers, hooks
        and retrievers (in memory).

        A handle through which nothing was defined prunes nothing (a log line says so): it is
        probably not the handle the definitions used. Programs using the SDK directly are
        never pruned unless they call this. Raises ``ConflictError`` (and deletes nothing) when
        a journey to delete is still a sub-journey or transition target of a kept one.
        """
        if not self._defined:
            log.warning("not pruning agent %r: nothing was defined through this handle", self.name)
            return Pruned()
        return await prune_agent(self.runtime.store, self.id, self.name, self._defined)

    async def evaluate(
        self, proposed: Sequence[ProposedGuideline | tuple[str, str | None]] = ()
    ) -> list[Finding]:
        """Check this agent's guidelines for near-duplicates and contradictions: among
        themselves, or ``proposed`` ones (``ProposedGuideline`` or ``(condition, action)``)
        against them and each other, before defining them. Offline the embeddings and the
        words decide; with a model, it is asked about the closest pairs (docs/evaluations.md).
        Reports only: nothing is changed or refused."""
        wanted = [
            p
            if isinstance(p, ProposedGuideline)
            else ProposedGuideline(condition=p[0], action=p[1])
            for p in proposed
        ]
        return await self.runtime.engine.evaluations.findings(self.id, wanted)

    async def reevaluate_after(self, tool: Any, guideline: EndRef) -> Relationship:
        """After ``tool`` returns, check ``guideline`` (or a tag's guidelines) again with the
        result in view: its condition may depend on what the tool found. ``tool`` is a
        ``@tactful.tool`` function or the id of a tool registered otherwise (a connected
        service's); an id naming no stored tool raises ``NotFoundError``, as
        ``POST /relationships`` answers 404."""
        [tool_ref] = await self._register_tools([tool])
        [related] = await relate(
            self.runtime.store,
            RelationshipKind.REEVALUATION,
            Endpoint.tool(tool_ref),
            [_end(guideline)],
        )
        self._defined.add((Relationship, related.id))
        return related

    async def _relate(
        self, kind: RelationshipKind, source: EndRef, targets: Sequence[EndRef]
    ) -> list[Relationship]:
        """Create one relationship per target, idempotently (same kind and ends: the stored
        one), all or none; unknown ends raise ``NotFoundError``, cycles ``ValidationError``."""
        ends = [_end(source), *(_end(t) for t in targets)]
        related = await relate(self.runtime.store, kind, ends[0], ends[1:])
        self._defined.update((Relationship, r.id) for r in related)
        return related

    async def match_always(self, guideline: GuidelineRef) -> Guideline:
        """Mark ``guideline`` always-match: it applies on every turn, with no check."""
        return await mark_always(self.runtime.store, _guideline_id(guideline))
