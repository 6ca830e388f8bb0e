"""The τ²-bench agent that is tactful: a half-duplex τ² agent whose every message comes from a
tactful server through its HTTP API (``adapter.Conversation``).

Each ``generate_next_message`` is one step of a tactful turn: the next tool call tactful makes
(returned as an assistant tool call, which τ²'s orchestrator runs in its environment and answers
with a tool message, given back to the waiting call), or the turn's reply. So the trajectory τ²
evaluates holds each of tactful's calls once, with the result it really had.

Needs τ² installed (``pip install -e <tau2-bench checkout>``); tactful itself never imports it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from adapter import (
    GREETING,
    AgentReply,
    Conversation,
    Tau2ToolService,
    ToolAnswer,
    ToolBridge,
    ToolRequest,
)
from pydantic import BaseModel, ConfigDict
from tau2.agent.base_agent import HalfDuplexAgent, ValidAgentInputMessage
from tau2.data_model.message import (
    AssistantMessage,
    Message,
    MultiToolMessage,
    ToolMessage,
    UserMessage,
)
from tau2.environment.tool import Tool

log = logging.getLogger("tactful.bench.tau2")

AGENT_NAME = "tactful"
# What the agent says when a turn ended without a message (τ² refuses an empty one).
SILENT = "(no reply)"


@dataclass(frozen=True)
class Target:
    """Where the agents of a run talk to: the tactful server, its agent, and the tool service
    whose calls are handed to τ² (its ``executor`` is the run's ``ToolBridge``)."""

    url: str
    agent_id: str
    service: Tau2ToolService
    api_key: str | None = None
    turn_timeout_s: float = 300.0


class TactfulState(BaseModel):
    """The agent's state: the tactful session, and the turns it saw (trace ids)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    session_id: str
    turns: list[str] = []


def mutating(tools: list[Tool]) -> set[str]:
    """The tools τ² says change its database (its WRITE tools): consequential in tactful."""
    return {t.name for t in tools if getattr(getattr(t, "_func", None), "__mutates_state__", True)}


class TactfulAgent(HalfDuplexAgent[TactfulState]):
    """tactful, as a τ² agent. ``tools`` and ``domain_policy`` are τ²'s; tactful already holds
    the domain's tools (``Target.service``) and its policy as definitions."""

    def __init__(self, tools: list[Tool], domain_policy: str, target: Target) -> None:
        super().__init__(tools=tools, domain_policy=domain_policy)
        self.target = target
        bridge = target.service.executor
        if not isinstance(bridge, ToolBridge):
            raise TypeError("the tool service's executor must be the run's ToolBridge")
        self.conversation = Conversation(
            target.url,
            target.agent_id,
            bridge,
            turn_timeout_s=target.turn_timeout_s,
            api_key=target.api_key,
        )
        self._waiting: dict[str, ToolRequest] = {}

    def get_init_state(self, message_history: list[Message] | None = None) -> TactfulState:
        history = list(message_history or [])
        said = [m for m in history if isinstance(m, AssistantMessage) and m.content]
        greeting = said[0].content if said else GREETING
        if len(history) > 1:
            # Retail's and airline's tasks start with τ²'s greeting alone.
            log.warning("a task's earlier history (%d messages) is not replayed", len(history))
        session_id = self.conversation.open(greeting)
        return TactfulState(session_id=session_id)

    def generate_next_message(
        self, message: ValidAgentInputMessage, state: TactfulState
    ) -> tuple[AssistantMessage, TactfulState]:
        if isinstance(message, UserMessage):
            step = self.conversation.say(message.content or "")
        else:
            results = message.tool_messages if isinstance(message, MultiToolMessage) else [message]
            for result in results:
                self._answer(result)
            step = self.conversation.next_step()
        if isinstance(step, ToolRequest):
            self._waiting[step.call_id] = step
            return AssistantMessage.model_validate(step.tool_call()), state
        return self._reply(step, state), state

    def _answer(self, result: ToolMessage) -> None:
        request = self._waiting.pop(result.id, None)
        if request is None:
            log.warning("a tool result for a call tactful did not make: %s", result.id)
            return
        request.answer(ToolAnswer(result.content or "", error=result.error))

    def _reply(self, reply: AgentReply, state: TactfulState) -> AssistantMessage:
        state.turns.append(reply.trace_id)
        if reply.status != "ready":
            log.warning("tactful's turn %s ended %s", reply.trace_id, reply.status)
        missing = self.conversation.unreported(reply.trace_id, self.target.service)
        if missing:
            # Calls refused before reaching the service (invalid arguments) are only there.
            log.warning("tool events of turn %s not in the trajectory: %s", reply.trace_id, missing)
        return AssistantMessage(role="assistant", content=reply.text or SILENT)

    def stop(
        self, message: ValidAgentInputMessage | None = None, state: TactfulState | None = None
    ) -> None:
        for request in self._waiting.values():
            request.answer(ToolAnswer("Error: the simulation has ended", error=True))
        self._waiting.clear()
        self.conversation.close()

    def set_seed(self, seed: int) -> None:
        """tactful's sampling is its model's settings; the seed is not passed on."""


def factory(target: Target) -> Any:
    """τ²'s agent factory (``registry.register_agent_factory(factory(target), "tactful")``)."""

    def create_tactful_agent(tools: list[Tool], domain_policy: str, **kwargs: Any) -> TactfulAgent:
        return TactfulAgent(tools=tools, domain_policy=domain_policy, target=target)

    return create_tactful_agent
