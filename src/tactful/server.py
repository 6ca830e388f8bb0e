"""The SDK: define an agent in Python, persistently and idempotently, and serve it.

```python
async with tactful.Server() as server:
    agent = await server.create_agent(name="Support", description="...")
    await agent.create_guideline(condition="...", action="...")
```

Definitions are upserted by a stable key (an explicit ``id``, else the name or the content), so
running the same program twice does not duplicate anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from tactful.config import Settings
from tactful.domain import (
    GUEST_CUSTOMER_ID,
    CannedResponse,
    CannedResponseField,
    CompositionMode,
    Criticality,
    Customer,
    Endpoint,
    EndpointKind,
    Entity,
    Event,
    EventKind,
    EventSource,
    Guideline,
    Relationship,
    RelationshipKind,
    Session,
    Tag,
    Term,
    ToolSpec,
    agent_tag,
)
from tactful.domain import Agent as AgentModel
from tactful.domain.variables import GLOBAL_KEY, ContextVariable, ContextVariableValue, tag_key
from tactful.engine import canned
from tactful.engine.hooks import Hooks, MessageHook, Predicate, SelectedHook
from tactful.engine.resolve import admit, guidelines_by_tag
from tactful.engine.variables import (
    check_freshness_rules,
    choose,
    read_value,
    stored_values,
    write_value,
)
from tactful.errors import ConfigurationError, ValidationError
from tactful.llm.base import Embedder, Generator
from tactful.runtime import Runtime, start_runtime
from tactful.store.base import E
from tactful.tools import PythonTool, ToolService

log = logging.getLogger("tactful")


def _digest(*parts: str | None) -> str:
    return hashlib.sha256("\x00".join(p or "" for p in parts).encode()).hexdigest()[:32]


# A guideline (or its id) or a tag: one end of a relationship.
GuidelineRef = Guideline | str
EndRef = Guideline | Tag | str


def _end(ref: EndRef) -> Endpoint:
    if isinstance(ref, Guideline):
        return Endpoint.guideline(ref.id)
    if isinstance(ref, Tag):
        return Endpoint.tag(ref.id)
    if isinstance(ref, str) and ref:
        return Endpoint.guideline(ref)
    raise ValidationError(f"{ref!r} is not a guideline, a guideline id or a tactful.Tag")


def _guideline_id(ref: GuidelineRef) -> str:
    end = _end(ref)
    if end.kind is not EndpointKind.GUIDELINE:
        raise ValidationError(f"{ref!r} is not a guideline or a guideline id")
    return end.id


def _tool_ids(tools: Iterable[Any]) -> list[str]:
    """Tool ids from strings (``service:name``) or objects carrying a ``tool_id``."""
    ids = []
    for t in tools:
        tid = t if isinstance(t, str) else getattr(t, "tool_id", None)
        if not isinstance(tid, str) or not tid:
            raise ValidationError(
                f"{t!r} is not a tool: pass a tool id or a @tactful.tool function"
            )
        ids.append(tid)
    return ids


def _variable_id(variable: ContextVariable | str) -> str:
    if isinstance(variable, ContextVariable):
        return variable.id
    if isinstance(variable, str) and variable:
        return variable
    raise ValidationError(f"{variable!r} is not a context variable or a context variable id")


class Agent:
    """An agent defined through the SDK. Its ``create_*`` methods are idempotent."""

    def __init__(self, server: Server, model: AgentModel) -> None:
        self._server = server
        self.model = model

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

    async def _define(self, entity: E, key: str, explicit_id: str | None) -> E:
        store = self._server.runtime.store
        if explicit_id is not None:
            stored, _ = await store.upsert(entity)
        else:
            stored, _ = await store.upsert(entity, key=key)
        return stored

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
    ) -> Guideline:
        """Define "when ``condition``, then ``action``". Without an action it is an observation.

        Idempotent: an explicit ``id`` is the stable identity; otherwise the condition and
        action are. ``always=True`` applies it every turn with no check; ``always_check``
        overrides whether it is always checked in detail (None: classified automatically).
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
            tools=await self._server.register_tools(tools),
            canned_responses=[c if isinstance(c, str) else c.id for c in canned_responses],
            composition_mode=composition_mode,
            enabled=enabled,
            always=always,
            always_check=always_check,
            **({"id": id} if id else {}),
        )
        key = f"guideline:{self.id}:{_digest(condition, action)}"
        return await self._define(guideline, key, id)

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
        """An exact reply template (Jinja2 ``{{field}}``); sent only when its fields are present."""
        if error := canned.is_valid_template(template):
            raise ValidationError(f"invalid canned response template: {error}")
        response = CannedResponse(
            value=template,
            signals=list(signals),
            fields=list(fields),
            tags=[self.tag, *tags],
            metadata=metadata or {},
            **({"id": id} if id else {}),
        )
        return await self._define(response, f"canned:{self.id}:{_digest(template)}", id)

    async def create_term(
        self,
        name: str,
        description: str,
        *,
        synonyms: Sequence[str] = (),
        id: str | None = None,
        tags: Sequence[str] = (),
    ) -> Term:
        """A glossary term, identified by its name within this agent."""
        term = Term(
            name=name,
            description=description,
            synonyms=list(synonyms),
            tags=[self.tag, *tags],
            **({"id": id} if id else {}),
        )
        return await self._define(term, f"term:{self.id}:{name.lower()}", id)

    async def guidelines(self) -> list[Guideline]:
        """This agent's guidelines, in creation order."""
        return [g for g in await self._server.runtime.store.list(Guideline) if self.tag in g.tags]

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
        Raises ``ValidationError`` for a bad cron expression.
        """
        rules = check_freshness_rules(freshness_rules)
        tool_id = None
        if tool is not None:
            [tool_id] = await self._server.register_tools([tool])
        variable = ContextVariable(
            name=name,
            description=description,
            tool_id=tool_id,
            freshness_rules=rules,
            tags=[self.tag, *tags],
            **({"id": id} if id else {}),
        )
        return await self._define(variable, f"variable:{self.id}:{name.lower()}", id)

    async def variables(self) -> list[ContextVariable]:
        """This agent's context variables, in creation order."""
        store = self._server.runtime.store
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
        store = self._server.runtime.store
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
        store = self._server.runtime.store
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
            await self._server.guest_customer_id()
        return await self._server.runtime.store.get(Customer, customer)

    async def _variable_tag(self, tag: Tag | str) -> str:
        tag_id = tag.id if isinstance(tag, Tag) else tag
        await self._server.runtime.store.get(Tag, tag_id)
        return tag_id

    # -- relationships ----------------------------------------------------------------------------

    async def prioritize(self, guideline: EndRef, *, over: EndRef) -> Relationship:
        """When both are active, ``guideline`` wins and ``over`` is dropped. Either may be a
        ``tactful.Tag`` (every guideline carrying it)."""
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
        async with self._server.runtime.store.transaction():
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
        """Relationships with an end among this agent's guidelines or tagged with its tag."""
        ids = {g.id for g in await self.guidelines()}
        ours = {(EndpointKind.GUIDELINE, i) for i in ids} | {(EndpointKind.TAG, self.tag)}
        return [
            r
            for r in await self._server.runtime.store.list(Relationship)
            if {(r.source.kind, r.source.id), (r.target.kind, r.target.id)} & ours
        ]

    async def reevaluate_after(self, tool: Any, guideline: EndRef) -> Relationship:
        """After ``tool`` returns, check ``guideline`` (or a tag's guidelines) again with the
        result in view: its condition may depend on what the tool found."""
        [tool_ref] = await self._server.register_tools([tool])
        store = self._server.runtime.store
        target = _end(guideline)
        await store.get(Guideline if target.kind is EndpointKind.GUIDELINE else Tag, target.id)
        new = Relationship(
            kind=RelationshipKind.REEVALUATION,
            source=Endpoint(kind=EndpointKind.TOOL, id=tool_ref),
            target=target,
        )
        async with store.transaction():
            same = admit(new, await store.list(Relationship), {})
            if same is not None:
                return same
            stored, _ = await store.upsert(new, key=new.natural_key)
        return stored

    async def _relate(
        self, kind: RelationshipKind, source: EndRef, targets: Sequence[EndRef]
    ) -> list[Relationship]:
        """Create one relationship per target, idempotently (same kind and ends: the stored
        one), all or none; unknown ends raise ``NotFoundError``, cycles ``ValidationError``."""
        store = self._server.runtime.store
        ends = [_end(source), *(_end(t) for t in targets)]
        async with store.transaction():
            for end in ends:
                await store.get(Guideline if end.kind is EndpointKind.GUIDELINE else Tag, end.id)
            existing = await store.list(Relationship)
            by_tag = guidelines_by_tag(await store.list(Guideline))
            made = []
            for target in ends[1:]:
                new = Relationship(kind=kind, source=ends[0], target=target)
                same = admit(new, existing, by_tag)
                if same is None:
                    same, _ = await store.upsert(new, key=new.natural_key)
                    existing.append(same)
                made.append(same)
            return made

    # -- code matchers and hooks ------------------------------------------------------------------

    def _hooks(self) -> Hooks:
        return self._server.runtime.engine.hooks

    def match_with(self, guideline: GuidelineRef, predicate: Predicate) -> Predicate:
        """Decide whether ``guideline`` applies with ``predicate(MatchContext)`` (plain or
        async, returning a bool) instead of a model check. In memory: register it again when
        the program starts. Returns ``predicate``."""
        self._hooks().add_matcher(_guideline_id(guideline), predicate)
        return predicate

    def on_selected(self, guideline: GuidelineRef, hook: SelectedHook) -> SelectedHook:
        """Call ``hook(MatchContext, Guideline)`` whenever ``guideline`` is selected in a turn.
        Its errors are logged and traced, never raised. Returns ``hook``."""
        self._hooks().add_selected(_guideline_id(guideline), hook)
        return hook

    def on_message(self, hook: MessageHook) -> MessageHook:
        """Call ``hook(MatchContext, Event)`` whenever this agent has sent a message (usable as
        a decorator). Its errors are logged and traced, never raised. Returns ``hook``."""
        self._hooks().add_message(self.id, hook)
        return hook

    async def match_always(self, guideline: GuidelineRef) -> Guideline:
        """Mark ``guideline`` always-match: it applies on every turn, with no check."""
        store = self._server.runtime.store
        stored = await store.get(Guideline, _guideline_id(guideline))
        if stored.always:
            return stored
        return await store.update(stored.model_copy(update={"always": True}))


