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
import logging
import socket
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from tactful.agent import Agent
from tactful.config import Settings
from tactful.definitions import agents, services
from tactful.definitions.canned import define_canned_response
from tactful.definitions.customers import ensure_guest
from tactful.definitions.keys import agent_key, canned_response_key, tag_name_key
from tactful.definitions.tags import define_tag
from tactful.domain import Agent as AgentModel
from tactful.domain import (
    CannedResponse,
    CompositionMode,
    Customer,
    Entity,
    Event,
    EventKind,
    EventSource,
    MessageOutputMode,
    ModerationAction,
    ModerationMode,
    Operator,
    ProactiveKind,
    ProactiveRequest,
    RequestedAction,
    Session,
    Tag,
    ToolSpec,
)
from tactful.errors import ConfigurationError, ValidationError
from tactful.llm.base import Embedder, Generator
from tactful.runtime import Runtime, start_runtime
from tactful.security.exposure import check_exposure
from tactful.tools import ToolService

log = logging.getLogger("tactful")


def listening_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket listening on ``host:port`` (with ``reuse_port``, beside other processes'
    sockets on the same port: the kernel spreads connections over them).

    Made with ``IPPROTO_TCP`` (``socket.create_server`` leaves it 0): asyncio sets
    ``TCP_NODELAY`` only on connections of such sockets, and without it every response, whose
    headers and body uvicorn writes separately, waited about 40 ms for the client's delayed ACK.
    """
    infos = socket.getaddrinfo(
        host or None,
        port,
        type=socket.SOCK_STREAM,
        proto=socket.IPPROTO_TCP,
        flags=socket.AI_PASSIVE,
    )
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


def port_unavailable(
    host: str, port: int, error: OSError, *, advice: str = "choose another port"
) -> ConfigurationError:
    """The error to raise when ``host:port`` cannot be listened on (``error`` says why): a port
    already taken is said plainly, with ``advice`` on what to do instead."""
    if error.errno == errno.EADDRINUSE:
        return ConfigurationError(
            f"port {port} on {host} is already in use: stop the other server or {advice}"
        )
    return ConfigurationError(f"cannot listen on {host}:{port}: {error.strerror or error}")


def announce(url: str) -> None:
    """Say on stderr where a server started from Python listens, and from then on print its
    turn lines and model warnings there too (unless the program configured those loggers), as
    ``tactful serve`` does on its console."""
    print(f"tactful serving on {url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    for name in ("tactful.turns", "tactful.models"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("tactful: %(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False


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
                    announce(self.url)
                await self.serve_forever()
        finally:
            await self.close()

    async def start_http(self) -> None:
        """Start serving the REST API on ``settings.host:settings.port`` in the background.

        Raises ``ConfigurationError`` when the address cannot be bound (e.g. the port is taken),
        or when the settings must not serve there (development mode off loopback, production
        mode without a secret key: ``tactful.security.exposure``).
        """
        import uvicorn

        from tactful.api.app import create_app

        check_exposure(self.settings)
        host, port = self.settings.host, self.settings.port
        try:
            # Binding here turns a taken port into an error we can explain (uvicorn would exit).
            sock = listening_socket(host, port, reuse_port=self.settings.reuse_port)
        except OSError as e:
            raise port_unavailable(host, port, e) from e
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
        # The agents defined so far are prepared now, not during their first customer's turn.
        self.runtime.engine.prepare_agents_later(
            [a.id for a in await self.runtime.store.list(AgentModel)]
        )

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
        reply_in_customer_language: bool = True,
        preambles: Sequence[str] = (),
        preamble_after_ms: int = 2000,
        message_output_mode: MessageOutputMode = MessageOutputMode.BLOCK,
        guest_sessions: bool = False,
        moderation_action: ModerationAction | str | None = None,
        moderation_refusal: str | None = None,
    ) -> Agent:
        """Define an agent; idempotent by ``id``, else by name. ``preambles`` are short
        acknowledgements sent before a reply that takes long (when tools are about to run, or
        ``preamble_after_ms`` after the customer's message); written replies follow the
        customer's language unless ``reply_in_customer_language`` is False. With
        ``message_output_mode=STREAM`` a written reply streams into its message event as the
        model writes it (when the model can stream). With ``guest_sessions`` a production server
        lets anonymous browsers start a session with this agent (and use only that one).
        ``moderation_action`` (refuse, handoff, warn) and ``moderation_refusal`` say what a
        customer message moderation flagged leads to (None: the server's settings;
        docs/moderation.md). ``tags`` must be stored tags' ids (``NotFoundError``), as
        ``POST /agents`` requires."""
        extra: dict[str, Any] = {"id": id} if id else {}
        if no_match_reply is not None:
            extra["no_match_reply"] = no_match_reply
        model = AgentModel(
            name=name,
            description=description,
            composition_mode=composition_mode,
            max_engine_iterations=max_engine_iterations,
            tags=list(tags),
            reply_in_customer_language=reply_in_customer_language,
            preambles=list(preambles),
            preamble_after_ms=preamble_after_ms,
            message_output_mode=message_output_mode,
            guest_sessions=guest_sessions,
            moderation_action=ModerationAction(moderation_action) if moderation_action else None,
            moderation_refusal=moderation_refusal,
            **extra,
        )
        key = None if id is not None else agent_key(name)
        return Agent(self.runtime, await agents.define_agent(self.runtime.store, model, key=key))

    async def find_agent(self, *, id: str | None = None, name: str | None = None) -> Agent | None:
        store = self.runtime.store
        if id is not None:
            found = await store.find(AgentModel, id)
            return Agent(self.runtime, found) if found else None
        for a in await store.list(AgentModel, name=name or ""):
            return Agent(self.runtime, a)
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
        return await define_tag(self.runtime.store, Tag(name=name), key=tag_name_key(name))

    async def create_canned_response(
        self, template: str, *, signals: Sequence[str] = (), id: str | None = None
    ) -> CannedResponse:
        """A canned response shared by all agents (untagged); its template is checked as
        ``Agent.create_canned_response`` checks it."""
        response = CannedResponse(
            value=template, signals=list(signals), **({"id": id} if id else {})
        )
        key = None if id else canned_response_key("", (), template)
        return await define_canned_response(self.runtime.store, response, key=key)

    # -- tools ----------------------------------------------------------------------------------

    async def register_tools(self, tools: Iterable[Any]) -> list[str]:
        """Make ``@tactful.tool`` functions callable in this process and store their specs;
        strings are taken as ids of tools registered otherwise (e.g. an MCP service's)."""
        runtime = self.runtime
        return await services.register_tools(runtime.store, runtime.engine.tools, tools)

    async def add_service(self, service: ToolService) -> list[ToolSpec]:
        """Connect a tool service (MCP, OpenAPI, a PythonToolService) and store its tools' specs.

        Its tools' ids are ``service_name:tool_name``; attach them to guidelines by id. The
        service connects only where the settings' ``outbound_hosts`` allow; a URL they refuse
        is a ``ValidationError`` (``OutboundRefused``) before anything connects.
        """
        runtime = self.runtime
        return await services.add_service(runtime.store, runtime.engine.tools, service)

    # -- conversations --------------------------------------------------------------------------

    async def create_session(
        self,
        agent: Agent | str,
        customer: Customer | str | None = None,
        *,
        title: str | None = None,
        allow_greeting: bool = False,
    ) -> Session:
        """A session with ``agent``, for ``customer`` (default: the guest customer). With
        ``allow_greeting`` the agent speaks first (a turn starts at once; ``wait_idle`` or
        ``utter``'s way of reading the reply: the session's latest agent message)."""
        agent_id = agent if isinstance(agent, str) else agent.id
        await self.runtime.store.get(AgentModel, agent_id)
        if customer is None:
            customer_id = await self.guest_customer_id()
        else:
            customer_id = customer if isinstance(customer, str) else customer.id
            await self.runtime.store.get(Customer, customer_id)
        session = await self.runtime.store.create(
            Session(agent_id=agent_id, customer_id=customer_id, title=title)
        )
        if allow_greeting:
            greeting = ProactiveRequest(kind=ProactiveKind.GREETING)
            await self.runtime.engine.speak(session.id, greeting)
        return session

    async def guest_customer_id(self) -> str:
        """The guest customer's id (``guest``), the customer created on first use."""
        return (await ensure_guest(self.runtime.store)).id

    async def send(
        self,
        session: Session | str,
        message: str,
        *,
        moderation: ModerationMode | str = ModerationMode.NONE,
    ) -> Event:
        """Post a customer message and wait for the agent's reply (its message event).
        ``moderation`` (auto, paranoid, none) checks the message first, as the REST API's
        query parameter does (docs/moderation.md): a refused message's reply is the refusal; a
        message handed off to a person gets no reply (``ValidationError``, as in manual mode)."""
        session_id = session if isinstance(session, str) else session.id
        engine = self.runtime.engine
        posted = await engine.post_customer_message(
            session_id, message, moderation=ModerationMode(moderation)
        )
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

    async def utter(
        self, session: Session | str, actions: Sequence[str] = (), *, wait: bool = True
    ) -> Event | None:
        """Ask the agent to speak without a customer message ("ask whether they are still
        there", "tell them their order has shipped"): a turn whose message follows ``actions``
        and the agent's guidelines and canned responses. Returns its message, or None when it
        had nothing to say or a customer message superseded it (``wait=False``: returns None
        at once). Raises ``ConflictError`` in manual mode."""
        session_id = session if isinstance(session, str) else session.id
        request = ProactiveRequest(
            kind=ProactiveKind.UTTERANCE, actions=[RequestedAction(action=a) for a in actions]
        )
        engine = self.runtime.engine
        opened = await engine.speak(session_id, request)
        if not wait:
            return None
        await engine.wait_idle(session_id)
        replies = await self.runtime.store.list_events(
            session_id,
            min_offset=opened.offset + 1,
            kinds=[EventKind.MESSAGE],
            source=EventSource.AI_AGENT,
            trace_id=opened.trace_id,
        )
        return replies[-1] if replies else None

    async def hand_off(
        self, session: Session | str, reason: str = "", *, by: str = "sdk"
    ) -> Session:
        """Hand the session to a person: manual mode, the agent stays silent (docs/handoff.md)."""
        session_id = session if isinstance(session, str) else session.id
        return await self.runtime.engine.handoffs.hand_off(session_id, reason=reason, by=by)

    async def assign(
        self, session: Session | str, operator: Operator, *, by: str = "sdk"
    ) -> Session:
        """``operator`` takes the session (handed off first if the agent had it)."""
        session_id = session if isinstance(session, str) else session.id
        return await self.runtime.engine.handoffs.assign(session_id, operator, by=by)

    async def return_to_agent(self, session: Session | str, *, by: str = "sdk") -> Session:
        """Automatic mode: the agent answers the customer's next message."""
        session_id = session if isinstance(session, str) else session.id
        return await self.runtime.engine.handoffs.return_to_agent(session_id, by=by)

    async def entities(self, kind: type[Entity]) -> list[Any]:
        return await self.runtime.store.list(kind)
