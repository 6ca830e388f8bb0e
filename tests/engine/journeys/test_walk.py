"""Journey walking by rules: routes the model chose, the offline rules, and the way on after a
tool state (code conditions, or the closest condition to the results)."""

from __future__ import annotations

from typing import Any

import pytest

from tactful.domain import (
    Agent,
    Customer,
    Journey,
    JourneyState,
    JourneyTransition,
    ProposedToolCall,
    Session,
    StateKind,
    ToolSpec,
    tool_id,
)
from tactful.engine.context import TurnContext, Utterance
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.hooks import BranchContext, Hooks
from tactful.engine.journeys.graph import JourneyGraph
from tactful.engine.journeys.walk import Walker
from tactful.engine.options import JOURNEY_CONDITION_THRESHOLD
from tactful.engine.tools import HIDDEN
from tactful.llm.scripted import HashingEmbedder
from tactful.store.base import Store

ORDER = "VM12345678"
FIND_ORDER = ToolSpec(
    id=tool_id("shop", "find_order"),
    service_name="shop",
    name="find_order",
    parameters={
        "type": "object",
        "properties": {"order_id": {"type": "string", "pattern": r"^VM\d{8}$"}},
    },
    required=["order_id"],
)
SPECS = {FIND_ORDER.id: FIND_ORDER}


def _graph() -> JourneyGraph:
    """start -> ask -> look (tool) -> fork -> ok -> label -> end, or fork -> no -> end, and
    from "no" on to the address journey."""
    return JourneyGraph(
        Journey(
            id="ret",
            title="Return an item",
            initial_state_id="start",
            states=[
                JourneyState(id="start"),
                JourneyState(id="ask", action="Ask for the order number"),
                JourneyState(id="look", kind=StateKind.TOOL, tools=[FIND_ORDER.id]),
                JourneyState(id="fork", kind=StateKind.FORK),
                JourneyState(id="ok", action="Ask why the item goes back"),
                JourneyState(id="label", action="Confirm the return label by email"),
                JourneyState(id="no", action="Explain the 30-day return window"),
                JourneyState(id="end", kind=StateKind.END),
            ],
            transitions=[
                JourneyTransition(id="t_start", source="start", target="ask"),
                JourneyTransition(
                    id="t_look",
                    source="ask",
                    target="look",
                    condition="the customer gave an order number",
                ),
                JourneyTransition(id="t_fork", source="look", target="fork"),
                JourneyTransition(
                    id="t_ok", source="fork", target="ok", condition="the order can be returned"
                ),
                JourneyTransition(
                    id="t_no", source="fork", target="no", condition="the order cannot be returned"
                ),
                JourneyTransition(id="t_label", source="ok", target="label"),
                JourneyTransition(id="t_done", source="label", target="end"),
                JourneyTransition(
                    id="x",
                    source="no",
                    target="a1",
                    condition="the customer wants to change the address",
                    target_journey_id="address",
                ),
                JourneyTransition(id="t_no_end", source="no", target="end"),
            ],
        )
    )


def _context(*messages: str) -> TurnContext:
    agent = Agent(name="Shop")
    return TurnContext(
        agent=agent,
        session=Session(agent_id=agent.id, customer_id="c"),
        customer=Customer(id="c", name="Ada"),
        messages=[Utterance(role="customer", text=t, offset=i) for i, t in enumerate(messages)],
        guidelines=[],
        canned_responses=[],
        terms=[],
    )


@pytest.fixture
def cache(store: Store) -> EmbeddingCache:
    return EmbeddingCache(HashingEmbedder(), store)


@pytest.fixture
def walker(cache: EmbeddingCache) -> Walker:
    return Walker(cache)


async def _similarity(cache: EmbeddingCache, a: str, b: str) -> float:
    vectors = await cache.embed([a, b])
    return float(vectors[0] @ vectors[1])


# -- towards: the route the model chose ---------------------------------------------------------


def test_towards_stops_at_a_tool_state_on_the_way(walker: Walker) -> None:
    walk = walker.towards(_graph(), "start", "label")
    assert walk.entered == ["ask", "look"]
    assert walk.skipped == ["ask"]
    assert [(c.transition_id, c.taken) for c in walk.considered] == [
        ("t_start", True),
        ("t_look", True),
    ]
    # A route that ends at the tool state reaches it.
    assert walker.towards(_graph(), "start", "look").entered == ["ask", "look"]


