"""Tools that shape the turn: a result bringing guidelines and canned responses into this
turn's reply (as a retriever's do), and a tool changing its own customer's and session's
metadata, tags and labels (each change with its timeline event and in the trace)."""

from __future__ import annotations

from typing import Any

import pytest_asyncio

import tactful
from tactful.domain import Customer, EventKind, EventSource, Session, Tag, Trace
from tactful.domain.tool_updates import TOOL_UPDATE_KEY, UpdateTarget
from tactful.engine.compose import ReplyAnswer, TemplateChoice
from tactful.engine.match import GuidelineCheck, MatchAnswer, ProposedCall, listed_guidelines
from tactful.llm.scripted import ScriptedCall, ScriptedGenerator
from tactful.tools import ToolError

SOLD_OUT = "asks about toasters"
CARE = "mentions a broken kettle"
errors: list[str] = []


@tactful.tool
async def toaster_stock(context: tactful.ToolContext) -> tactful.ToolResult:
    """How many toasters are left."""
    return tactful.ToolResult(
        data={"toasters": 0},
        fields={"toasters": 0},
        canned_responses=[
            "We have {{toasters}} toasters left.",
            tactful.CannedResponse(value="Sorry, toasters are sold out.", signals=["sold out"]),
        ],
        guidelines=[
            tactful.TransientGuideline(
                condition="a product is sold out", action="offer to notify the customer"
            ),
            tactful.TransientGuideline(action="mention the restock date"),
        ],
    )


@tactful.tool
async def open_case(context: tactful.ToolContext) -> tactful.ToolResult:
    """Open a repair case: label the session, note the case on the customer."""
    new = await context.add_session_labels("repair", "kettle")
    again = await context.add_session_labels("repair")
    await context.set_session_metadata({"case": "RC-1", "priority": 2})
    await context.set_customer_metadata({"last_case": "RC-1"})
    await context.add_customer_tags("vip")
    assert context.customer_metadata["last_case"] == "RC-1"
    assert context.session is not None and "repair" in context.session.labels
    return tactful.ToolResult(data={"case": "RC-1", "new": new, "again": again})


@tactful.tool
async def greedy(context: tactful.ToolContext) -> tactful.ToolResult:
    """Tries what it may not."""
    for attempt in (
        context.set_customer_metadata({"blob": "x" * 20_000}),
        context.add_customer_tags("no-such-tag"),
        context.set_customer_metadata({"n": 3}),  # type: ignore[dict-item]
        context.add_session_labels(""),
    ):
        try:
            await attempt
        except ToolError as e:
            errors.append(str(e))
    await context.set_session_metadata({"x" * 300: 1})
    return tactful.ToolResult(data="never")


def matcher(applies: dict[str, str]) -> Any:
    """The detailed guidelines whose condition is in ``applies`` apply, calling its tool."""

    def answer(call: ScriptedCall) -> MatchAnswer:
        return MatchAnswer(
            checks=[
                GuidelineCheck(
                    guideline=g.number,
                    condition_restated=g.condition,
                    evidence="yes",
                    applies=g.condition in applies,
                    tool_calls=[ProposedCall(tool=applies[g.condition], arguments=[])]
                    if g.condition in applies
                    else [],
                )
                for g in listed_guidelines(call.prompt.user)
                if g.detailed
            ]
        )

    return answer


def compose(call: ScriptedCall) -> ReplyAnswer | TemplateChoice:
    if call.schema is TemplateChoice:
        return TemplateChoice(templates=[1])
    return ReplyAnswer(message="done")


@pytest_asyncio.fixture
async def model() -> ScriptedGenerator:
    errors.clear()
    return ScriptedGenerator({"compose": compose})


async def _trace(server: tactful.Server, reply: tactful.Event) -> Trace:
    return await server.runtime.store.get(Trace, reply.trace_id)


