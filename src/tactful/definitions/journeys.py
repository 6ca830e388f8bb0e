"""Storing journeys and their graphs, the same way for the SDK (``Agent.create_journey``, the
journey handles' ``transition_to``) and for ``/journeys``.

A journey starts on conditions: guidelines (usually observations) named by id. A condition
given as text becomes an observation carrying the journey's tags, or reuses the stored one that
``domain.journeys.condition_observation`` picks. A graph is checked with
``domain.journeys.validate`` against the known tools (registered in this process or stored),
the stored canned responses and the other journeys before it is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tactful.definitions.services import known_tools
from tactful.definitions.tags import check_tags
from tactful.domain import CannedResponse, CompositionMode, Guideline
from tactful.domain.journeys import (
    Journey,
    JourneyState,
    JourneyTransition,
    StateKind,
    condition_observation,
    validate,
)
from tactful.errors import ValidationError
from tactful.store.base import Store
from tactful.tools.registry import ToolRegistry

# A journey's condition: a stored guideline as it is, or a text that becomes an observation.
Condition = Guideline | str

_GRAPH = ("initial_state_id", "states", "transitions")


async def create_journey(
    store: Store, journey: Journey, *, conditions: Sequence[Condition] = ()
) -> Journey:
    """Store a new journey (REST's create): a taken id is ``ConflictError``.

    Its tags must be stored tags or ``agent:<id>`` of a stored agent, and the guidelines it
    starts on (``journey.conditions`` by id, then ``conditions``) must be stored; each text of
    ``conditions`` becomes an observation (see ``journey_conditions``). Repeats are dropped.
    It starts with an initial state only: build its graph with ``replace_graph`` or
    ``add_transition``."""
    async with store.transaction():
        checked = await _with_conditions(store, journey, conditions, None)
        return await store.create(_with_initial_state(checked))


async def define_journey(
    store: Store,
    journey: Journey,
    *,
    key: str | None,
    conditions: Sequence[Condition] = (),
    observation_key: Callable[[str], str] | None = None,
) -> Journey:
    """Store a journey idempotently (the SDK's define): the one stored under ``key`` (under
    ``journey.id`` when ``key`` is None) is replaced, keeping its graph: states, transitions
    and initial state. A new one starts with an initial state only. Checked as
    ``create_journey``; each condition text without a stored observation to reuse becomes one
    defined under ``observation_key(text)`` (created anew without it)."""
    async with store.transaction():
        if key is not None:
            existing = await store.get_by_key(Journey, key)
        else:
            existing = await store.find(Journey, journey.id)
        checked = await _with_conditions(store, journey, conditions, observation_key, existing)
        if existing is None:
            checked = _with_initial_state(checked)
        else:
            checked = checked.model_copy(update={k: getattr(existing, k) for k in _GRAPH})
        if key is not None:
            stored, _ = await store.upsert(checked, key=key)
        else:
            stored, _ = await store.upsert(checked)
        return stored


async def update_journey(store: Store, journey_id: str, changes: Mapping[str, Any]) -> Journey:
    """Change a journey's attributes (not its graph: ``replace_graph``), checked as
    ``create_journey`` checks a new one. ``NotFoundError`` for an unknown journey."""
    if graph := [k for k in _GRAPH if k in changes]:
        raise ValidationError(
            f"change a journey's graph with replace_graph or add_transition, not {graph[0]}"
        )
    async with store.transaction():
        old = await store.get(Journey, journey_id)
        updated = Journey.model_validate({**old.model_dump(), **changes})
        return await store.update(await _checked(store, updated, old))


async def journey_conditions(
    store: Store,
    conditions: Iterable[Condition],
    tags: Sequence[str],
    *,
    key: Callable[[str], str] | None = None,
) -> list[str]:
    """The ids of the guidelines a journey with ``tags`` starts on, in order without repeats:
    a guideline as it is, and for each text (stripped; blank ones are skipped) the stored
    observation ``condition_observation`` picks, else a new observation with that condition
    and ``tags``, defined under ``key(text)`` when ``key`` is given. Joins the caller's
    transaction."""
    guidelines = await store.list(Guideline)
    ids = []
    for condition in conditions:
        if isinstance(condition, Guideline):
            ids.append(condition.id)
            continue
        text = condition.strip()
        if not text:
            continue
        observation = condition_observation(guidelines, text, tags)
        if observation is None:
            new = Guideline(condition=text, tags=list(tags))
            if key is None:
                observation = await store.create(new)
            else:
                observation, _ = await store.upsert(new, key=key(text))
            guidelines.append(observation)
        ids.append(observation.id)
    return list(dict.fromkeys(ids))


async def replace_graph(
    store: Store,
    tools: ToolRegistry,
    journey_id: str,
    *,
    initial_state_id: str,
    states: Sequence[JourneyState],
    transitions: Sequence[JourneyTransition],
) -> Journey:
    """Replace a journey's graph, once ``validate`` finds no problem with it (the tools known
    to ``tools`` or stored, the stored canned responses and the other journeys): else a
    ``ValidationError`` listing every problem in ``problems``, and nothing is written."""
    async with store.transaction():
        journey = await store.get(Journey, journey_id)
        updated = journey.model_copy(
            update={
                "initial_state_id": initial_state_id,
                "states": list(states),
                "transitions": list(transitions),
            }
        )
        problems = validate(
            updated,
            known_tools=await known_tools(store, tools),
            known_canned_responses={c.id for c in await store.list(CannedResponse)},
            journeys=await _others(store, journey_id),
        )
        if problems:
            raise _invalid(problems)
        return await store.update(updated)


async def add_transition(
    store: Store,
    tools: ToolRegistry,
    journey_id: str,
    source: str,
    *,
    to: JourneyState | str,
    target_journey_id: str | None = None,
    condition: str | None = None,
    canned_responses: Sequence[str] | None = None,
    composition_mode: CompositionMode | None = None,
    transition_id: str | None = None,
) -> tuple[Journey, JourneyTransition]:
    """Add one step to a journey's graph, idempotently: a transition from the state ``source``,
    when ``condition`` holds (always, without one), to ``to``: a new state (its kind, action,
    tools or sub-journey make the step) or the id of a stored state, of this journey or of
    ``target_journey_id`` (this journey then ends there and that one goes on).

    ``canned_responses`` (ids) and ``composition_mode`` style a new chat or tool state. An
    equal transition already there (same source and condition, and a new state of the same
    step or the same stored state) is reused: it takes the id ``transition_id`` when given,
    and its state the style given again. Otherwise the transition (named ``transition_id``)
    and its new state are added, and the graph is validated as one under construction (a
    fork may still lack branches) against the known tools and the other journeys before it
    is written. Returns the journey as stored and the transition."""
    condition = condition.strip() if condition and condition.strip() else None
    styled = canned_responses is not None or composition_mode is not None
    _check_step(journey_id, to, target_journey_id, styled=styled)
    async with store.transaction():
        current = await store.get(Journey, journey_id)
        by_id = {s.id: s for s in current.states}
        if source not in by_id:
            raise ValidationError(f"state {source!r} is not in journey {current.id!r}")
        if by_id[source].kind is StateKind.END:
            raise ValidationError("an end state has no transitions out of it")
        canned = None if canned_responses is None else await _canned(store, canned_responses)
        others = await _others(store, journey_id)
        named = {"id": transition_id} if transition_id else {}
        states = current.states
        if isinstance(to, str) and target_journey_id is not None:
            other = others.get(target_journey_id) or await store.get(Journey, target_journey_id)
            if to not in {s.id for s in other.states}:
                raise ValidationError(f"state {to!r} is not in journey {other.id!r}")
            step = (source, condition, other.id, to)
            for t in current.transitions:
                if (t.source, t.condition, t.target_journey_id, t.target) == step:
                    return await _reuse(store, current, current, t, transition_id)
            transition = JourneyTransition(
                source=source, target=to, condition=condition, target_journey_id=other.id, **named
            )
        else:
            new = isinstance(to, JourneyState)
            target = await _target(store, current, to, canned, composition_mode)
            for t in current.transitions:
                if _same_step(t, by_id, source, condition, target, new=new):
                    restyled = _restyle(current, by_id[t.target], canned, composition_mode)
                    return await _reuse(store, current, restyled, t, transition_id)
            transition = JourneyTransition(
                source=source, target=target.id, condition=condition, **named
            )
            if new:
                states = [*states, target]
        updated = current.model_copy(
            update={"states": states, "transitions": [*current.transitions, transition]}
        )
        problems = validate(
            updated, known_tools=await known_tools(store, tools), journeys=others, complete=False
        )
        if problems:
            raise _invalid(problems)
        return await store.update(updated), transition


# -- checks -------------------------------------------------------------------------------------


async def _with_conditions(
    store: Store,
    journey: Journey,
    conditions: Sequence[Condition],
    key: Callable[[str], str] | None,
    before: Journey | None = None,
) -> Journey:
    """``journey`` checked (against ``before``, the journey it replaces), starting on its
    conditions and then on ``conditions``."""
    if journey.states or journey.transitions or journey.initial_state_id:
        raise ValidationError(
            "a new journey starts with its initial state only: build its graph with "
            "replace_graph or add_transition"
        )
    tags = list(dict.fromkeys(journey.tags))
    ids = await journey_conditions(store, conditions, tags, key=key)
    merged = journey.model_copy(update={"conditions": [*journey.conditions, *ids]})
    return await _checked(store, merged, before)


async def _checked(store: Store, journey: Journey, before: Journey | None = None) -> Journey:
    """``journey`` without repeated conditions, tags or labels, once the guidelines it starts
    on and its tags are known to be stored (``tags.check_tags``: a tag id or ``agent:<id>`` of a
    stored agent). Those it carried already (``before``) are not judged again."""
    conditions = list(dict.fromkeys(journey.conditions))
    for guideline_id in conditions:
        if before is None or guideline_id not in before.conditions:
            await store.get(Guideline, guideline_id)
    held = before.tags if before is not None else ()
    tags = list(dict.fromkeys(journey.tags))
    await check_tags(store, [t for t in tags if t not in held])
    labels = list(dict.fromkeys(journey.labels))
    return journey.model_copy(update={"conditions": conditions, "tags": tags, "labels": labels})


def _with_initial_state(journey: Journey) -> Journey:
    first = JourneyState()
    return journey.model_copy(update={"initial_state_id": first.id, "states": [first]})


def _check_step(
    journey_id: str, to: JourneyState | str, target_journey_id: str | None, *, styled: bool
) -> None:
    """Refuse a step that no graph could take, before anything is read."""
    new = to if isinstance(to, JourneyState) else None
    if new is not None and new.kind is StateKind.CHAT and not (new.action or "").strip():
        raise ValidationError("a chat state needs an action")
    if styled and (new is None or new.kind not in (StateKind.CHAT, StateKind.TOOL)):
        raise ValidationError("canned_responses and composition_mode apply to a chat or tool state")
    if new is not None and new.kind is StateKind.JOURNEY and new.sub_journey_id == journey_id:
        raise ValidationError(f"journey {journey_id!r} cannot be its own sub-journey")
    if new is not None and target_journey_id is not None:
        raise ValidationError("a transition into another journey leads to one of its states")


def _invalid(problems: list[str]) -> ValidationError:
    return ValidationError("invalid journey: " + "; ".join(problems), problems=tuple(problems))


# -- steps --------------------------------------------------------------------------------------


async def _others(store: Store, journey_id: str) -> dict[str, Journey]:
    return {j.id: j for j in await store.list(Journey) if j.id != journey_id}


async def _canned(store: Store, ids: Sequence[str]) -> list[str]:
    """``ids`` without repeats, once each names a stored canned response."""
    unique = list(dict.fromkeys(ids))
    for canned_id in unique:
        await store.get(CannedResponse, canned_id)
    return unique


async def _target(
    store: Store,
    journey: Journey,
    to: JourneyState | str,
    canned: list[str] | None,
    composition_mode: CompositionMode | None,
) -> JourneyState:
    """The state of ``journey`` a step leads to: the stored one named, or the new one styled."""
    if isinstance(to, str):
        for state in journey.states:
            if state.id == to:
                return state
        raise ValidationError(f"state {to!r} is not in journey {journey.id!r}")
    if to.kind is StateKind.JOURNEY and to.sub_journey_id:
        await store.get(Journey, to.sub_journey_id)
    style: dict[str, Any] = {}
    if canned is not None:
        style["canned_responses"] = canned
    if composition_mode is not None:
        style["composition_mode"] = composition_mode
    return to.model_copy(update=style)


def _same_step(
    t: JourneyTransition,
    states: Mapping[str, JourneyState],
    source: str,
    condition: str | None,
    target: JourneyState,
    *,
    new: bool,
) -> bool:
    """Whether ``t`` already makes the step to ``target`` (a new state: one of the same kind,
    action, tools and sub-journey)."""
    existing = states.get(t.target)
    if (t.source, t.condition) != (source, condition) or t.target_journey_id or existing is None:
        return False
    return existing.id == target.id or (new and _shape(existing) == _shape(target))


def _shape(state: JourneyState) -> tuple[object, ...]:
    """What makes two new states the same step (their style aside)."""
    return (state.kind, state.action, state.tools, state.sub_journey_id)


def _restyle(
    journey: Journey,
    state: JourneyState,
    canned: list[str] | None,
    composition_mode: CompositionMode | None,
) -> Journey:
    """``journey`` with ``state`` given the canned responses and composition mode asked for."""
    changes: dict[str, Any] = {}
    if canned is not None and canned != state.canned_responses:
        changes["canned_responses"] = canned
    if composition_mode is not None and composition_mode != state.composition_mode:
        changes["composition_mode"] = composition_mode
    if not changes:
        return journey
    states = [s.model_copy(update=changes) if s.id == state.id else s for s in journey.states]
    return journey.model_copy(update={"states": states})


async def _reuse(
    store: Store,
    stored: Journey,
    journey: Journey,
    transition: JourneyTransition,
    transition_id: str | None,
) -> tuple[Journey, JourneyTransition]:
    """An existing ``transition`` of ``journey`` (``stored``, maybe restyled), renamed
    ``transition_id`` when asked (only its name changes: sessions remember states, not
    transitions); written when it differs from ``stored``."""
    if transition_id and transition.id != transition_id:
        renamed = transition.model_copy(update={"id": transition_id})
        transitions = [renamed if t.id == transition.id else t for t in journey.transitions]
        journey, transition = journey.model_copy(update={"transitions": transitions}), renamed
    if journey != stored:
        journey = await store.update(journey)
    return journey, transition
