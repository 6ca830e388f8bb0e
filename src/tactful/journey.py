"""SDK handles for building a journey step by step, idempotently::

    journey = await agent.create_journey(
        title="Return an item", conditions=["the customer wants to return an item"]
    )
    t1 = await journey.initial_state.transition_to(chat_state="Ask for the order ID")
    t2 = await t1.target.transition_to(
        condition="the customer gave an order ID", tool_state=find_order
    )

Every ``transition_to`` re-reads the stored journey, reuses an equal transition if there is
one (same source, same kind of target with the same action or tools, same condition), and
otherwise stores the new state and transition after validating the graph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tactful.domain.journeys import Journey, JourneyState, JourneyTransition, StateKind
from tactful.domain.tools import ToolSpec
from tactful.engine.journeys import validate
from tactful.errors import ValidationError

if TYPE_CHECKING:
    from tactful.agent import Agent
    from tactful.server import Server

__all__ = ["JourneyHandle", "StateHandle", "TransitionHandle"]


class JourneyHandle:
    """A journey defined through the SDK; ``model`` is its state as last read or written."""

    def __init__(self, agent: Agent, server: Server, model: Journey) -> None:
        self.agent = agent
        self._server = server
        self.model = model

    @property
    def id(self) -> str:
        return self.model.id

    @property
    def title(self) -> str:
        return self.model.title

    @property
    def initial_state(self) -> StateHandle:
        return StateHandle(self, self.model.initial_state_id)

    async def reload(self) -> Journey:
        self.model = await self._server.runtime.store.get(Journey, self.model.id)
        return self.model

    async def _known_tools(self) -> set[str]:
        runtime = self._server.runtime
        known = {s.id for s in runtime.engine.tools.specs()}
        known.update(s.id for s in await runtime.store.list(ToolSpec))
        return known


class StateHandle:
    """One state of a journey."""

    def __init__(self, journey: JourneyHandle, state_id: str) -> None:
        self.journey = journey
        self.id = state_id

    def __repr__(self) -> str:
        return f"StateHandle(journey={self.journey.id!r}, id={self.id!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, StateHandle)
            and other.journey.id == self.journey.id
            and other.id == self.id
        )

    def __hash__(self) -> int:
        return hash((self.journey.id, self.id))

    @property
    def model(self) -> JourneyState:
        for state in self.journey.model.states:
            if state.id == self.id:
                return state
        raise ValidationError(f"state {self.id!r} is not in journey {self.journey.id!r}")

    async def transition_to(
        self,
        *,
        chat_state: str | None = None,
        tool_state: Any = None,
        fork: bool = False,
        end: bool = False,
        condition: str | None = None,
        state: StateHandle | None = None,
    ) -> TransitionHandle:
        """Go from this state to a new chat, tool, fork or end state, or to an existing
        ``state``, when ``condition`` holds (always, without one). Idempotent."""
        chosen = [
            chat_state is not None,
            tool_state is not None,
            fork,
            end,
            state is not None,
        ]
        if sum(chosen) != 1:
            raise ValidationError(
                "transition_to() needs exactly one of chat_state, tool_state, fork, end or state"
            )
        if chat_state is not None and not chat_state.strip():
            raise ValidationError("a chat state needs an action")
        condition = condition.strip() if condition and condition.strip() else None
        server = self.journey._server
        tools: list[str] = []
        if tool_state is not None:
            listed = tool_state if isinstance(tool_state, list | tuple) else [tool_state]
            tools = await server.register_tools(listed)
        if state is not None and state.journey.id != self.journey.id:
            raise ValidationError("a transition must stay within its journey")

        store = server.runtime.store
        async with store.transaction():
            journey = await self.journey.reload()
            by_id = {s.id: s for s in journey.states}
            if self.id not in by_id:
                raise ValidationError(f"state {self.id!r} is not in journey {journey.id!r}")
            if by_id[self.id].kind is StateKind.END:
                raise ValidationError("an end state has no transitions out of it")

            if state is not None:
                target = by_id.get(state.id)
                if target is None:
                    raise ValidationError(f"state {state.id!r} is not in journey {journey.id!r}")
            elif chat_state is not None:
                target = JourneyState(kind=StateKind.CHAT, action=chat_state)
            elif tool_state is not None:
                target = JourneyState(kind=StateKind.TOOL, tools=tools)
            else:
                target = JourneyState(kind=StateKind.FORK if fork else StateKind.END)

            for t in journey.transitions:
                existing = by_id.get(t.target)
                if t.source != self.id or t.condition != condition or existing is None:
                    continue
                if state is not None:
                    same = existing.id == target.id
                else:
                    same = (existing.kind, existing.action, existing.tools) == (
                        target.kind,
                        target.action,
                        target.tools,
                    )
                if same:
                    return TransitionHandle(self.journey, t)

            transition = JourneyTransition(source=self.id, target=target.id, condition=condition)
            states = journey.states if state is not None else [*journey.states, target]
            updated = journey.model_copy(
                update={"states": states, "transitions": [*journey.transitions, transition]}
            )
            problems = validate(
                updated, known_tools=await self.journey._known_tools(), complete=False
            )
            if problems:
                raise ValidationError("invalid journey: " + "; ".join(problems))
            self.journey.model = await store.update(updated)
        return TransitionHandle(self.journey, transition)


class TransitionHandle:
    """A transition of a journey; ``target`` is the state it leads to."""

    def __init__(self, journey: JourneyHandle, model: JourneyTransition) -> None:
        self.journey = journey
        self.model = model

    @property
    def id(self) -> str:
        return self.model.id

    @property
    def condition(self) -> str | None:
        return self.model.condition

    @property
    def source(self) -> StateHandle:
        return StateHandle(self.journey, self.model.source)

    @property
    def target(self) -> StateHandle:
        return StateHandle(self.journey, self.model.target)
