"""The tool port: what a tool is given while it runs, what it returns, and where tools live.

Python ``@tactful.tool`` functions, MCP servers and OpenAPI services are all ``ToolService``s;
the engine only sees this module.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, Field, field_serializer

from tactful.domain import (
    Agent,
    CannedResponse,
    Customer,
    Session,
    ToolServiceKind,
    ToolSpec,
    TransientGuideline,
)
from tactful.domain.tool_updates import ToolUpdate, UpdateTarget

# Defined with the domain (the trace records it); tools return it, so it is theirs too.
from tactful.domain.tools import SessionControl as SessionControl
from tactful.tools.arguments import schema_problems

if TYPE_CHECKING:
    from tactful.tools.outbound import OutboundPolicy

log = logging.getLogger("tactful.tools")


class ToolResult(BaseModel):
    """What a tool returns.

    ``data`` goes to the model and the trace; ``metadata`` only to the trace; ``fields`` are
    values canned responses may use (``{{transaction_id}}``); ``control`` can hand the session
    to a person, saying why in ``handoff_reason`` (the trace and the timeline keep it).
    ``canned_responses`` (templates, or ``CannedResponse``s) and ``guidelines`` join this
    turn's reply as a retriever's do: offered templates, guidelines applied as they are.
    """

    data: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    fields: dict[str, Any] = Field(default_factory=dict)
    control: SessionControl = SessionControl.NONE
    handoff_reason: str = Field(default="", max_length=1000)
    canned_responses: list[str | CannedResponse] = Field(default_factory=list, max_length=50)
    guidelines: list[TransientGuideline] = Field(default_factory=list, max_length=50)

    @field_serializer("canned_responses")
    def _templates(self, offered: list[str | CannedResponse]) -> list[str]:
        """The tool event and the trace keep the templates' texts (as Parlant's event does)."""
        return [t if isinstance(t, str) else t.value for t in offered]


Emit = Callable[[str, Any], Awaitable[None]]
# Set by the engine: write a change to the tool's own customer or session (and its event);
# returns the change as written, the updated entity with it.
Update = Callable[[ToolUpdate], Awaitable[tuple[ToolUpdate, Customer | Session]]]


@dataclass
class ToolContext:
    """What a running tool knows and may do: who it serves, and ways to speak while it works."""

    agent_id: str
    session_id: str
    customer_id: str
    customer_name: str = ""
    customer_metadata: dict[str, str] = field(default_factory=dict)
    # The whole records, when the engine runs the tool in a turn.
    agent: Agent | None = None
    session: Session | None = None
    customer: Customer | None = None
    # The tool being run, "service:name" (set by the engine for each call).
    tool_id: str = ""
    # Set by the engine: append a status, message or custom event to the session.
    _emit: Emit | None = field(default=None, repr=False)
    # Set by the engine: change this customer's or session's metadata, tags or labels.
    _update: Update | None = field(default=None, repr=False)

    async def emit_status(self, status: str, **data: Any) -> None:
        """A status event (e.g. "typing") on the session while the tool works."""
        await self._send("status", {"status": status, "data": data})

    async def emit_message(self, message: str) -> None:
        """A message from the agent, sent at once (e.g. "One moment, checking your order")."""
        await self._send("message", {"message": message})

    async def emit_custom(self, data: Any) -> None:
        """A custom event, for clients that render something of their own."""
        await self._send("custom", data)

    async def _send(self, kind: str, data: Any) -> None:
        if self._emit is not None:
            await self._emit(kind, data)

    # -- changing this customer and session (``tactful.domain.tool_updates``) ------------------
    # Each change is written at once, with a ``custom`` event on the timeline, in one
    # transaction; a change that is refused (sizes, unknown tags) raises ``ToolError`` and
    # writes nothing. Outside a turn (a test's own context, a context variable's refresh) a
    # change is checked, then not written (as ``emit_*`` send nothing there).

    async def set_customer_metadata(self, values: Mapping[str, str]) -> None:
        """Set keys of the customer's metadata (string values)."""
        await self._change(UpdateTarget.CUSTOMER_METADATA, set=dict(values))

    async def unset_customer_metadata(self, *keys: str) -> None:
        """Remove keys from the customer's metadata."""
        await self._change(UpdateTarget.CUSTOMER_METADATA, unset=list(keys))

    async def add_customer_tags(self, *tag_ids: str) -> None:
        """Tag the customer (ids of existing tags)."""
        await self._change(UpdateTarget.CUSTOMER_TAGS, add=list(tag_ids))

    async def remove_customer_tags(self, *tag_ids: str) -> None:
        await self._change(UpdateTarget.CUSTOMER_TAGS, remove=list(tag_ids))

    async def set_session_metadata(self, values: Mapping[str, Any]) -> None:
        """Set keys of the session's metadata (JSON values)."""
        await self._change(UpdateTarget.SESSION_METADATA, set=dict(values))

    async def unset_session_metadata(self, *keys: str) -> None:
        await self._change(UpdateTarget.SESSION_METADATA, unset=list(keys))

    async def add_session_labels(self, *labels: str) -> list[str]:
        """Label the session; returns the labels it did not have yet."""
        done = await self._change(UpdateTarget.SESSION_LABELS, add=list(labels))
        return done.add

    async def remove_session_labels(self, *labels: str) -> None:
        await self._change(UpdateTarget.SESSION_LABELS, remove=list(labels))

    async def _change(self, target: UpdateTarget, **parts: Any) -> ToolUpdate:
        try:
            asked = ToolUpdate(tool_id=self.tool_id, target=target, **parts)
        except ValueError as e:
            raise ToolError(f"{target.value}: {e}") from e
        if problem := asked.problem():
            raise ToolError(f"{target.value}: {problem}")
        if self._update is None:
            log.info("%s: not in a turn, the change is not written", target.value)
            return asked
        done, entity = await self._update(asked)
        # What the tool reads afterwards is what it wrote.
        if isinstance(entity, Customer):
            self.customer, self.customer_metadata = entity, dict(entity.metadata)
        else:
            self.session = entity
        return done