def test_towards_lists_the_chat_states_it_passes(walker: Walker) -> None:
    walk = walker.towards(_graph(), "look", "label")
    assert walk.entered == ["fork", "ok", "label"]
    # A fork is passed, not skipped; the target is where the journey rests.
    assert walk.skipped == ["ok"]
    assert walk.handoff is None


def test_towards_stops_at_a_sub_journey_state_on_the_way(walker: Walker) -> None:
    graph = JourneyGraph(
        Journey(
            title="Onboard",
            initial_state_id="hi",
            states=[
                JourneyState(id="hi", action="Greet"),
                JourneyState(id="survey", kind=StateKind.JOURNEY, sub_journey_id="other"),
                JourneyState(id="bye", action="Say goodbye"),
            ],
            transitions=[
                JourneyTransition(source="hi", target="survey"),
                JourneyTransition(source="survey", target="bye"),
            ],
        )
    )
    walk = walker.towards(graph, "hi", "bye")
    assert walk.entered == ["survey"]
    assert walk.skipped == []


def test_towards_an_exit_hands_off_once_its_source_is_reached(walker: Walker) -> None:
    graph = _graph()
    exit_ = graph.exits[graph.exit_number(graph.out["no"][0]) or 0]
    walk = walker.towards(graph, "look", "no", exit_=exit_)
    assert walk.entered == ["fork", "no"]
    assert walk.handoff == ("address", "a1")
    assert walk.considered[-1].transition_id == "x"
    assert walk.considered[-1].taken
    # Already there: only the handoff.
    walk = walker.towards(graph, "no", "no", exit_=exit_)
    assert (walk.entered, walk.handoff) == ([], ("address", "a1"))
    # A tool state on the way runs first: the exit is not reached this time.
    walk = walker.towards(graph, "start", "no", exit_=exit_)
    assert (walk.entered, walk.handoff) == (["ask", "look"], None)


def test_towards_an_unreachable_state_goes_nowhere(walker: Walker) -> None:
    walk = walker.towards(_graph(), "ok", "ask")
    assert (walk.entered, walk.skipped, walk.considered) == ([], [], [])


# -- forward: the offline rules from a state ----------------------------------------------------


async def test_an_answered_step_takes_its_unconditional_transition(walker: Walker) -> None:
    ctx = _context("it is too small")
    walk = await walker.forward(ctx, _graph(), "ok", fresh=False, specs=SPECS)
    # On to the next question, and no further: that one has not been answered yet.
    assert walk.entered == ["label"]
    assert walk.skipped == []
    walk = await walker.forward(ctx, _graph(), "ok", fresh=True, specs=SPECS)
    assert walk.entered == []
    # An end state has no way on: the walk stops there.
    walk = await walker.forward(ctx, _graph(), "label", fresh=False, specs=SPECS)
    assert walk.entered == ["end"]


async def test_an_unrelated_question_does_not_answer_the_step(walker: Walker) -> None:
    # "Do you sell gift cards?" at "Ask why the item goes back": a question of its own, not
    # like the step, and no argument of a tool ahead in it. The journey does not move on.
    question = "Do you sell gift cards?"
    walk = await walker.forward(_context(question), _graph(), "ok", fresh=False, specs=SPECS)
    assert walk.entered == []
    assert [(c.transition_id, c.taken, c.why) for c in walk.considered] == [
        ("t_label", False, "not taken: the step is not answered")
    ]
    assert walk.unanswered is not None
    assert walk.unanswered.startswith("the message does not answer the step: it asks a question")
    assert f"< {JOURNEY_CONDITION_THRESHOLD:.2f}" in walk.unanswered
    # The next message answers it: on to the next step.
    walk = await walker.forward(
        _context(question, "the left earcup crackles"), _graph(), "ok", fresh=False, specs=SPECS
    )
    assert walk.entered == ["label"]
    assert walk.unanswered is None


