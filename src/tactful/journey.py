"""SDK handles for building a journey step by step, idempotently::

    journey = await agent.create_journey(
        title="Return an item", conditions=["the customer wants to return an item"]
    )
    t1 = await journey.initial_state.transition_to(chat_state="Ask for the order ID")
    t2 = await t1.target.transition_to(
        condition="the customer gave an order ID", tool_state=find_order
    )

A transition may also lead to a state of another journey (``state=`` a state of that journey:
this journey ends there and that one goes on), or run another journey as a sub-journey
(``journey=``) before going on from the state it creates.

Every ``transition_to`` maps its arguments (tools registered, canned response templates
defined) and hands the step to ``tactful.definitions.journeys.add_transition``, which re-reads
the stored journey, reuses an equal transition if there is one (same source, same condition,
and the same kind of target with the same action, tools or sub-journey, or the same existing
state), and otherwise stores the new state and transition after validating the graph against
the known tools and the other journeys.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from tactful.definitions import journeys, services
from tactful.domain import CannedResponse, CompositionMode, Guideline
from tactful.domain.journeys import (
    Journey,
    JourneyState,
    JourneyTransition,
    StateKind,
    journey_tag,
)
from tactful.engine.hooks import BranchPredicate
from tactful.engine.retrievers import Retriever
from tactful.errors import ValidationError
from tactful.runtime import Runtime

__all__ = ["JourneyHandle", "JourneyOwner", "StateHandle", "TransitionHandle"]


class JourneyOwner(Protocol):
    """What a journey's handle needs of the agent it belongs to (a ``tactful.Agent``): where it
    runs, and its ways to define guidelines and canned responses (scoped here to the journey)."""

    @property
    def id(self) -> str: ...

    @property
    def runtime(self) -> Runtime: ...

    @property
    def create_guideline(self) -> Callable[..., Awaitable[Guideline]]: ...

    @property
    def create_canned_response(self) -> Callable[..., Awaitable[CannedResponse]]: ...


class JourneyHandle:
    """A journey defined through the SDK; ``model`` is its state as last read or written."""

    def __init__(self, agent: JourneyOwner, model: Journey) -> None:
        self.agent = agent
        self.runtime = agent.runtime
        self.model = model

    def __repr__(self) -> str:
        return f"JourneyHandle(id={self.id!r}, title={self.title!r})"

    @property
    def id(self) -> str:
        return self.model.id

    @property
    def title(self) -> str:
        return self.model.title

    @property
    def tag(self) -> str:
        """The tag that scopes guidelines and canned responses to this journey."""
        return journey_tag(self.id)

    @property
    def initial_state(self) -> StateHandle:
        return StateHandle(self, self.model.initial_state_id)

    async def reload(self) -> Journey:
        """Read the journey again from the store."""
        self.model = await self.runtime.store.get(Journey, self.model.id)
        return self.model

    async def create_guideline(
        self,
        condition: str,
        action: str | None = None,
        *,
        tags: Sequence[str] = (),
        **kwargs: Any,
    ) -> Guideline:
        """A guideline of the agent scoped to this journey: checked only while the journey is
        followed. Takes the arguments of ``Agent.create_guideline``; idempotent the same way,
        within this journey."""
        return await self.agent.create_guideline(
            condition, action, tags=[self.tag, *tags], **kwargs
        )

    async def create_observation(
        self,
        condition: str,
        *,
        id: str | None = None,
        description: str | None = None,
        tags: Sequence[str] = (),
        examples: Sequence[str] = (),
    ) -> Guideline:
        """A condition without an action, scoped to this journey."""
        return await self.create_guideline(
            condition, None, id=id, description=description, tags=tags, examples=examples
        )

    async def create_canned_response(
        self, template: str, *, tags: Sequence[str] = (), **kwargs: Any
    ) -> CannedResponse:
        """A canned response of the agent scoped to this journey. Takes the arguments of
        ``Agent.create_canned_response``; idempotent by template within this journey."""
        return await self.agent.create_canned_response(template, tags=[self.tag, *tags], **kwargs)

    def attach_retriever(self, retriever: Retriever, *, id: str | None = None) -> Retriever:
        """Run ``retriever`` in the turns where this journey is followed (see
        ``Agent.attach_retriever``). Returns ``retriever``."""
        name = id or getattr(retriever, "__name__", None) or "retriever"
        self.runtime.engine.retrievers.add(self.tag, name, retriever)
        return retriever

    async def _canned_ids(self, responses: Sequence[CannedResponse | str]) -> list[str]:
        """Ids of ``responses``: stored ones as they are, templates defined (tagged with this
        journey's tag)."""
        ids = []
        for response in responses:
            if isinstance(response, CannedResponse):
                ids.append(response.id)
            elif isinstance(response, str) and response.strip():
                ids.append((await self.create_canned_response(response)).id)
            else:
                raise ValidationError(
                    f"{response!r} is not a canned response or a canned response template"
                )
        return ids


def _journey_id(journey: JourneyHandle | Journey) -> str:
    if isinstance(journey, JourneyHandle | Journey):
        return journey.id
    raise ValidationError(f"{journey!r} is not a journey")


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
        state: StateHandle | None = None,
        journey: JourneyHandle | Journey | None = None,
        condition: str | None = None,
        canned_responses: Sequence[CannedResponse | str] | None = None,
        composition_mode: CompositionMode | None = None,
        id: str | None = None,
    ) -> TransitionHandle:
        """Go from this state, when ``condition`` holds (always, without one), to exactly one of:
        a new chat state (its action), a new tool state (a tool or a list of them), a new fork
        or end state, an existing ``state`` (of this journey, or of another one: this journey
        then ends and that one goes on from there), or a new state running ``journey`` as a
        sub-journey (the journey goes on from that state once the sub-journey ends).

        A new chat or tool state may prefer ``canned_responses`` (stored ones, or templates,
        defined scoped to this journey) and use its own ``composition_mode``; given again
        for an existing transition, they replace the state's. ``id`` names the transition
        (code that decides it, ``TransitionHandle.when``, can then be attached by that id
        before the journey is loaded); an equal transition already there takes that id.
        Idempotent.
        """
        chosen = [
            chat_state is not None,
            tool_state is not None,
            fork,
            end,
            state is not None,
            journey is not None,
        ]
        if sum(chosen) != 1:
            raise ValidationError(
                "transition_to() needs exactly one of chat_state, tool_state, fork, end, state "
                "or journey"
            )
        if state is not None and not isinstance(state, StateHandle):
            raise ValidationError("state= takes a StateHandle, such as a transition's target")
        here = self.journey
        runtime = here.runtime
        to: JourneyState | str
        if state is not None:
            to = state.id
        elif chat_state is not None:
            to = JourneyState(kind=StateKind.CHAT, action=chat_state)
        elif tool_state is not None:
            listed = tool_state if isinstance(tool_state, list | tuple) else [tool_state]
            to = JourneyState(
                kind=StateKind.TOOL,
                tools=await services.register_tools(runtime.store, runtime.engine.tools, listed),
            )
        elif journey is not None:
            to = JourneyState(kind=StateKind.JOURNEY, sub_journey_id=_journey_id(journey))
        else:
            to = JourneyState(kind=StateKind.FORK if fork else StateKind.END)
        # A state of another journey: a transition into that journey.
        into = state.journey if state is not None and state.journey.id != here.id else None
        store = runtime.store
        async with store.transaction():
            canned = None if canned_responses is None else await here._canned_ids(canned_responses)
            here.model, transition = await journeys.add_transition(
                store,
                runtime.engine.tools,
                here.id,
                self.id,
                to=to,
                target_journey_id=into.id if into is not None else None,
                condition=condition,
                canned_responses=canned,
                composition_mode=composition_mode,
                transition_id=id,
            )
        return TransitionHandle(here, transition, target_journey=into)