class ToolError(Exception):
    """A tool failed; the message is safe to show in a trace and to the model."""


class ToolArgumentsError(ToolError):
    """Arguments that do not fit a tool's parameters; ``problems`` says which, one per line."""

    def __init__(self, tool: str, problems: Sequence[str]) -> None:
        self.tool = tool
        self.problems = list(problems)
        super().__init__(f"invalid arguments for tool {tool!r}: {'; '.join(self.problems)}")


class ToolService(ABC):
    """A named set of tools: in-process Python functions, an MCP server, an OpenAPI service."""

    name: str
    # Its kind in ``/services`` (Parlant's kinds). A service served in this process (Python
    # ``@tactful.tool`` functions, a ``ToolService`` written in code) is ``sdk``: Parlant's
    # kind for tools written in code with its SDK.
    kind: ClassVar[ToolServiceKind] = ToolServiceKind.SDK

    def service_url(self) -> str:
        """Where the service is reached, as ``/services`` shows it: "" when it runs in this
        process (or over stdio)."""
        return ""

    @abstractmethod
    async def list_tools(self) -> list[ToolSpec]:
        """The tools this service offers, with their parameter schemas."""

    @abstractmethod
    async def call(self, tool: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        """Run ``tool``; raise ``ToolError`` with a clear message when it fails."""

    async def check_arguments(
        self, spec: ToolSpec, arguments: Mapping[str, Any], context: ToolContext
    ) -> None:
        """Refuse ``arguments`` that do not fit the tool ``spec`` describes, before it is called
        (``ToolArgumentsError``). By default a shallow check of its JSON schema (the service
        validates in depth itself); Python tools validate fully, choice providers included."""
        if problems := schema_problems(spec, arguments):
            raise ToolArgumentsError(spec.id, problems)

    def tool_timeout_s(self, tool: str) -> float | None:
        """``tool``'s own timeout, in place of the engine's; None (the default) for none."""
        return None

    async def choices_for(self, tool: str, param: str, context: ToolContext) -> list[str] | None:
        """The values ``param`` of ``tool`` may take now, for services that know them only at
        run time (Python tools' choice providers); None (the default): any value of its type."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional: services holding connections
        """Release connections or processes."""

    def outbound_urls(self) -> list[str]:
        """The URLs this service will connect to, as far as it knows them now (checked against
        ``outbound_hosts`` when it is registered, before it connects); none for local ones."""
        return []

    async def use_outbound(self, policy: OutboundPolicy) -> None:  # noqa: B027 - optional
        """Connect only where ``policy`` allows from now on (the registry's, from settings)."""