async def test_a_question_answers_the_step_when_like_it_or_filling_an_argument(
    cache: EmbeddingCache,
) -> None:
    graph = _graph()
    # Like the step's own words (the hashing embedder: shared words).
    message = "why does the item go back? it broke"
    fit = await _similarity(cache, message, "Ask why the item goes back")
    walk = await Walker(cache, threshold=fit).forward(
        _context(message), graph, "ok", fresh=False, specs=SPECS
    )
    assert walk.entered == ["label"]
    walk = await Walker(cache, threshold=fit + 0.001).forward(
        _context(message), graph, "ok", fresh=False, specs=SPECS
    )
    assert walk.entered == []
    assert walk.unanswered is not None and f"similarity {fit:.2f} <" in walk.unanswered
    # A question carrying an argument of the tool ahead answers "Ask for the order number".
    plain = JourneyGraph(
        graph.journey.model_copy(
            update={
                "transitions": [
                    t.model_copy(update={"condition": None}) if t.id == "t_look" else t
                    for t in graph.journey.transitions
                ]
            }
        )
    )
    walk = await Walker(cache, threshold=1.0).forward(
        _context(f"is {ORDER} returnable?"), plain, "ask", fresh=False, specs=SPECS
    )
    assert walk.entered == ["look"]
    walk = await Walker(cache, threshold=1.0).forward(
        _context("is it returnable?"), plain, "ask", fresh=False, specs=SPECS
    )
    assert walk.entered == []


async def test_a_step_that_leads_only_to_an_end_needs_no_answer(walker: Walker) -> None:
    walk = await walker.forward(
        _context("how long do refunds take?"), _graph(), "label", fresh=False, specs=SPECS
    )
    assert walk.entered == ["end"]


async def test_a_fresh_start_passes_a_blank_initial_state_and_stops_at_a_tool(
    walker: Walker,
) -> None:
    graph = _graph()
    walk = await walker.forward(
        _context("I want to return a lamp"), graph, "start", fresh=True, specs=SPECS
    )
    assert walk.entered == ["ask"]
    found: dict[str, list[ProposedToolCall]] = {}
    walk = await walker.forward(
        _context(f"I want to return order {ORDER}"),
        graph,
        "start",
        fresh=True,
        specs=SPECS,
        found=found,
    )
    # The order number answers "ask" already; the tool state must run before the fork.
    assert walk.entered == ["ask", "look"]
    assert walk.skipped == ["ask"]
    assert {k: [c.model_dump(mode="json") for c in v] for k, v in found.items()} == {
        "look": [
            {
                "tool": "find_order",
                "arguments": [{"name": "order_id", "value": ORDER, "source": "customer"}],
            }
        ]
    }


async def test_forward_never_rests_at_a_fork(walker: Walker) -> None:
    graph = _graph()
    walk = await walker.forward(_context("hello there"), graph, "look", fresh=False, specs=SPECS)
    assert walk.entered == []
    assert {c.transition_id for c in walk.considered} >= {"t_ok", "t_no"}
    walk = await walker.forward(
        _context("yes it can be returned"), graph, "look", fresh=False, specs=SPECS
    )
    assert walk.entered == ["fork", "ok"]


async def test_forward_hands_off_along_a_cross_journey_transition(walker: Walker) -> None:
    graph = _graph()
    walk = await walker.forward(
        _context("I want to change the address"), graph, "no", fresh=False, specs=SPECS
    )
    assert (walk.entered, walk.handoff) == ([], ("address", "a1"))
    walk = await walker.forward(_context("ok, thanks"), graph, "no", fresh=False, specs=SPECS)
    assert (walk.entered, walk.handoff) == (["end"], None)


# -- choose: which transition holds -------------------------------------------------------------


async def test_a_code_condition_decides_and_beats_similarity(cache: EmbeddingCache) -> None:
    graph, ctx = _graph(), _context("the order can be returned")
    hooks = Hooks()
    hooks.add_branch("t_no", lambda c: True)
    chosen, considered = await Walker(cache, hooks=hooks).choose(
        ctx, graph, graph.out["fork"], unconditional=False, specs=SPECS
    )
    assert chosen is not None and chosen.id == "t_no"
    assert considered[1].why == "code condition: holds"
    assert considered[1].taken and not considered[0].taken

    hooks.add_branch("t_no", lambda c: False)
    chosen, considered = await Walker(cache, hooks=hooks).choose(
        ctx, graph, graph.out["fork"], unconditional=False, specs=SPECS
    )
    assert chosen is not None and chosen.id == "t_ok"
    assert considered[1].why == "code condition: not met"


