"""tactful's side of the τ²-bench adapter: τ²'s tools as a tactful tool service, and a
conversation with tactful through its HTTP API in which every tool call tactful makes is handed
to τ² to execute.

Why tool calls are handed over rather than run here: τ²'s orchestrator builds the trajectory
itself, and executes every tool call an agent's message carries in its environment; its
evaluator then replays the trajectory's calls on a fresh environment (``set_state``, strict: a
mutating call must return what the trajectory recorded) and compares database hashes with the
gold actions'. So a call tactful ran on its own would be missing from the trajectory, and a call
it ran and also reported would run twice. Instead each call tactful's engine makes waits, inside
tactful's tool service, while the τ² agent returns it to the orchestrator as an assistant tool
call; the orchestrator runs it once, and the result goes back to the waiting call. The trajectory
then holds exactly the calls tactful made, in the order they ran, with their real results.

Nothing here imports τ² (its data shapes appear as plain dicts), so tactful's tests can drive it;
``agent.py`` is the τ²-facing half.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import queue
import threading
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import tactful
from tactful.domain import ToolSpec
from tactful.domain.tools import tool_id
from tactful.tools import ToolContext, ToolError, ToolResult, ToolService

log = logging.getLogger("tactful.bench.tau2")

SERVICE = "tau2"
# What τ²'s orchestrator puts first in every trajectory (its DEFAULT_FIRST_AGENT_MESSAGE).
GREETING = "Hi! How can I help you today?"
# A list argument travels as a JSON string (a proposed argument is a scalar in tactful's
# matching answer); this note tells the model so.
LIST_NOTE = 'A JSON list of strings, e.g. ["1008292230", "4983901480"].'
# Turn statuses after which a turn writes nothing more.
TURN_OVER = frozenset({"ready", "error", "cancelled"})


@dataclass(frozen=True)
class ToolAnswer:
    """What τ²'s environment answered a call: its ToolMessage's content and error flag."""

    content: str
    error: bool = False


@dataclass
class ToolRequest:
    """A tool call tactful is making, waiting for τ² to run it (``answer``)."""

    call_id: str
    session_id: str
    name: str
    arguments: dict[str, Any]
    _answered: concurrent.futures.Future[ToolAnswer] = field(
        default_factory=concurrent.futures.Future, repr=False
    )

    def answer(self, answer: ToolAnswer) -> None:
        """Give the call its result (once; a second answer is ignored)."""
        if not self._answered.done():
            self._answered.set_result(answer)

    def tool_call(self) -> dict[str, Any]:
        """The call as a τ² ``AssistantMessage`` carrying one ``ToolCall``."""
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": self.call_id,
                    "name": self.name,
                    "arguments": self.arguments,
                    "requestor": "assistant",
                }
            ],
        }

    def tool_result(self, answer: ToolAnswer) -> dict[str, Any]:
        """Its result as a τ² ``ToolMessage`` (what the orchestrator appends after the call)."""
        return {
            "role": "tool",
            "id": self.call_id,
            "content": answer.content,
            "requestor": "assistant",
            "error": answer.error,
        }


@dataclass(frozen=True)
class AgentReply:
    """The end of a tactful turn: what the agent said (its messages, joined) and how it ended."""

    text: str
    status: str
    trace_id: str


Step = ToolRequest | AgentReply
# (session id, tool name, τ² arguments) -> what the environment answered.
Executor = Callable[[str, str, dict[str, Any]], Awaitable[ToolAnswer]]


class ToolBridge:
    """Routes each tool call tactful makes in a session to whoever drives that session.

    The tool service calls it on tactful's event loop; the driver (the τ² agent, in τ²'s
    worker thread) reads the session's inbox, has the call run, and answers it. Sessions no
    driver has opened get an error result rather than a call that waits forever.
    """

    def __init__(self) -> None:
        self._inboxes: dict[str, queue.Queue[Step]] = {}
        self._pending: dict[str, list[ToolRequest]] = {}
        self._lock = threading.Lock()

    def open(self, session_id: str) -> queue.Queue[Step]:
        """The inbox of ``session_id``: its tool calls, and the turns' ends its driver adds."""
        with self._lock:
            inbox: queue.Queue[Step] = queue.Queue()
            self._inboxes[session_id] = inbox
            self._pending[session_id] = []
            return inbox

    def close(self, session_id: str) -> None:
        """Stop routing ``session_id``: calls still waiting fail (so no turn hangs)."""
        with self._lock:
            self._inboxes.pop(session_id, None)
            waiting = self._pending.pop(session_id, [])
        for request in waiting:
            request.answer(ToolAnswer("Error: the simulation has ended", error=True))

    async def __call__(self, session_id: str, name: str, arguments: dict[str, Any]) -> ToolAnswer:
        request = ToolRequest(f"tactful-{uuid.uuid4().hex[:12]}", session_id, name, arguments)
        with self._lock:
            inbox = self._inboxes.get(session_id)
            if inbox is None:
                return ToolAnswer(f"Error: no τ² simulation drives session {session_id}", True)
            self._pending[session_id].append(request)
            inbox.put(request)
        try:
            return await asyncio.wrap_future(request._answered)
        finally:
            with self._lock:
                waiting = self._pending.get(session_id, [])
                if request in waiting:
                    waiting.remove(request)


