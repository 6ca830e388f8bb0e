"""Journeys through whole turns with the scripted double: start, advance, skip, backtrack,
pause and resume, switch, end, drop, two journeys at once, tool states, forks, relationships,
journey-scoped guidelines, and progress that survives a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import pytest
import pytest_asyncio
from pydantic import Field

import tactful
from tactful.domain import (
    Journey,
    JourneyProgress,
    RunStatus,
    Trace,
)
from tactful.engine.compose import ReplyAnswer, TemplateChoice
from tactful.engine.match import (
    JourneyCheck,
    ListedJourney,
    MatchAnswer,
    ProposedArgument,
    ProposedCall,
    answer_listed,
    listed_journeys,
)
from tactful.llm.scripted import HashingEmbedder, ScriptedCall, ScriptedGenerator

ORDER = Annotated[
    str, tactful.ToolParam(description="VM and 8 digits"), Field(pattern=r"^VM\d{8}$")
]
looked_up: list[str] = []


@tactful.tool
async def find_order(context: tactful.ToolContext, order_id: ORDER) -> tactful.ToolResult:
    """Look an order up."""
    looked_up.append(order_id)
    returnable = order_id.endswith("1")
    return tactful.ToolResult(
        data={"order_id": order_id, "returnable": returnable},
        fields={"order_id": order_id},
    )


def _order(order_id: str) -> list[ProposedCall]:
    return [
        ProposedCall(
            tool="find_order",
            arguments=[ProposedArgument(name="order_id", value=order_id, source="customer")],
        )
    ]


@dataclass
class Script:
    """What the scripted model answers this turn: guideline conditions that hold, and per
    journey title (status, text of the step to be at, tool calls)."""

    applies: set[str] = field(default_factory=set)
    journeys: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    calls: dict[str, list[ProposedCall]] = field(default_factory=dict)
    # After a tool step ran: journey title -> text of the step to go on to.
    after: dict[str, str] = field(default_factory=dict)
    composed: list[str] = field(default_factory=list)
    # Compose prompts that asked the model to choose among templates.
    chosen: list[str] = field(default_factory=list)
    listed: list[list[ListedJourney]] = field(default_factory=list)

    def match(self, call: ScriptedCall) -> MatchAnswer:
        continuing = "[tool results]" in call.prompt.user

        def journey(j: ListedJourney) -> JourneyCheck | None:
            if continuing:
                text = self.after.get(j.title)
                if text is None:
                    return None
                return JourneyCheck(
                    journey=j.number, status="following", evidence="results", step=j.step(text)
                )
            if j.title not in self.journeys:
                return None
            status, text = self.journeys[j.title]
            return JourneyCheck(
                journey=j.number,
                status=status,  # type: ignore[arg-type]
                evidence=f"scripted: {status}",
                step=j.step(text) if text else None,
                tool_calls=self.calls.get(j.title, []),
            )

        answer = answer_listed(
            call.prompt.user,
            lambda g: "scripted" if g.condition in self.applies else None,
            journeys=journey,
        )
        if not continuing:
            self.listed.append(listed_journeys(call.prompt.user))
        return answer

    def compose(self, call: ScriptedCall) -> ReplyAnswer | TemplateChoice:
        self.composed.append(call.prompt.user)
        if call.schema is TemplateChoice:
            self.chosen.append(call.prompt.user)
            return TemplateChoice(templates=[1])
        return ReplyAnswer(message=f"reply {len(self.composed)}")

    def turn(
        self,
        applies: set[str] | None = None,
        journeys: dict[str, tuple[str, str | None]] | None = None,
        calls: dict[str, list[ProposedCall]] | None = None,
        after: dict[str, str] | None = None,
    ) -> None:
        self.applies = applies or set()
        self.journeys = journeys or {}
        self.calls = calls or {}
        self.after = after or {}


RETURN = "the customer wants to return an item"
ADDRESS = "the customer wants to change a delivery address"
HOURS = "the customer asks about opening hours"


@pytest_asyncio.fixture
async def script() -> Script:
    looked_up.clear()
    return Script()


def _model(script: Script) -> ScriptedGenerator:
    return ScriptedGenerator({"match": script.match, "compose": script.compose})


@pytest_asyncio.fixture
async def server(script: Script) -> AsyncIterator[tactful.Server]:
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), generator=_model(script)
    ) as s:
        yield s


async def _shop(server: tactful.Server) -> tactful.Agent:
    """Two journeys: returning an item (with a tool state and a fork) and changing an
    address; one plain guideline for interruptions."""
    agent = await server.create_agent("Shop")
    await agent.create_guideline(HOURS, "give the opening hours: 9 to 5")
    ret = await agent.create_journey("Return an item", conditions=[RETURN])
    ask = await ret.initial_state.transition_to(chat_state="Ask for the order number")
    look = await ask.target.transition_to(
        condition="the customer gave an order number", tool_state=find_order
    )
    fork = await look.target.transition_to(fork=True)
    reason = await fork.target.transition_to(
        condition="the order can be returned", chat_state="Ask for the reason of the return"
    )
    refuse = await fork.target.transition_to(
        condition="the order cannot be returned", chat_state="Explain the 30-day return window"
    )
    confirm = await reason.target.transition_to(chat_state="Confirm the return label by email")
    await confirm.target.transition_to(end=True)
    await refuse.target.transition_to(end=True)
    address = await agent.create_journey("Change a delivery address", conditions=[ADDRESS])
    new = await address.initial_state.transition_to(chat_state="Ask for the new address")
    done = await new.target.transition_to(chat_state="Confirm the new address")
    await done.target.transition_to(end=True)
    return agent


async def _trace(server: tactful.Server, reply: tactful.Event) -> Trace:
    return await server.runtime.store.get(Trace, reply.trace_id)


async def _progress(server: tactful.Server, session_id: str) -> JourneyProgress:
    return await server.runtime.store.get(JourneyProgress, session_id)


def _steps(trace: Trace, title: str) -> list[str]:
    return [s.kind for s in trace.journeys if s.title == title]


async def test_start_then_advance_through_a_tool_state_and_a_fork(
    server: tactful.Server, script: Script
) -> None:
    agent = await _shop(server)
    session = await server.create_session(agent)

    script.turn({RETURN}, {"Return an item": ("following", "Ask for the order number")})
    reply = await server.send(session, "I want to return my headphones")
    trace = await _trace(server, reply)
    [step] = trace.journeys
    assert (step.kind, step.status_after) == ("start", "active")
    assert step.label_after == "1 (Ask for the order number)"
    assert "Ask for the order number" in script.composed[-1]
    assert reply.data["guidelines"] == [f"journey:{step.journey_id}"]

    script.turn(
        set(),
        {"Return an item": ("following", "find_order")},
        calls={"Return an item": _order("VM00000001")},
        after={"Return an item": "Ask for the reason"},
    )
    reply = await server.send(session, "It's VM00000001")
    trace = await _trace(server, reply)
    assert looked_up == ["VM00000001"]
    assert _steps(trace, "Return an item") == ["advance", "continue"]
    advance, cont = trace.journeys
    assert advance.state_before == step.state_after
    assert cont.state_before == advance.state_after
    # Through the fork to the branch the model chose with the results in view.
    assert len(cont.entered) == 2
    assert "Ask for the reason of the return" in script.composed[-1]
    assert "returnable" in script.composed[-1]
    progress = await _progress(server, session.id)
    run = progress.runs[step.journey_id]
    assert run.status is RunStatus.ACTIVE and run.current == cont.state_after


async def test_skip_ahead_when_the_customer_already_gave_what_a_step_needs(
    server: tactful.Server, script: Script
) -> None:
    agent = await _shop(server)
    session = await server.create_session(agent)
    script.turn(
        {RETURN},
        {"Return an item": ("following", "find_order")},
        calls={"Return an item": _order("VM00000002")},
        after={"Return an item": "Explain the 30-day"},
    )
    reply = await server.send(session, "Return order VM00000002 please")
    trace = await _trace(server, reply)
    start = trace.journeys[0]
    assert start.kind == "start"
    assert len(start.skipped) == 1  # "Ask for the order number" was not needed
    assert looked_up == ["VM00000002"]
    assert trace.journeys[1].kind == "continue"
    assert "Explain the 30-day return window" in script.composed[-1]
    # The other branch of the fork is neither ahead nor behind: refused, the journey stays.
    script.turn(set(), {"Return an item": ("following", "Ask for the reason")})
    trace = await _trace(server, await server.send(session, "but I want to return it"))
    [step] = trace.journeys
    assert step.kind == "stay" and "neither ahead" in step.rationale
    assert step.state_after == trace.journeys[0].state_before


async def test_an_unreachable_step_is_refused_and_the_journey_stays(
    server: tactful.Server, script: Script
) -> None:
    agent = await _shop(server)
    session = await server.create_session(agent)
    script.turn({RETURN}, {"Return an item": ("following", "Ask for the order number")})
    first = (await _trace(server, await server.send(session, "return please"))).journeys[0]
    # "Confirm the return label" lies beyond the tool state: the tool must run first.
    script.turn(set(), {"Return an item": ("following", "Confirm the return label")})
    trace = await _trace(server, await server.send(session, "just send the label"))
    [step] = trace.journeys
    assert step.kind == "advance"
    assert looked_up == []  # no order number: the tool state waits for its argument
    progress = await _progress(server, session.id)
    assert progress.runs[first.journey_id].current == step.state_after
    assert "order_id" in script.composed[-1]  # the reply asks for the missing argument
    # At a tool state that has not run, the model cannot move on: the tool runs first.
    script.turn(set(), {"Return an item": ("following", "Confirm the return label")})
    trace = await _trace(server, await server.send(session, "just send the label"))
    assert trace.journeys[0].kind == "stay"
    assert "tool step runs first" in trace.journeys[0].rationale


async def test_backtrack_when_the_customer_changes_an_earlier_answer(
    server: tactful.Server, script: Script
) -> None:
    agent = await _shop(server)
    session = await server.create_session(agent)
    script.turn(
        {RETURN},
        {"Return an item": ("following", "find_order")},
        calls={"Return an item": _order("VM00000001")},
        after={"Return an item": "Ask for the reason"},
    )
    await server.send(session, "Return VM00000001")
    script.turn(
        set(),
        {"Return an item": ("following", "find_order")},
        calls={"Return an item": _order("VM00000002")},
        after={"Return an item": "Explain the 30-day"},
    )
    trace = await _trace(server, await server.send(session, "Sorry, it was VM00000002"))
    assert _steps(trace, "Return an item") == ["backtrack", "continue"]
    assert looked_up == ["VM00000001", "VM00000002"]
    assert "Explain the 30-day return window" in script.composed[-1]


async def test_pause_on_an_interruption_then_resume(server: tactful.Server, script: Script) -> None:
    agent = await _shop(server)
    session = await server.create_session(agent)
    script.turn({RETURN}, {"Return an item": ("following", "Ask for the order number")})
    await server.send(session, "I want to return something")

    script.turn({HOURS}, {"Return an item": ("interrupted", None)})
    trace = await _trace(server, await server.send(session, "wait, when are you open?"))
    assert _steps(trace, "Return an item") == ["pause"]
    assert "give the opening hours" in script.composed[-1]
    assert "Procedures on hold" in script.composed[-1]
    assert "Ask for the order number" not in script.composed[-1].split("Procedures on hold")[0]
    run = next(iter((await _progress(server, session.id)).runs.values()))
    assert run.status is RunStatus.PAUSED

    script.turn(
        set(),
        {"Return an item": ("following", "find_order")},
        calls={"Return an item": _order("VM00000001")},
        after={"Return an item": "Ask for the reason"},
    )
    trace = await _trace(server, await server.send(session, "ok, it's VM00000001"))
    # The paused journey was still listed, marked as paused.
    assert script.listed[-1][0].status == "paused at step 1"
    first = trace.journeys[0]
    assert (first.kind, first.status_before, first.status_after) == (
        "advance",
        "paused",
        "active",
    )
    assert "resumed" in first.rationale
    assert "Ask for the reason of the return" in script.composed[-1]


async def test_switch_to_another_journey_and_two_journeys_at_once(
    server: tactful.Server, script: Script
) -> None:
    agent = await _shop(server)
    session = await server.create_session(agent)
    script.turn({RETURN}, {"Return an item": ("following", "Ask for the order number")})
    await server.send(session, "I want to return something")

    script.turn(
        {ADDRESS},
        {
            "Return an item": ("interrupted", None),
            "Change a delivery address": ("following", "Ask for the new address"),
        },
    )
    trace = await _trace(server, await server.send(session, "actually, change my address"))
    assert _steps(trace, "Return an item") == ["switch"]
    assert _steps(trace, "Change a delivery address") == ["start"]
    assert "Change a delivery address" in trace.journeys[0].rationale

    # Both at once: the customer is back on the return while giving the new address.
    script.turn(
        set(),
        {
            "Return an item": ("following", "Ask for the order number"),
            "Change a delivery address": ("following", "Confirm the new address"),
        },
    )
    reply = await server.send(session, "New address is 1 Main St; and yes, the return too")
    trace = await _trace(server, reply)
    kinds = {s.title: s.kind for s in trace.journeys}
    assert kinds == {"Return an item": "resume", "Change a delivery address": "advance"}
    assert "Ask for the order number" in script.composed[-1]
    assert "Confirm the new address" in script.composed[-1]
    assert len(reply.data["guidelines"]) == 2


async def test_end_and_drop(server: tactful.Server, script: Script) -> None:
    agent = await _shop(server)
    session = await server.create_session(agent)
    script.turn({ADDRESS}, {"Change a delivery address": ("following", "Ask for the new address")})
    await server.send(session, "change my address")
    script.turn(set(), {"Change a delivery address": ("following", "end")})
    trace = await _trace(server, await server.send(session, "that's all, thanks"))
    [step] = trace.journeys
    assert (step.kind, step.status_after) == ("end", "ended")
    run = next(iter((await _progress(server, session.id)).runs.values()))
    assert (run.status, run.ended_reason) == (RunStatus.ENDED, "completed")
    # An ended journey is listed as completed and does not restart by itself.
    script.turn({ADDRESS}, {})
    trace = await _trace(server, await server.send(session, "thanks"))
    assert trace.journeys == []
    assert any("completed earlier" in j.status for j in script.listed[-1])

    script.turn({RETURN}, {"Return an item": ("following", "Ask for the order number")})
    await server.send(session, "I want to return my kettle")
    script.turn(set(), {"Return an item": ("dropped", None)})
    trace = await _trace(server, await server.send(session, "never mind, I'll keep it"))
    assert _steps(trace, "Return an item") == ["drop"]
    runs = (await _progress(server, session.id)).runs
    assert {r.ended_reason for r in runs.values()} == {"completed", "dropped"}


async def test_a_relationship_can_hold_a_journey_back(
    server: tactful.Server, script: Script
) -> None:
    agent = await _shop(server)
    urgent = await agent.create_guideline(
        "the customer reports a safety problem", "give the safety hotline"
    )
    [journey] = [j for j in await server.entities(tactful.domain.Journey) if "Return" in j.title]
    await server.runtime.store.create(
        tactful.domain.Relationship(
            kind=tactful.domain.RelationshipKind.PRIORITY,
            source=tactful.domain.Endpoint.guideline(urgent.id),
            target=tactful.domain.Endpoint.tag(f"journey:{journey.id}"),
        )
    )
    session = await server.create_session(agent)
    script.turn(
        {RETURN, urgent.condition},
        {"Return an item": ("following", "Ask for the order number")},
    )
    reply = await server.send(session, "my charger is smoking and I want to return it")
    trace = await _trace(server, reply)
    assert [s.kind for s in trace.journeys] == ["start", "suppressed"]
    assert reply.data["guidelines"] == [urgent.id]
    # The journey did not start: nothing was saved for this session.
    assert await server.runtime.store.find(JourneyProgress, session.id) is None


async def test_journey_scoped_guidelines_are_checked_only_while_it_is_live(
    server: tactful.Server, script: Script
) -> None:
    agent = await _shop(server)
    [journey] = [j for j in await server.entities(tactful.domain.Journey) if "Return" in j.title]
    scoped = await agent.create_guideline(
        "the customer asks whether return shipping is free",
        "say return shipping is free",
        tags=[f"journey:{journey.id}"],
    )
    session = await server.create_session(agent)
    # It would apply, but its journey is not live: it is not even asked about.
    script.turn({scoped.condition})
    trace = await _trace(server, await server.send(session, "is return shipping free?"))
    assert scoped.id not in {c.guideline_id for c in trace.candidates}
    assert scoped.id not in trace.final_guideline_ids

    script.turn({RETURN}, {"Return an item": ("following", "Ask for the order")})
    await server.send(session, "I want to return my toaster")
    script.turn({scoped.condition}, {"Return an item": ("following", "Ask for the order")})
    trace = await _trace(server, await server.send(session, "is return shipping free?"))
    [candidate] = [c for c in trace.candidates if c.guideline_id == scoped.id]
    assert "journey scope" in candidate.reasons
    assert scoped.id in trace.final_guideline_ids


async def test_progress_survives_a_restart(tmp_path: Path, script: Script) -> None:
    async with tactful.Server(
        data_dir=tmp_path, embedder=HashingEmbedder(), generator=_model(script)
    ) as s:
        agent = await _shop(s)
        session = await s.create_session(agent)
        script.turn({RETURN}, {"Return an item": ("following", "Ask for the order number")})
        first = (await _trace(s, await s.send(session, "I want to return a lamp"))).journeys[0]
    async with tactful.Server(
        data_dir=tmp_path, embedder=HashingEmbedder(), generator=_model(script)
    ) as s:
        await s.register_tools([find_order])  # a new process registers its Python tools
        script.turn(
            set(),
            {"Return an item": ("following", "find_order")},
            calls={"Return an item": _order("VM00000001")},
            after={"Return an item": "Ask for the reason"},
        )
        trace = await _trace(s, await s.send(session.id, "VM00000001"))
        step = trace.journeys[0]
        assert (step.kind, step.state_before) == ("advance", first.state_after)
        assert looked_up == ["VM00000001"]


async def test_a_cancelled_turn_changes_no_journey(script: Script) -> None:
    matched = asyncio.Event()

    def match(call: ScriptedCall) -> MatchAnswer:
        matched.set()
        return script.match(call)

    # The reply takes a while (compose latency): the turn is cancelled after the match.
    model = ScriptedGenerator({"match": match, "compose": script.compose}, latency_s=0.05)
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), generator=model) as s:
        agent = await _shop(s)
        session = await s.create_session(agent)
        engine = s.runtime.engine
        script.turn({RETURN}, {"Return an item": ("following", "Ask for the order number")})
        await engine.post_customer_message(session.id, "I want to return")
        await matched.wait()
        running = engine.runner.running_here(session.id)
        assert running is not None
        task = running.task
        assert task is not None
        task.cancel()
        await engine.wait_idle(session.id)
        # The journey had started in that turn's decision, but the turn never replied.
        assert model.calls_for("match")[0].answer is not None
        assert await s.runtime.store.find(JourneyProgress, session.id) is None


async def _linked(server: tactful.Server) -> tuple[tactful.Agent, dict[str, Journey]]:
    """Journeys linked through the SDK: a transition into another journey's state (Parlant's
    issue 819) and a sub-journey state."""
    agent = await server.create_agent("Bistro")
    events = await agent.create_journey(
        "Private events", conditions=["the customer asks about private events"]
    )
    size = await events.initial_state.transition_to(chat_state="Ask for the group size")
    brochure = await size.target.transition_to(chat_state="Send the events brochure")
    await brochure.target.transition_to(end=True)

    identity = await agent.create_journey(
        "Verify identity", conditions=["the customer must prove who they are"]
    )
    birth = await identity.initial_state.transition_to(chat_state="Ask for the date of birth")
    await birth.target.transition_to(end=True)

    booking = await agent.create_journey("Book a table", conditions=["the customer wants a table"])
    date = await booking.initial_state.transition_to(chat_state="Ask for the date")
    confirm = await date.target.transition_to(
        condition="the customer gave a date", chat_state="Confirm the booking"
    )
    await confirm.target.transition_to(end=True)
    private = await date.target.transition_to(
        condition="the customer wants a private room", state=size.target
    )
    assert private.target == size.target  # a state of the other journey

    account = await agent.create_journey(
        "Open an account", conditions=["the customer wants an account"]
    )
    name = await account.initial_state.transition_to(chat_state="Ask for the name")
    sub = await name.target.transition_to(journey=identity)
    welcome = await sub.target.transition_to(chat_state="Welcome the customer")
    await welcome.target.transition_to(end=True)
    handles = {"events": events, "booking": booking, "account": account}
    return agent, {key: await h.reload() for key, h in handles.items()}


async def test_a_cross_journey_transition_continues_in_the_other_journey(
    server: tactful.Server, script: Script
) -> None:
    agent, journeys = await _linked(server)
    session = await server.create_session(agent)
    script.turn({"the customer wants a table"}, {"Book a table": ("following", "Ask for the date")})
    await server.send(session, "A table for Friday?")
    listed = next(j for j in script.listed[-1] if j.title == "Book a table")
    assert 'continue in the journey "Private events"' in listed.steps.values()

    script.turn(set(), {"Book a table": ("following", "continue in the journey")})
    trace = await _trace(server, await server.send(session, "Actually, a private room for 30"))
    assert [(s.title, s.kind) for s in trace.journeys] == [("Book a table", "handoff")]
    assert "Ask for the group size" in script.composed[-1]
    runs = (await _progress(server, session.id)).runs
    assert runs[journeys["booking"].id].ended_reason == f"continued in {journeys['events'].id}"
    assert runs[journeys["events"].id].current == journeys["events"].states[1].id

    script.turn(set(), {"Private events": ("following", "Send the events brochure")})
    trace = await _trace(server, await server.send(session, "We are 30"))
    assert [(s.title, s.kind) for s in trace.journeys] == [("Private events", "advance")]
    assert "Send the events brochure" in script.composed[-1]


async def test_a_sub_journey_runs_then_its_parent_goes_on(
    server: tactful.Server, script: Script
) -> None:
    agent, journeys = await _linked(server)
    session = await server.create_session(agent)
    script.turn(
        {"the customer wants an account"}, {"Open an account": ("following", "Ask for the name")}
    )
    await server.send(session, "I'd like to open an account")
    script.turn(set(), {"Open an account": ("following", "run the journey")})
    trace = await _trace(server, await server.send(session, "I'm Ada"))
    kinds = [(s.title, s.kind, s.status_after) for s in trace.journeys]
    assert kinds == [
        ("Open an account", "advance", "waiting"),
        ("Verify identity", "sub-journey", "active"),
    ]
    assert "Ask for the date of birth" in script.composed[-1]
    # While the sub-journey runs, the waiting parent is not listed for a decision.
    script.turn(set(), {"Verify identity": ("following", "end")})
    trace = await _trace(server, await server.send(session, "10 December 1815"))
    assert [j.title for j in script.listed[-1] if "not started" not in j.status] == [
        "Verify identity"
    ]
    kinds = [(s.title, s.kind, s.status_after) for s in trace.journeys]
    assert kinds == [
        ("Verify identity", "end", "ended"),
        ("Open an account", "return", "active"),
    ]
    assert "Welcome the customer" in script.composed[-1]
    run = (await _progress(server, session.id)).runs[journeys["account"].id]
    assert run.current == journeys["account"].states[3].id


async def test_a_state_sets_the_composition_mode_and_its_canned_responses(
    server: tactful.Server, script: Script
) -> None:
    agent = await _shop(server)
    store = server.runtime.store
    [journey] = [j for j in await server.entities(Journey) if j.title == "Return an item"]
    ask = next(s for s in journey.states if s.action == "Ask for the order number")
    exact = await server.create_canned_response("Please type your VM order number.")
    ask.composition_mode = tactful.CompositionMode.STRICT
    ask.canned_responses = [exact.id]
    await store.update(journey)
    session = await server.create_session(agent)
    script.turn({RETURN}, {"Return an item": ("following", "Ask for the order number")})
    reply = await server.send(session, "I want to return my headphones")
    assert reply.data["message"] == "Please type your VM order number."
    # Strict: the model only chose among templates; the state's template was offered.
    [offered] = script.chosen
    assert "1. Please type your VM order number." in offered
    trace = await _trace(server, reply)
    assert trace.composition.mode is tactful.CompositionMode.STRICT
    [step] = trace.journeys
    considered = {c.target: c.taken for c in step.considered}
    assert considered == {ask.id: True}


async def test_a_journey_matched_without_being_listed_starts_at_its_first_step(
    server: tactful.Server, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tactful.engine.journeys import plan as journey_plan

    monkeypatch.setattr(journey_plan, "FRESH_RANK", 0)  # no journey ranks well enough
    agent = await _shop(server)
    session = await server.create_session(agent)
    script.turn({RETURN})
    trace = await _trace(server, await server.send(session, "I want to return my headphones"))
    assert script.listed[-1] == []
    [step] = trace.journeys
    assert step.kind == "start" and step.label_after == "1 (Ask for the order number)"
    assert "Ask for the order number" in script.composed[-1]


async def test_a_guideline_can_depend_on_a_journey(server: tactful.Server, script: Script) -> None:
    agent = await _shop(server)
    [journey] = [j for j in await server.entities(Journey) if j.title == "Return an item"]
    label = await agent.create_guideline(
        "the customer asks how the parcel is shipped back", "say the label is prepaid"
    )
    await agent.depend(label, on=[journey])
    session = await server.create_session(agent)
    script.turn({label.condition})
    trace = await _trace(server, await server.send(session, "how do I ship it back?"))
    assert label.id not in trace.final_guideline_ids  # its journey is not followed
    assert any(s.rule == "dependency" and s.guideline_id == label.id for s in trace.resolution)

    script.turn({RETURN, label.condition}, {"Return an item": ("following", "Ask for the order")})
    trace = await _trace(server, await server.send(session, "I want to return it; how to ship?"))
    assert label.id in trace.final_guideline_ids
    assert f"journey:{journey.id}" in trace.final_guideline_ids