class Server:
    """A tactful server: the store, the engine and, with ``serve=True``, the HTTP API.

    Use as ``async with tactful.Server(...) as server``. With ``serve=True`` the HTTP API opens
    when the block ends (after the agents it defines exist) and serves until interrupted; call
    ``start_http()`` inside the block to open it earlier. With no arguments it keeps its data in
    ``./.tactful`` (SQLite) and runs on the offline tier unless a model provider is configured.
    """

    def __init__(
        self,
        *,
        data_dir: str | Path | None = None,
        database_url: str | None = None,
        transient: bool = False,
        generator: Generator | None = None,
        embedder: Embedder | None = None,
        offline: bool = False,
        serve: bool = False,
        host: str | None = None,
        port: int | None = None,
        settings: Settings | None = None,
    ) -> None:
        overrides: dict[str, Any] = {}
        if data_dir is not None:
            overrides["data_dir"] = Path(data_dir)
        if database_url is not None:
            overrides["database_url"] = database_url
        if transient:
            overrides["transient"] = True
        if host is not None:
            overrides["host"] = host
        if port is not None:
            overrides["port"] = port
        base = settings or Settings()
        self.settings = base.model_copy(update=overrides)
        self._generator = generator
        self._embedder = embedder
        self._offline = offline
        self._serve = serve
        self._runtime: Runtime | None = None
        self._http: Any = None
        self._http_task: asyncio.Task[None] | None = None

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the server is not started: use `async with tactful.Server() as s`")
        return self._runtime

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    async def __aenter__(self) -> Server:
        self._runtime = await start_runtime(
            self.settings,
            generator=self._generator,
            embedder=self._embedder,
            offline=self._offline,
        )
        log.info("tactful runs on the %s", self._runtime.tier_reason)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            # With serve=True the block defines the agents; HTTP opens once they all exist.
            if self._serve and exc_type is None:
                if self._http is None:
                    await self.start_http()
                await self.serve_forever()
        finally:
            await self.close()

    async def start_http(self) -> None:
        """Start serving the REST API on ``settings.host:settings.port`` in the background.

        Raises ``ConfigurationError`` when the address cannot be bound (e.g. the port is taken).
        """
        import uvicorn

        from tactful.api.app import create_app

        host, port = self.settings.host, self.settings.port
        try:
            # Binding here turns a taken port into an error we can explain (uvicorn would exit).
            sock = socket.create_server((host, port), reuse_port=False)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ConfigurationError(
                    f"port {port} on {host} is already in use: stop the other server or "
                    "choose another port"
                ) from e
            raise ConfigurationError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
        config = uvicorn.Config(
            create_app(self.runtime),
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        self._http = uvicorn.Server(config)
        self._http_task = asyncio.create_task(self._http.serve(sockets=[sock]))
        while not self._http.started:
            if self._http_task.done():
                sock.close()
                await self._http_task
                raise ConfigurationError(f"the HTTP server could not start on {self.url}")
            await asyncio.sleep(0.01)

    async def serve_forever(self) -> None:
        """Serve HTTP until interrupted (only with ``serve=True``)."""
        if self._http_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._http_task

    async def close(self) -> None:
        if self._http is not None:
            self._http.should_exit = True
            if self._http_task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._http_task
            self._http = None
        if self._runtime is not None:
            await self._runtime.close()
            self._runtime = None

    # -- definitions ----------------------------------------------------------------------------

    async def create_agent(
        self,
        name: str,
        description: str | None = None,
        *,
        id: str | None = None,
        composition_mode: CompositionMode = CompositionMode.FLUID,
        max_engine_iterations: int = 3,
        no_match_reply: str | None = None,
        tags: Sequence[str] = (),
    ) -> Agent:
        """Define an agent; idempotent by ``id``, else by name."""
        extra: dict[str, Any] = {"id": id} if id else {}
        if no_match_reply is not None:
            extra["no_match_reply"] = no_match_reply
        model = AgentModel(
            name=name,
            description=description,
            composition_mode=composition_mode,
            max_engine_iterations=max_engine_iterations,
            tags=list(tags),
            **extra,
        )
        store = self.runtime.store
        if id is not None:
            stored, _ = await store.upsert(model)
        else:
            stored, _ = await store.upsert(model, key=f"agent:{name}")
        return Agent(self, stored)

    async def find_agent(self, *, id: str | None = None, name: str | None = None) -> Agent | None:
        store = self.runtime.store
        if id is not None:
            found = await store.find(AgentModel, id)
            return Agent(self, found) if found else None
        for a in await store.list(AgentModel, name=name or ""):
            return Agent(self, a)
        return None

    async def create_customer(
        self,
        name: str,
        *,
        id: str | None = None,
        metadata: dict[str, str] | None = None,
        tags: Sequence[str] = (),
    ) -> Customer:
        """Define a customer; idempotent by ``id``, else by name."""
        customer = Customer(
            name=name, metadata=metadata or {}, tags=list(tags), **({"id": id} if id else {})
        )
        key = None if id else f"customer:{name}"
        stored, _ = await self.runtime.store.upsert(customer, key=key)
        return stored

    async def create_tag(self, name: str) -> Tag:
        """A tag, idempotent by name."""
        stored, _ = await self.runtime.store.upsert(Tag(name=name), key=f"tag:{name}")
        return stored

    async def create_canned_response(
        self, template: str, *, signals: Sequence[str] = (), id: str | None = None
    ) -> CannedResponse:
        """A canned response shared by all agents (untagged)."""
        if error := canned.is_valid_template(template):
            raise ValidationError(f"invalid canned response template: {error}")
        response = CannedResponse(
            value=template, signals=list(signals), **({"id": id} if id else {})
        )
        key = None if id else f"canned::{_digest(template)}"
        stored, _ = await self.runtime.store.upsert(response, key=key)
        return stored

    # -- tools ----------------------------------------------------------------------------------

    async def register_tools(self, tools: Iterable[Any]) -> list[str]:
        """Make ``@tactful.tool`` functions callable in this process and store their specs;
        strings are taken as ids of tools registered otherwise (e.g. an MCP service's)."""
        tools = list(tools)
        ids = _tool_ids(tools)
        for t in tools:
            if isinstance(t, PythonTool):
                registered = self.runtime.engine.tools.register_python(t)
                await self.runtime.store.upsert(registered.spec)
        return ids

    async def add_service(self, service: ToolService) -> list[ToolSpec]:
        """Connect a tool service (MCP, OpenAPI, a PythonToolService) and store its tools' specs.

        Its tools' ids are ``service_name:tool_name``; attach them to guidelines by id.
        """
        registered = await self.runtime.engine.tools.register_service(service)
        for r in registered:
            await self.runtime.store.upsert(r.spec)
        return [r.spec for r in registered]

    # -- conversations --------------------------------------------------------------------------

    async def create_session(
        self,
        agent: Agent | str,
        customer: Customer | str | None = None,
        *,
        title: str | None = None,
    ) -> Session:
        agent_id = agent if isinstance(agent, str) else agent.id
        await self.runtime.store.get(AgentModel, agent_id)
        if customer is None:
            customer_id = await self.guest_customer_id()
        else:
            customer_id = customer if isinstance(customer, str) else customer.id
            await self.runtime.store.get(Customer, customer_id)
        return await self.runtime.store.create(
            Session(agent_id=agent_id, customer_id=customer_id, title=title)
        )

    async def guest_customer_id(self) -> str:
        store = self.runtime.store
        if await store.find(Customer, GUEST_CUSTOMER_ID) is None:
            await store.upsert(Customer(id=GUEST_CUSTOMER_ID, name="Guest"))
        return GUEST_CUSTOMER_ID

    async def send(self, session: Session | str, message: str) -> Event:
        """Post a customer message and wait for the agent's reply (its message event)."""
        session_id = session if isinstance(session, str) else session.id
        engine = self.runtime.engine
        posted = await engine.post_customer_message(session_id, message)
        await engine.wait_idle(session_id)
        replies = await self.runtime.store.list_events(
            session_id,
            min_offset=posted.offset + 1,
            kinds=[EventKind.MESSAGE],
            source=EventSource.AI_AGENT,
        )
        if not replies:
            raise ValidationError("the agent did not reply (is the session in manual mode?)")
        return replies[-1]

    async def entities(self, kind: type[Entity]) -> list[Any]:
        return await self.runtime.store.list(kind)
