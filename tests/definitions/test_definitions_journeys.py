"""Storing journeys and their graphs (``definitions.journeys``): create (a taken id is a
conflict), define (idempotent, keeping the graph), update, condition observations, replacing a
graph and adding steps to one; every refusal writes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

import tactful
from tactful.definitions.journeys import (
    add_transition,
    create_journey,
    define_journey,
    journey_conditions,
    replace_graph,
    update_journey,
)
from tactful.domain import Agent, CannedResponse, Guideline, Journey, Tag
from tactful.domain.journeys import JourneyState, JourneyTransition, StateKind
from tactful.errors import ConflictError, NotFoundError, ValidationError
from tactful.llm.scripted import HashingEmbedder
from tactful.store.base import Store
from tactful.tools.registry import ToolRegistry

RETURN = "the customer wants to return an item"


@pytest_asyncio.fixture
async def server() -> AsyncIterator[tactful.Server]:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        await s.runtime.store.create(Agent(id="shop", name="Shop"))
        await s.runtime.store.create(Tag(id="vip", name="vip"))
        yield s


@pytest_asyncio.fixture
async def store(server: tactful.Server) -> Store:
    return server.runtime.store


@pytest_asyncio.fixture
async def tools(server: tactful.Server) -> ToolRegistry:
    return server.runtime.engine.tools


@tactful.tool
async def find_order(context: tactful.ToolContext, order_id: str) -> dict[str, str]:
    """Look an order up."""
    return {"order_id": order_id}


# -- create, define, update ---------------------------------------------------------------------


async def test_create_makes_observations_and_an_initial_state(store: Store) -> None:
    plain = await store.create(Guideline(condition=RETURN, tags=["agent:shop"]))
    created = await create_journey(
        store,
        Journey(title="Return", tags=["agent:shop", "vip", "vip"], labels=["a", "a"]),
        conditions=[f"  {RETURN} ", "", RETURN, "the item is broken"],
    )
    assert created.tags == ["agent:shop", "vip"] and created.labels == ["a"]
    [state] = created.states
    assert created.initial_state_id == state.id and created.transitions == []
    observations = [await store.get(Guideline, c) for c in created.conditions]
    # Stripped, blanks skipped, repeats once; the agent-wide observation has other tags.
    assert [(o.condition, o.action, o.tags) for o in observations] == [
        (RETURN, None, ["agent:shop", "vip"]),
        ("the item is broken", None, ["agent:shop", "vip"]),
    ]
    assert plain.id not in created.conditions
    other = await create_journey(
        store, Journey(title="Exchange", tags=["vip", "agent:shop"]), conditions=[RETURN]
    )
    assert other.conditions == created.conditions[:1]


async def test_create_refuses_a_taken_id_and_unknown_references(store: Store) -> None:
    await create_journey(store, Journey(id="returns", title="Return"))
    refusals: list[tuple[Journey, type[Exception], str]] = [
        (Journey(id="returns", title="Again"), ConflictError, "returns"),
        (Journey(title="R", tags=["nope"]), NotFoundError, "Tag 'nope'"),
        (Journey(title="R", tags=["agent:nope"]), NotFoundError, "Agent 'nope'"),
        (Journey(title="R", conditions=["nope"]), NotFoundError, "Guideline 'nope'"),
        (Journey(title="R", initial_state_id="s"), ValidationError, "initial state only"),
    ]
    for journey, error, message in refusals:
        with pytest.raises(error, match=message):
            await create_journey(store, journey, conditions=["the customer is in a hurry"])
    # Each refusal wrote nothing, not even the observation of its condition.
    assert [j.title for j in await store.list(Journey)] == ["Return"]
    assert await store.list(Guideline) == []


async def test_define_is_idempotent_by_key_and_keeps_the_graph(
    store: Store, tools: ToolRegistry
) -> None:
    def key(condition: str) -> str:
        return f"observation:{condition}"

    first = await define_journey(
        store, Journey(title="Return"), key="k", conditions=[RETURN], observation_key=key
    )
    await add_transition(store, tools, first.id, first.initial_state_id, to=_chat("Ask"))
    again = await define_journey(
        store,
        Journey(title="Return, again", priority=3),
        key="k",
        conditions=[RETURN],
        observation_key=key,
    )
    assert (again.id, again.title, again.priority) == (first.id, "Return, again", 3)
    assert again.conditions == first.conditions
    assert len(again.states) == 2 and len(again.transitions) == 1
    assert await store.get_by_key(Guideline, key(RETURN)) is not None
    assert len(await store.list(Guideline)) == 1


async def test_define_by_id_without_a_key(store: Store) -> None:
    made = await define_journey(store, Journey(id="returns", title="Return"), key=None)
    kept = await define_journey(store, Journey(id="returns", title="Returns"), key=None)
    assert (kept.id, kept.title, kept.states) == ("returns", "Returns", made.states)
    # An observation passed as it is must be stored.
    with pytest.raises(NotFoundError, match="Guideline"):
        await define_journey(
            store, Journey(id="returns", title="R"), key=None, conditions=[Guideline(condition="x")]
        )


async def test_journey_conditions_keep_guidelines_as_they_are(store: Store) -> None:
    given = await store.create(Guideline(condition=RETURN, action="help"))
    ids = await journey_conditions(store, [given, RETURN, given], ["agent:shop"])
    assert ids[0] == given.id and len(ids) == 2
    assert (await store.get(Guideline, ids[1])).action is None


async def test_update_checks_what_it_adds(store: Store) -> None:
    journey = await create_journey(store, Journey(title="Return"), conditions=[RETURN])
    updated = await update_journey(
        store, journey.id, {"title": "Returns", "tags": ["vip", "vip"], "conditions": []}
    )
    assert (updated.title, updated.tags, updated.conditions) == ("Returns", ["vip"], [])
    assert updated.states == journey.states
    with pytest.raises(NotFoundError, match="Tag 'nope'"):
        await update_journey(store, journey.id, {"tags": ["vip", "nope"]})
    with pytest.raises(NotFoundError, match="Guideline 'nope'"):
        await update_journey(store, journey.id, {"conditions": ["nope"]})
    with pytest.raises(ValidationError, match="replace_graph"):
        await update_journey(store, journey.id, {"states": []})
    with pytest.raises(NotFoundError, match="Journey 'nope'"):
        await update_journey(store, "nope", {"title": "x"})
    assert (await store.get(Journey, journey.id)).tags == ["vip"]


async def test_update_does_not_judge_again_what_the_journey_carries(store: Store) -> None:
    # A journey's own tag on another journey: documents may write it, REST may not add it.
    other = await create_journey(store, Journey(title="Other"))
    journey = await store.create(Journey(title="Return", tags=[f"journey:{other.id}"]))
    renamed = await update_journey(store, journey.id, {"title": "Returns"})
    assert renamed.tags == [f"journey:{other.id}"]


# -- graphs -------------------------------------------------------------------------------------


def _chat(action: str) -> JourneyState:
    return JourneyState(kind=StateKind.CHAT, action=action)


async def test_replace_graph_lists_every_problem_and_writes_nothing(
    server: tactful.Server, store: Store, tools: ToolRegistry
) -> None:
    journey = await create_journey(store, Journey(title="Return"))
    start, tool = JourneyState(id="start"), JourneyState(id="t", kind=StateKind.TOOL)
    with pytest.raises(ValidationError) as refused:
        await replace_graph(
            store,
            tools,
            journey.id,
            initial_state_id="start",
            states=[start, tool.model_copy(update={"tools": ["nope:tool"]}), _chat("lost")],
            transitions=[JourneyTransition(source="start", target="t")],
        )
    assert len(refused.value.problems) == 2
    assert "unreachable" in refused.value.problems[0]
    assert "unknown tool 'nope:tool'" in refused.value.problems[1]
    assert await store.get(Journey, journey.id) == journey

    await server.register_tools([find_order])
    replaced = await replace_graph(
        store,
        tools,
        journey.id,
        initial_state_id="start",
        states=[start, tool.model_copy(update={"tools": [find_order.tool_id]})],
        transitions=[JourneyTransition(source="start", target="t")],
    )
    assert [s.id for s in replaced.states] == ["start", "t"]
    with pytest.raises(NotFoundError):
        await replace_graph(store, tools, "nope", initial_state_id="", states=[], transitions=[])


async def test_add_transition_adds_and_reuses_steps(store: Store, tools: ToolRegistry) -> None:
    journey = await create_journey(store, Journey(title="Return"))
    start = journey.initial_state_id
    canned = await store.create(CannedResponse(value="Your order number?"))
    stored, ask = await add_transition(
        store, tools, journey.id, start, to=_chat("Ask"), condition="  ", canned_responses=[]
    )
    assert ask.condition is None and len(stored.states) == 2
    # The same step: the same transition, renamed and restyled when asked.
    stored, again = await add_transition(
        store,
        tools,
        journey.id,
        start,
        to=_chat("Ask"),
        canned_responses=[canned.id, canned.id],
        transition_id="ask",
    )
    assert (again.id, again.target) == ("ask", ask.target)
    [state] = [s for s in stored.states if s.id == ask.target]
    assert state.canned_responses == [canned.id]
    assert len(stored.states) == 2 and [t.id for t in stored.transitions] == ["ask"]
    # Back to a stored state, and a fork still without its branches.
    stored, loop = await add_transition(
        store, tools, journey.id, ask.target, to=start, condition="again"
    )
    assert loop.target == start and len(stored.states) == 2
    fork = JourneyState(kind=StateKind.FORK)
    stored, _ = await add_transition(store, tools, journey.id, ask.target, to=fork)
    assert stored.states[-1].kind is StateKind.FORK
    assert await store.get(Journey, journey.id) == stored


async def test_add_transition_refusals_write_nothing(store: Store, tools: ToolRegistry) -> None:
    journey = await create_journey(store, Journey(id="returns", title="Return"))
    start = journey.initial_state_id
    _, done = await add_transition(
        store, tools, "returns", start, to=JourneyState(kind=StateKind.END), condition="done"
    )
    before = await store.get(Journey, "returns")
    end = JourneyState(kind=StateKind.END)
    refusals: list[tuple[str, dict[str, object], type[Exception], str]] = [
        (start, {"to": _chat(" ")}, ValidationError, "needs an action"),
        (start, {"to": end, "composition_mode": "strict"}, ValidationError, "chat or tool"),
        (start, {"to": JourneyState(kind=StateKind.JOURNEY, sub_journey_id="returns")},
         ValidationError, "its own sub-journey"),
        (start, {"to": JourneyState(kind=StateKind.JOURNEY, sub_journey_id="nope")},
         NotFoundError, "Journey 'nope'"),
        (start, {"to": _chat("x"), "target_journey_id": "x"}, ValidationError, "its states"),
        (start, {"to": "nope"}, ValidationError, "state 'nope' is not in journey 'returns'"),
        ("nope", {"to": _chat("x")}, ValidationError, "state 'nope' is not in journey"),
        (done.target, {"to": _chat("More")}, ValidationError, "end state"),
        (start, {"to": _chat("x"), "canned_responses": ["nope"]}, NotFoundError, "nope"),
        (start, {"to": JourneyState(kind=StateKind.TOOL, tools=["nope:tool"])},
         ValidationError, "invalid journey: tool state .* names unknown tool 'nope:tool'"),
    ]  # fmt: skip
    for source, step, error, message in refusals:
        with pytest.raises(error, match=message):
            await add_transition(store, tools, "returns", source, **step)  # type: ignore[arg-type]
    assert await store.get(Journey, "returns") == before


async def test_add_transition_into_another_journey(store: Store, tools: ToolRegistry) -> None:
    ret = await create_journey(store, Journey(title="Return"))
    address = await create_journey(store, Journey(id="address", title="Change address"))
    _, into = await add_transition(
        store,
        tools,
        ret.id,
        ret.initial_state_id,
        to=address.initial_state_id,
        target_journey_id="address",
        condition="moved",
    )
    assert (into.target, into.target_journey_id) == (address.initial_state_id, "address")
    stored, again = await add_transition(
        store,
        tools,
        ret.id,
        ret.initial_state_id,
        to=address.initial_state_id,
        target_journey_id="address",
        condition="moved",
    )
    assert again.id == into.id and len(stored.states) == 1
    with pytest.raises(ValidationError, match="state 'nope' is not in journey 'address'"):
        await add_transition(
            store, tools, ret.id, ret.initial_state_id, to="nope", target_journey_id="address"
        )