class TransitionHandle:
    """A transition of a journey; ``target`` is the state it leads to (a state of another
    journey for a cross-journey transition)."""

    def __init__(
        self,
        journey: JourneyHandle,
        model: JourneyTransition,
        *,
        target_journey: JourneyHandle | None = None,
    ) -> None:
        self.journey = journey
        self.model = model
        self._target_journey = target_journey

    def __repr__(self) -> str:
        return f"TransitionHandle(journey={self.journey.id!r}, id={self.id!r})"

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
        other = self.model.target_journey_id
        if other is None:
            return StateHandle(self.journey, self.model.target)
        if self._target_journey is None or self._target_journey.id != other:
            raise ValidationError(f"transition {self.id!r} leads to journey {other!r}: not loaded")
        return StateHandle(self._target_journey, self.model.target)

    def when(self, predicate: BranchPredicate) -> TransitionHandle:
        """Decide this transition with code: ``predicate(ctx)`` over the conversation and the
        results of this turn's tools (``ctx.results["find_order"]``), plain or async, returning
        True or False. Where a journey walks on without the model (after a tool state, on the
        offline tier) the predicate decides instead of the text condition, so a fork on data
        needs no model call. Held in memory: register it again when the process starts, as the
        journey's definition is run again. Returns this handle."""
        self.journey.runtime.engine.hooks.add_branch(self.id, predicate)
        return self