async def test_a_failing_code_condition_does_not_hold(cache: EmbeddingCache) -> None:
    graph = _graph()
    hooks = Hooks()

    def broken(ctx: BranchContext) -> bool:
        raise KeyError("find_order")

    hooks.add_branch("t_ok", broken)
    hooks.add_branch("t_no", lambda c: False)
    chosen, considered = await Walker(cache, hooks=hooks).choose(
        _context("the order can be returned"),
        graph,
        graph.out["fork"],
        unconditional=True,
        specs=SPECS,
    )
    assert chosen is None
    assert "KeyError" in (considered[0].why or "")


async def test_a_step_into_a_tool_state_is_taken_only_when_the_tool_can_run(
    walker: Walker,
) -> None:
    graph = _graph()
    # The wording of the condition does not count for a tool step ...
    chosen, considered = await walker.choose(
        _context("the customer gave an order number"),
        graph,
        graph.out["ask"],
        unconditional=True,
        specs=SPECS,
    )
    assert chosen is None
    assert not considered[0].taken
    # ... its arguments do.
    chosen, considered = await walker.choose(
        _context(f"it is {ORDER}"), graph, graph.out["ask"], unconditional=False, specs=SPECS
    )
    assert chosen is not None and chosen.id == "t_look"
    assert considered[0].why == "the tool step it leads to has every argument it needs"
    # A tool that is not known cannot run.
    chosen, _ = await walker.choose(
        _context(f"it is {ORDER}"), graph, graph.out["ask"], unconditional=False, specs={}
    )
    assert chosen is None


async def test_a_condition_holds_from_the_threshold_on(cache: EmbeddingCache) -> None:
    graph, message = _graph(), "yes it can be returned"
    fit = await _similarity(cache, message, "the order can be returned")
    other = await _similarity(cache, message, "the order cannot be returned")
    assert JOURNEY_CONDITION_THRESHOLD <= other < fit < 1.0
    chosen, considered = await Walker(cache, threshold=fit).choose(
        _context(message), graph, graph.out["fork"], unconditional=False, specs=SPECS
    )
    assert chosen is not None and chosen.id == "t_ok"
    assert considered[0].why == f"similarity {fit:.3f} >= {fit:.2f}"
    assert considered[1].why == f"similarity {other:.3f}"
    chosen, _ = await Walker(cache, threshold=fit + 0.001).choose(
        _context(message), graph, graph.out["fork"], unconditional=False, specs=SPECS
    )
    assert chosen is None


async def test_an_unconditional_transition_is_taken_only_when_allowed(walker: Walker) -> None:
    graph, ctx = _graph(), _context("it broke")
    chosen, _ = await walker.choose(ctx, graph, graph.out["ok"], unconditional=False, specs=SPECS)
    assert chosen is None
    chosen, considered = await walker.choose(
        ctx, graph, graph.out["ok"], unconditional=True, specs=SPECS
    )
    assert chosen is not None and chosen.id == "t_label"
    assert considered[0].why == "unconditional"


# -- tool_ready: the customer's answer as the one missing argument ------------------------------


def _note_graph() -> JourneyGraph:
    return JourneyGraph(
        Journey(
            title="Complaint",
            initial_state_id="ask",
            states=[
                JourneyState(id="ask", action="Ask what went wrong"),
                JourneyState(id="note", kind=StateKind.TOOL, tools=["crm:note"]),
            ],
            transitions=[
                JourneyTransition(
                    id="t", source="ask", target="note", condition="the customer explained"
                )
            ],
        )
    )


def _note(properties: dict[str, Any], required: list[str]) -> dict[str, ToolSpec]:
    spec = ToolSpec(
        id="crm:note",
        service_name="crm",
        name="note",
        parameters={"type": "object", "properties": properties},
        required=required,
    )
    return {spec.id: spec}


ANSWER = "the lamp flickers"