async def test_a_tool_result_brings_templates_and_guidelines_into_the_turn(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent = await server.create_agent("Shop", composition_mode=tactful.CompositionMode.STRICT)
    await agent.create_guideline(SOLD_OUT, "check the stock", tools=[toaster_stock])
    session = await server.create_session(agent)
    model.on("match", matcher({SOLD_OUT: "toaster_stock"}))
    reply = await server.send(session, "any toasters?")
    # Strict mode sends the tool's template, with the tool's field.
    assert reply.data["message"] == "We have 0 toasters left."
    assert reply.data["canned_responses"] == ["tool:local:toaster_stock:0"]
    prompt = model.calls_for("compose")[-1].prompt.user
    assert "Sorry, toasters are sold out." in prompt
    assert "When a product is sold out, then offer to notify the customer" in prompt
    assert "mention the restock date" in prompt
    trace = await _trace(server, reply)
    brought = [m for m in trace.matches if m.guideline_id.startswith("tool:")]
    assert [m.guideline_id for m in brought] == [
        "tool:local:toaster_stock:0",
        "tool:local:toaster_stock:1",
    ]
    assert all("the tool 'local:toaster_stock'" in m.rationale for m in brought)
    assert {m.guideline_id for m in brought} <= set(trace.final_guideline_ids)
    [run] = trace.composition.retrievers
    assert (run.name, run.owner, run.ok, run.templates, run.guidelines) == (
        "local:toaster_stock",
        "tool:local:toaster_stock",
        True,
        2,
        2,
    )
    # The tool event and the trace keep the templates' texts and the guidelines.
    [event] = await server.runtime.store.list_events(session.id, kinds=[EventKind.TOOL])
    result = event.data["tool_calls"][0]["result"]
    assert result["canned_responses"] == [
        "We have {{toasters}} toasters left.",
        "Sorry, toasters are sold out.",
    ]
    assert result["guidelines"][1] == {"condition": "", "action": "mention the restock date"}
    [record] = trace.composition.tool_calls
    assert record.result is not None and len(record.result.canned_responses) == 2


async def test_a_tool_labels_its_session_and_notes_its_customer(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    store = server.runtime.store
    await store.create(Tag(id="vip", name="vip"))
    agent = await server.create_agent("Shop")
    await agent.create_guideline(CARE, "open a repair case", tools=[open_case])
    customer = await server.create_customer("Ada", metadata={"plan": "basic"})
    session = await server.create_session(agent, customer=customer)
    model.on("match", matcher({CARE: "open_case"}))
    reply = await server.send(session, "my kettle is broken")

    stored = await store.get(Session, session.id)
    assert stored.labels == ["repair", "kettle"]
    assert stored.metadata == {"case": "RC-1", "priority": 2}
    ada = await store.get(Customer, customer.id)
    assert ada.metadata == {"plan": "basic", "last_case": "RC-1"}
    assert ada.tags == ["vip"]
    [tool_event] = await store.list_events(session.id, kinds=[EventKind.TOOL])
    data = tool_event.data["tool_calls"][0]["result"]["data"]
    assert data["new"] == ["repair", "kettle"] and data["again"] == []

    # Each change is a custom event from the system, with the turn's trace id; the repeated
    # label changed nothing and wrote nothing.
    updates = [
        e
        for e in await store.list_events(session.id, kinds=[EventKind.CUSTOM])
        if TOOL_UPDATE_KEY in e.data
    ]
    assert [e.data[TOOL_UPDATE_KEY] for e in updates] == [
        "session_labels",
        "session_metadata",
        "customer_metadata",
        "customer_tags",
    ]
    assert all(e.source is EventSource.SYSTEM and e.trace_id == reply.trace_id for e in updates)
    assert updates[0].data == {
        TOOL_UPDATE_KEY: "session_labels",
        "tool_id": "local:open_case",
        "add": ["repair", "kettle"],
    }
    assert updates[2].data["set"] == {"last_case": "RC-1"}
    trace = await _trace(server, reply)
    assert [(u.target, u.tool_id, u.event_id) for u in trace.composition.tool_updates] == [
        (UpdateTarget(e.data[TOOL_UPDATE_KEY]), "local:open_case", e.id) for e in updates
    ]


async def test_a_refused_change_raises_in_the_tool_and_writes_nothing(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    store = server.runtime.store
    agent = await server.create_agent("Shop")
    await agent.create_guideline(CARE, "open a repair case", tools=[greedy])
    customer = await server.create_customer("Bo", metadata={"plan": "basic"})
    session = await server.create_session(agent, customer=customer)
    model.on("match", matcher({CARE: "greedy"}))
    reply = await server.send(session, "my kettle is broken")
    assert reply.data["message"] == "done"  # the failed tool degraded the turn, no more
    assert "customer_metadata: the metadata would take" in errors[0]
    assert errors[1] == "customer_tags: no tag 'no-such-tag'"
    assert errors[2] == "customer_metadata: customer metadata values are strings: n"
    assert errors[3] == "session_labels: a key, tag or label has 1 to 200 characters"
    trace = await _trace(server, reply)
    [call] = trace.composition.tool_calls
    assert call.error is not None and "session_metadata: a key, tag or label" in call.error
    assert trace.composition.tool_updates == []
    assert (await store.get(Customer, customer.id)).metadata == {"plan": "basic"}
    assert (await store.get(Customer, customer.id)).tags == []
    stored = await store.get(Session, session.id)
    assert stored.metadata == {} and stored.labels == []
    customs = await store.list_events(session.id, kinds=[EventKind.CUSTOM])
    assert [e for e in customs if TOOL_UPDATE_KEY in e.data] == []


async def test_outside_a_turn_a_change_is_checked_and_not_written() -> None:
    context = tactful.ToolContext(agent_id="a", session_id="s", customer_id="c")
    assert await context.add_session_labels("x", "x", "y") == ["x", "y"]
    try:
        await context.set_session_metadata({"": 1})
    except ToolError as e:
        assert "a key, tag or label has 1 to 200 characters" in str(e)
    else:
        raise AssertionError("the change should have been refused")