def _is_list(schema: Mapping[str, Any]) -> bool:
    kinds = schema.get("type")
    return kinds == "array" or (isinstance(kinds, list) and "array" in kinds)


def _as_list(value: Any) -> Any:
    """A list argument from what the model gave: a JSON list, a comma-separated string, or
    (already) a list."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return [part.strip().strip("'\"") for part in text.strip("[]").split(",") if part.strip()]


class Tau2ToolService(ToolService):
    """τ²'s domain tools (their OpenAI function schemas) as the tactful tool service ``tau2``.

    A call goes to ``executor`` (in a benchmark run, a ``ToolBridge``: τ²'s orchestrator runs
    it). A failed call (τ²'s ``error`` flag) raises ``ToolError`` with τ²'s message, so the
    tool event and the model see it as a failure. ``consequential`` names the tools that
    change the database (τ²'s WRITE tools): tactful never runs them on guessed arguments.
    """

    def __init__(
        self,
        schemas: Sequence[Mapping[str, Any]],
        executor: Executor,
        *,
        consequential: Collection[str] = (),
        name: str = SERVICE,
        timeout_s: float = 120.0,
    ) -> None:
        self.name = name
        self.executor = executor
        self.timeout_s = timeout_s
        self._specs: dict[str, ToolSpec] = {}
        self._lists: dict[str, set[str]] = {}
        for schema in schemas:
            function = schema.get("function", schema)
            tool = str(function["name"])
            parameters = json.loads(json.dumps(function.get("parameters") or {}))
            properties: dict[str, Any] = parameters.setdefault("properties", {})
            self._lists[tool] = set()
            for param, p in properties.items():
                if _is_list(p):
                    self._lists[tool].add(param)
                    description = p.get("description", "")
                    properties[param] = {
                        "type": "string",
                        "description": f"{description} {LIST_NOTE}".strip(),
                    }
            self._specs[tool] = ToolSpec(
                id=tool_id(name, tool),
                service_name=name,
                name=tool,
                description=str(function.get("description", "")),
                parameters=parameters,
                required=list(parameters.get("required", [])),
                consequential=tool in consequential,
            )

    async def list_tools(self) -> list[ToolSpec]:
        return list(self._specs.values())

    def tool_timeout_s(self, tool: str) -> float | None:
        # The call waits for τ²'s orchestrator to take it and run it.
        return self.timeout_s

    def arguments(self, tool: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """``arguments`` as τ²'s tool takes them (list parameters decoded)."""
        lists = self._lists.get(tool, set())
        return {k: _as_list(v) if k in lists else v for k, v in arguments.items()}

    async def call(self, tool: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        if tool not in self._specs:
            raise ToolError(f"unknown τ² tool {tool!r}")
        answer = await self.executor(context.session_id, tool, self.arguments(tool, arguments))
        if answer.error:
            raise ToolError(answer.content)
        try:
            data: Any = json.loads(answer.content)
        except json.JSONDecodeError:
            data = answer.content
        return ToolResult(data=data)


class Conversation:
    """One τ² simulation's conversation with a tactful agent, through tactful's HTTP API.

    ``open`` creates the session (and writes τ²'s greeting as the agent's), ``say`` posts the
    customer's message; then ``next_step`` gives, in order, each tool call the turn makes
    (answer it with ``ToolRequest.answer``) and finally the turn's reply. The reply is found by
    long-polling the turn's events (its trace id) until its ``status: ready``.
    """

    def __init__(
        self,
        base_url: str,
        agent_id: str,
        bridge: ToolBridge,
        *,
        turn_timeout_s: float = 300.0,
        api_key: str | None = None,
    ) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=90.0)
        self.agent_id = agent_id
        self.bridge = bridge
        self.turn_timeout_s = turn_timeout_s
        self.session_id = ""
        self._inbox: queue.Queue[Step] | None = None
        # Every call this conversation handed over, by turn (trace id), in order.
        self.requests: dict[str, list[ToolRequest]] = {}
        self._turn = ""

    def open(self, greeting: str | None = GREETING) -> str:
        """Create the session; ``greeting`` is written as the agent's first message."""
        created = self.http.post("/sessions", json={"agent_id": self.agent_id})
        created.raise_for_status()
        self.session_id = str(created.json()["id"])
        self._inbox = self.bridge.open(self.session_id)
        if greeting:
            said = self.http.post(
                f"/sessions/{self.session_id}/events",
                json={
                    "kind": "message",
                    "source": "human_agent_on_behalf_of_ai_agent",
                    "message": greeting,
                },
            )
            said.raise_for_status()
        return self.session_id

    def say(self, text: str) -> Step:
        """Post the customer's message; the turn's first step (a tool call or the reply)."""
        posted = self.http.post(
            f"/sessions/{self.session_id}/events",
            json={"kind": "message", "source": "customer", "message": text},
        )
        posted.raise_for_status()
        event = posted.json()
        self._turn = str(event["trace_id"])
        self.requests[self._turn] = []
        watcher = threading.Thread(
            target=self._watch,
            args=(self._turn, int(event["offset"]) + 1),
            name=f"tau2-turn-{self._turn[:8]}",
            daemon=True,
        )
        watcher.start()
        return self.next_step()

    def next_step(self) -> Step:
        """The turn's next tool call, or its reply once it is over."""
        if self._inbox is None:
            raise RuntimeError("open() the conversation first")
        try:
            step = self._inbox.get(timeout=self.turn_timeout_s)
        except queue.Empty:
            raise TimeoutError(
                f"tactful's turn {self._turn} gave neither a tool call nor a reply in "
                f"{self.turn_timeout_s:g} s"
            ) from None
        if isinstance(step, ToolRequest):
            self.requests.setdefault(self._turn, []).append(step)
        return step

    def _watch(self, trace_id: str, offset: int) -> None:
        """Long-poll the turn's messages and statuses until it is over; then hand its reply
        to the inbox (after any tool call it made, which the bridge put there first)."""
        said: list[str] = []
        status = "error"
        try:
            while True:
                got = self.http.get(
                    f"/sessions/{self.session_id}/events",
                    params={
                        "min_offset": offset,
                        "trace_id": trace_id,
                        "kinds": "message,status",
                        "wait_for_data": 30,
                    },
                )
                if got.status_code == 504:
                    continue  # nothing new yet: ask again
                got.raise_for_status()
                ended = False
                for event in got.json():
                    offset = max(offset, int(event["offset"]) + 1)
                    data = event.get("data") or {}
                    if event["kind"] == "message" and event["source"] == "ai_agent":
                        said.append(str(data.get("message", "")))
                    elif event["kind"] == "status" and data.get("status") in TURN_OVER:
                        status, ended = str(data["status"]), True
                if ended:
                    break
        except Exception as e:  # the reply must reach the driver whatever happened
            log.warning("watching turn %s failed: %s", trace_id, e)
        if self._inbox is not None:
            self._inbox.put(AgentReply(" ".join(s for s in said if s), status, trace_id))

    def tool_events(self, trace_id: str | None = None) -> list[dict[str, Any]]:
        """The calls tactful recorded in its ``tool`` events (of one turn, or all), each as
        ``{"tool_id", "arguments", "result", "error", ...}``: what the reported calls are
        checked against."""
        params: dict[str, Any] = {"kinds": "tool", "wait_for_data": 0}
        if trace_id:
            params["trace_id"] = trace_id
        got = self.http.get(f"/sessions/{self.session_id}/events", params=params)
        got.raise_for_status()
        return [c for e in got.json() for c in (e.get("data") or {}).get("tool_calls", [])]

    def unreported(self, trace_id: str, service: Tau2ToolService) -> list[str]:
        """Calls in the turn's tool events that were not handed to τ² (none, when the
        trajectory holds every call tactful made), as ``tool(arguments)``."""
        reported = [(r.name, r.arguments) for r in self.requests.get(trace_id, [])]
        missing = []
        for call in self.tool_events(trace_id):
            tool = str(call.get("tool_id", "")).split(":", 1)[-1]
            arguments = service.arguments(tool, call.get("arguments") or {})
            if (tool, arguments) in reported:
                reported.remove((tool, arguments))
            else:
                missing.append(f"{tool}({json.dumps(arguments, sort_keys=True)})")
        return missing

    def close(self) -> None:
        """Stop routing the session's calls (any still waiting fail) and close the client."""
        if self.session_id:
            self.bridge.close(self.session_id)
        self.http.close()


async def install_agent(server: tactful.Server, service: Tau2ToolService, policy: Path) -> str:
    """Register ``service`` with ``server`` and apply the policy document ``policy`` (a
    definitions YAML file naming the service's tools); the id of the agent it defines."""
    from tactful.agent_files import load_definitions

    await server.add_service(service)
    agents = await load_definitions(server, policy)
    if len(agents) != 1:
        raise ValueError(f"{policy} defines {len(agents)} agents; one was expected")
    return agents[0].id
