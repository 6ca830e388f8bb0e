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

Every ``transition_to`` re-reads the stored journey, reuses an equal transition if there is
one (same source, same condition, and the same kind of target with the same action, tools or
sub-journey, or the same existing state), and otherwise stores the new state and transition
after validating the graph against the other journeys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tactful.domain import CannedResponse, CompositionMode, Guideline
from tactful.domain.journeys import (
    Journey,
    JourneyState,
    JourneyTransition,
    StateKind,
    journey_tag,
    validate,
)
from tactful.engine.hooks import BranchPredicate
from tactful.engine.retrievers import Retriever
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
        self.model = await self._server.runtime.store.get(Journey, self.model.id)
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
        self._server.runtime.engine.retrievers.add(self.tag, name, retriever)
        return retriever

    async def _canned_ids(self, responses: Sequence[CannedResponse | str]) -> list[str]:
        """Ids of ``responses``: stored ones are checked, templates are defined (tagged with
        this journey's tag)."""
        store = self._server.runtime.store
        ids = []
        for response in responses:
            if isinstance(response, CannedResponse):
                ids.append((await store.get(CannedResponse, response.id)).id)
            elif isinstance(response, str) and response.strip():
                ids.append((await self.create_canned_response(response)).id)
            else:
                raise ValidationError(
                    f"{response!r} is not a canned response or a canned response template"
                )
        return list(dict.fromkeys(ids))


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
        if chat_state is not None and not chat_state.strip():
            raise ValidationError("a chat state needs an action")
        if state is not None and not isinstance(state, StateHandle):
            raise ValidationError("state= takes a StateHandle, such as a transition's target")
        styled = canned_responses is not None or composition_mode is not None
        if styled and chat_state is None and tool_state is None:
            raise ValidationError(
                "canned_responses and composition_mode apply to a chat or tool state"
            )
        condition = condition.strip() if condition and condition.strip() else None
        here = self.journey
        sub_id = None if journey is None else _journey_id(journey)
        if sub_id == here.id:
            raise ValidationError(f"journey {here.id!r} cannot be its own sub-journey")
        # A state of another journey: a cross-journey transition to it.
        cross = state if state is not None and state.journey.id != here.id else None
        server = here._server
        tools: list[str] = []
        if tool_state is not None:
            listed = tool_state if isinstance(tool_state, list | tuple) else [tool_state]
            tools = await server.register_tools(listed)

        store = server.runtime.store
        async with store.transaction():
            canned = None if canned_responses is None else await here._canned_ids(canned_responses)
            current = await here.reload()
            by_id = {s.id: s for s in current.states}
            if self.id not in by_id:
                raise ValidationError(f"state {self.id!r} is not in journey {current.id!r}")
            if by_id[self.id].kind is StateKind.END:
                raise ValidationError("an end state has no transitions out of it")
            others = {j.id: j for j in await store.list(Journey) if j.id != current.id}

            if cross is not None:
                other = others.get(cross.journey.id) or await store.get(Journey, cross.journey.id)
                if cross.id not in {s.id for s in other.states}:
                    raise ValidationError(f"state {cross.id!r} is not in journey {other.id!r}")
                for t in current.transitions:
                    if (t.source, t.condition, t.target_journey_id, t.target) == (
                        self.id,
                        condition,
                        other.id,
                        cross.id,
                    ):
                        return await self._named(t, id, target_journey=cross.journey)
                transition = JourneyTransition(
                    source=self.id,
                    target=cross.id,
                    condition=condition,
                    target_journey_id=other.id,
                    **({"id": id} if id else {}),
                )
                states = current.states
            else:
                if state is not None:
                    target = by_id.get(state.id)
                    if target is None:
                        raise ValidationError(
                            f"state {state.id!r} is not in journey {current.id!r}"
                        )
                elif chat_state is not None or tool_state is not None:
                    target = JourneyState(
                        kind=StateKind.CHAT if chat_state is not None else StateKind.TOOL,
                        action=chat_state,
                        tools=tools,
                        canned_responses=canned or [],
                        composition_mode=composition_mode,
                    )
                elif sub_id is not None:
                    await store.get(Journey, sub_id)
                    target = JourneyState(kind=StateKind.JOURNEY, sub_journey_id=sub_id)
                else:
                    target = JourneyState(kind=StateKind.FORK if fork else StateKind.END)
                for t in current.transitions:
                    existing = by_id.get(t.target)
                    mine = (t.source, t.condition) == (self.id, condition)
                    if not mine or t.target_journey_id or existing is None:
                        continue
                    if existing.id == target.id or (
                        state is None and _shape(existing) == _shape(target)
                    ):
                        await self._restyle(current, existing, canned, composition_mode)
                        return await self._named(t, id)
                transition = JourneyTransition(
                    source=self.id,
                    target=target.id,
                    condition=condition,
                    **({"id": id} if id else {}),
                )
                states = current.states if state is not None else [*current.states, target]

            updated = current.model_copy(
                update={"states": states, "transitions": [*current.transitions, transition]}
            )
            problems = validate(
                updated,
                known_tools=await server.runtime.known_tools(),
                journeys=others,
                complete=False,
            )
            if problems:
                raise ValidationError("invalid journey: " + "; ".join(problems))
            here.model = await store.update(updated)
        return TransitionHandle(
            here, transition, target_journey=cross.journey if cross is not None else None
        )

    async def _named(
        self,
        transition: JourneyTransition,
        id: str | None,
        *,
        target_journey: JourneyHandle | None = None,
    ) -> TransitionHandle:
        """The handle of an existing ``transition``, renamed ``id`` first when asked (only
        the transition's name changes: sessions remember states, not transitions)."""
        here = self.journey
        if id and transition.id != id:
            renamed = transition.model_copy(update={"id": id})
            transitions = [renamed if t.id == transition.id else t for t in here.model.transitions]
            store = here._server.runtime.store
            here.model = await store.update(
                here.model.model_copy(update={"transitions": transitions})
            )
            transition = renamed
        return TransitionHandle(here, transition, target_journey=target_journey)

    async def _restyle(
        self,
        journey: Journey,
        state: JourneyState,
        canned: list[str] | None,
        composition_mode: CompositionMode | None,
    ) -> None:
        """Give an existing state the canned responses and composition mode asked for again."""
        changes: dict[str, Any] = {}
        if canned is not None and canned != state.canned_responses:
            changes["canned_responses"] = canned
        if composition_mode is not None and composition_mode != state.composition_mode:
            changes["composition_mode"] = composition_mode
        if not changes:
            return
        states = [s.model_copy(update=changes) if s.id == state.id else s for s in journey.states]
        store = self.journey._server.runtime.store
        self.journey.model = await store.update(journey.model_copy(update={"states": states}))


def _shape(state: JourneyState) -> tuple[object, ...]:
    """What makes two new states the same step (their style aside)."""
    return (state.kind, state.action, state.tools, state.sub_journey_id)


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
        self.journey._server.runtime.engine.hooks.add_branch(self.id, predicate)
        return self
