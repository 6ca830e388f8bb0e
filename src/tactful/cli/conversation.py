"""The two ways ``tactful chat`` talks to an agent: over HTTP, or with a server in-process."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tactful.agent_files import load_agent_file
from tactful.client import AgentInfo, ClientError, TactfulClient, TraceInfo
from tactful.config import Settings
from tactful.domain import Agent as AgentModel
from tactful.domain import Trace
from tactful.errors import TactfulError
from tactful.server import Server

# A turn's trace is stored just after its ready status; give it this long to appear.
TRACE_WAIT_S = 2.0


@dataclass
class Exchange:
    """What the chat shows for one customer message."""

    replies: list[str]
    # The guidelines the reply says it applied.
    applied: list[str] = field(default_factory=list)
    error: str | None = None
    trace_problem: str | None = None
    trace: TraceInfo | None = None


class Conversation(ABC):
    """A place to chat with an agent: list agents, open a session, exchange messages."""

    # What to do when there is no agent to chat with.
    no_agents_hint: str = ""

    @abstractmethod
    async def open(self) -> str:
        """Connect or start; returns a line saying where the chat runs and on which tier."""

    @abstractmethod
    async def agents(self) -> list[AgentInfo]: ...

    @abstractmethod
    async def start(self, agent_id: str) -> str:
        """A new session with the agent; returns its id."""

    @abstractmethod
    async def send(self, session_id: str, text: str) -> Exchange: ...

    @abstractmethod
    async def close(self) -> None: ...


class RemoteConversation(Conversation):
    """Through the REST API of a running ``tactful serve``."""

    no_agents_hint = "start the server with `tactful serve --example` or `--agent FILE`"

    def __init__(self, url: str, timeout: float, api_key: str | None = None) -> None:
        self.url = url
        self.reply_timeout = timeout
        self.client = TactfulClient(url, api_key=api_key)

    async def open(self) -> str:
        health = await self.client.health()
        return f"connected to {self.url} ({health.tier or 'unknown'} tier)"

    async def agents(self) -> list[AgentInfo]:
        return await self.client.list_agents()

    async def start(self, agent_id: str) -> str:
        return (await self.client.create_session(agent_id, title="tactful chat")).id

    async def send(self, session_id: str, text: str) -> Exchange:
        turn = await self.client.send(session_id, text, timeout=self.reply_timeout)
        exchange = Exchange(
            replies=[r.message or "" for r in turn.replies],
            applied=[g for r in turn.replies for g in r.guideline_ids],
            error=turn.error,
        )
        if not turn.trace_id:
            exchange.trace_problem = "the turn has no trace id"
            return exchange
        try:
            trace = await self.client.get_trace(turn.trace_id, wait=TRACE_WAIT_S)
        except ClientError as e:
            exchange.trace_problem = str(e)
        else:
            exchange.trace = trace
        return exchange

    async def close(self) -> None:
        await self.client.aclose()


class InProcessConversation(Conversation):
    """A ``tactful.Server`` in this process, without HTTP."""

    no_agents_hint = "add --example or --agent-file FILE"

    def __init__(self, settings: Settings, agent_files: Sequence[Path] = ()) -> None:
        self.server = Server(settings=settings)
        self.agent_files = list(agent_files)
        self._started = False

    async def open(self) -> str:
        await self.server.__aenter__()
        self._started = True
        for path in self.agent_files:
            await load_agent_file(self.server, path)
        return f"in-process ({self.server.runtime.tier_reason})"

    async def agents(self) -> list[AgentInfo]:
        return [
            AgentInfo(
                id=a.id,
                name=a.name,
                description=a.description,
                composition_mode=a.composition_mode.value,
            )
            for a in await self.server.entities(AgentModel)
        ]

    async def start(self, agent_id: str) -> str:
        return (await self.server.create_session(agent_id, title="tactful chat")).id

    async def send(self, session_id: str, text: str) -> Exchange:
        try:
            event = await self.server.send(session_id, text)
        except TactfulError as e:
            return Exchange(replies=[], error=str(e))
        data = event.data if isinstance(event.data, dict) else {}
        exchange = Exchange(
            replies=[str(data.get("message", ""))],
            applied=[str(g) for g in data.get("guidelines", [])],
        )
        trace = await self.server.runtime.store.find(Trace, event.trace_id)
        if trace is None:
            exchange.trace_problem = f"trace {event.trace_id!r} was not stored"
        else:
            exchange.trace = TraceInfo.model_validate(trace.model_dump(mode="json"))
        return exchange

    async def close(self) -> None:
        if self._started:
            self._started = False
            await self.server.close()