def _ready(specs: dict[str, ToolSpec], answered: bool) -> list[dict[str, Any]] | None:
    graph = _note_graph()
    calls = Walker.tool_ready(_context(ANSWER), graph, graph.out["ask"][0], specs, answered)
    return None if calls is None else [c.model_dump(mode="json") for c in calls]


def test_the_answer_fills_the_one_missing_free_text_argument() -> None:
    specs = _note({"text": {"type": "string"}}, ["text"])
    assert _ready(specs, answered=True) == [
        {"tool": "note", "arguments": [{"name": "text", "value": ANSWER, "source": "customer"}]}
    ]
    assert _ready(specs, answered=False) is None


def test_hidden_arguments_come_from_the_context_and_are_not_missing() -> None:
    specs = _note(
        {"customer_id": {"type": "string", HIDDEN: True}, "text": {"type": "string"}},
        ["customer_id", "text"],
    )
    calls = _ready(specs, answered=True)
    assert calls is not None
    assert [a["name"] for a in calls[0]["arguments"]] == ["text"]


@pytest.mark.parametrize(
    ("properties", "required"),
    [
        ({"text": {"type": "string", "pattern": r"^\d+$"}}, ["text"]),
        ({"text": {"type": "string", "enum": ["broken", "late"]}}, ["text"]),
        ({"text": {"type": "string", "maxLength": len(ANSWER) - 1}}, ["text"]),
        ({"text": {"type": "string", "minLength": len(ANSWER) + 1}}, ["text"]),
        ({"count": {"type": "integer"}}, ["count"]),
        ({"text": {"type": "string"}, "topic": {"type": "string"}}, ["text", "topic"]),
    ],
    ids=["pattern", "enum", "too-long", "too-short", "not-a-string", "two-missing"],
)
def test_the_answer_does_not_fill_an_argument_it_may_not_fit(
    properties: dict[str, Any], required: list[str]
) -> None:
    assert _ready(_note(properties, required), answered=True) is None


def test_the_answer_may_be_exactly_as_long_as_allowed() -> None:
    specs = _note({"text": {"type": "string", "maxLength": len(ANSWER)}}, ["text"])
    assert _ready(specs, answered=True) is not None


# -- after_tool: the way on from a tool state that ran ------------------------------------------


async def test_after_a_tool_the_closest_condition_wins_through_the_fork(
    cache: EmbeddingCache, walker: Walker
) -> None:
    data = {"status": "cannot", "checked_by": "warehouse"}
    results = [(FIND_ORDER.id, data)]
    ctx = _context(ORDER)
    evidence = f"{FIND_ORDER.id}: {data}\n{ORDER}"
    fit = await _similarity(cache, evidence, "the order cannot be returned")
    other = await _similarity(cache, evidence, "the order can be returned")
    # Below the threshold, and still taken: after a tool the way on is forced.
    assert other < fit < JOURNEY_CONDITION_THRESHOLD

    walk = await walker.after_tool(ctx, _graph(), "look", results, SPECS)
    # Through the fork, and no further than the first state that is not one.
    assert walk.entered == ["fork", "no"]
    taken = [c for c in walk.considered if c.taken]
    assert [c.transition_id for c in taken] == ["t_fork", "t_no"]
    assert (taken[1].why or "").endswith(": the closest condition")


async def test_after_a_tool_code_conditions_read_the_results(cache: EmbeddingCache) -> None:
    hooks = Hooks()
    hooks.add_branch("t_ok", lambda c: bool(c.results["find_order"]["returnable"]))
    hooks.add_branch("t_no", lambda c: not c.results[FIND_ORDER.id]["returnable"])
    walker = Walker(cache, hooks=hooks)
    ctx = _context("the order cannot be returned")
    yes = await walker.after_tool(
        ctx, _graph(), "look", [(FIND_ORDER.id, {"returnable": True})], SPECS
    )
    assert yes.entered == ["fork", "ok"]
    no = await walker.after_tool(
        ctx, _graph(), "look", [(FIND_ORDER.id, {"returnable": False})], SPECS
    )
    assert no.entered == ["fork", "no"]


def test_a_required_argument_missing_from_the_schema_is_not_ready() -> None:
    # A tool service may send a malformed schema: "required" names an unknown parameter.
    specs = _note({"text": {"type": "string"}}, ["text", "ghost"])
    assert _ready(specs, answered=True) is None
