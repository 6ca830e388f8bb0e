"""The SDK's journeys: built step by step, validated at once, idempotent across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

import tactful
from tactful.domain import Agent as AgentModel
from tactful.domain import Endpoint, Guideline, Journey, StateKind
from tactful.errors import NotFoundError, ValidationError
from tactful.journey import JourneyHandle, StateHandle
from tactful.llm.scripted import HashingEmbedder


@tactful.tool
async def find_order(context: tactful.ToolContext, order_id: str) -> dict[str, object]:
    """Look an order up."""
    return {"order_id": order_id, "status": "delivered"}


async def _define(server: tactful.Server) -> tuple[str, str, str]:
    agent = await server.create_agent("Shop")
    journey = await agent.create_journey(
        title="Return an item", conditions=["the customer wants to return an item"]
    )
    t1 = await journey.initial_state.transition_to(chat_state="Ask for the order ID")
    t2 = await t1.target.transition_to(
        condition="the customer gave an order ID", tool_state=find_order
    )
    await t2.target.transition_to(end=True)
    return journey.id, t1.id, t2.target.id


async def test_the_issue_example_is_persisted_and_idempotent(tmp_path: Path) -> None:
    async with tactful.Server(data_dir=tmp_path, embedder=HashingEmbedder(), offline=True) as s:
        first = await _define(s)
    async with tactful.Server(data_dir=tmp_path, embedder=HashingEmbedder(), offline=True) as s:
        assert await _define(s) == first
        [journey] = await s.entities(Journey)
        [observation] = await s.entities(Guideline)
    assert journey.id == first[0]
    assert observation.condition == "the customer wants to return an item"
    assert observation.action is None
    assert journey.conditions == [observation.id]
    assert [st.kind for st in journey.states] == [
        StateKind.CHAT,
        StateKind.CHAT,
        StateKind.TOOL,
        StateKind.END,
    ]
    assert journey.states[1].action == "Ask for the order ID"
    assert journey.states[2].tools == [find_order.tool_id]
    assert [(t.condition) for t in journey.transitions] == [
        None,
        "the customer gave an order ID",
        None,
    ]
    assert journey.transitions[1].target == first[2]


async def test_invalid_steps_are_refused_at_once() -> None:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        agent = await s.create_agent("Shop")
        journey = await agent.create_journey(title="Return")
        with pytest.raises(ValidationError, match="unknown tool 'nope:tool'"):
            await journey.initial_state.transition_to(tool_state="nope:tool")
        done = await journey.initial_state.transition_to(end=True, condition="all done")
        with pytest.raises(ValidationError, match="end state"):
            await done.target.transition_to(chat_state="More")
        with pytest.raises(ValidationError, match="exactly one"):
            await journey.initial_state.transition_to(chat_state="a", fork=True)
        # A fork under construction is fine; going back to an existing state too.
        fork = await journey.initial_state.transition_to(fork=True)
        loop = await fork.target.transition_to(state=journey.initial_state, condition="again")
        assert loop.target == journey.initial_state
        stored = (await s.entities(Journey))[0]
        assert len(stored.states) == 3 and len(stored.transitions) == 3


async def test_condition_observations_carry_the_journey_tags(tmp_path: Path) -> None:
    async def define(server: tactful.Server) -> tuple[str, str, str]:
        agent = await server.create_agent("Shop")
        vip = await server.create_tag("vip")
        plain = await agent.create_observation("wants a return")
        ret = await agent.create_journey("Return", conditions=["wants a return"], tags=[vip.id])
        swap = await agent.create_journey("Swap", conditions=["wants a return"], tags=[vip.id])
        anyone = await agent.create_journey("Return for anyone", conditions=["wants a return"])
        assert ret.model.tags == [agent.tag, vip.id]
        # Same condition and tags: one observation. The agent-wide journey starts on the
        # agent-wide observation, which keeps its tags.
        assert swap.model.conditions == ret.model.conditions != [plain.id]
        assert anyone.model.conditions == [plain.id]
        return ret.model.conditions[0], plain.id, vip.id

    async with tactful.Server(data_dir=tmp_path, embedder=HashingEmbedder(), offline=True) as s:
        first = await define(s)
    async with tactful.Server(data_dir=tmp_path, embedder=HashingEmbedder(), offline=True) as s:
        assert await define(s) == first
        [agent] = await s.entities(AgentModel)
        observations = {g.id: g.tags for g in await s.entities(Guideline)}
    for_vips, plain, vip = first
    assert observations == {for_vips: [f"agent:{agent.id}", vip], plain: [f"agent:{agent.id}"]}


async def _two_journeys(
    server: tactful.Server,
) -> tuple[tactful.Agent, JourneyHandle, JourneyHandle]:
    agent = await server.create_agent("Shop")
    ret = await agent.create_journey("Return an item", conditions=["wants a return"])
    address = await agent.create_journey("Change delivery address", conditions=["moved"])
    ask = await address.initial_state.transition_to(chat_state="Ask for the new address")
    await ask.target.transition_to(end=True)
    return agent, ret, address


async def test_a_transition_may_lead_into_another_journey(tmp_path: Path) -> None:
    async def define(server: tactful.Server) -> tuple[str, str]:
        _, ret, address = await _two_journeys(server)
        ask = await ret.initial_state.transition_to(chat_state="Ask for the order ID")
        [into] = [t for t in address.model.transitions if t.source == address.initial_state.id]
        moved = await ask.target.transition_to(
            state=StateHandle(address, into.target),
            condition="the customer wants to change the address instead",
        )
        assert moved.target == StateHandle(address, into.target)
        assert moved.target.model.action == "Ask for the new address"
        again = await ask.target.transition_to(
            state=moved.target, condition="the customer wants to change the address instead"
        )
        assert again.id == moved.id and again.target == moved.target
        return moved.id, into.target

    async with tactful.Server(data_dir=tmp_path, embedder=HashingEmbedder(), offline=True) as s:
        first = await define(s)
    async with tactful.Server(data_dir=tmp_path, embedder=HashingEmbedder(), offline=True) as s:
        assert await define(s) == first
        ret, address = await s.entities(Journey)
    [cross] = [t for t in ret.transitions if t.target_journey_id]
    assert (cross.id, cross.target, cross.target_journey_id) == (*first, address.id)
    assert len(ret.states) == 2  # no state of its own for the other journey's


async def test_a_transition_into_another_journey_needs_one_of_its_states() -> None:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        _, ret, address = await _two_journeys(s)
        with pytest.raises(ValidationError, match=f"state 'nope' is not in journey '{address.id}'"):
            await ret.initial_state.transition_to(state=StateHandle(address, "nope"))
        with pytest.raises(ValidationError, match="state= takes a StateHandle"):
            await ret.initial_state.transition_to(state=address.initial_state.id)  # type: ignore[arg-type]
        assert (await ret.reload()).transitions == []


async def test_a_state_may_run_another_journey_as_a_sub_journey() -> None:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        _, ret, address = await _two_journeys(s)
        sub = await ret.initial_state.transition_to(journey=address, condition="moved lately")
        assert sub.target.model.kind is StateKind.JOURNEY
        assert sub.target.model.sub_journey_id == address.id
        # Idempotent, and a Journey model works as well as its handle.
        again = await ret.initial_state.transition_to(
            journey=address.model, condition="moved lately"
        )
        assert again.id == sub.id
        # The journey goes on from that state once the sub-journey ends.
        after = await sub.target.transition_to(chat_state="Ask for the order ID")
        await after.target.transition_to(end=True)
        stored = await ret.reload()
        assert len(stored.states) == 4 and len(stored.transitions) == 3
        with pytest.raises(ValidationError, match="cannot be its own sub-journey"):
            await ret.initial_state.transition_to(journey=ret)
        with pytest.raises(NotFoundError):
            await ret.initial_state.transition_to(journey=Journey(title="Never stored"))


async def test_states_prefer_canned_responses_and_a_composition_mode() -> None:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        agent, ret, _ = await _two_journeys(s)
        ask = await ret.initial_state.transition_to(
            chat_state="Ask for the order ID",
            canned_responses=["What is your order number?"],
            composition_mode=tactful.CompositionMode.STRICT,
        )
        [canned] = await s.entities(tactful.CannedResponse)
        assert canned.value == "What is your order number?"
        assert canned.tags == [agent.tag, ret.tag]
        assert ask.target.model.canned_responses == [canned.id]
        assert ask.target.model.composition_mode is tactful.CompositionMode.STRICT

        # Same step without a style: the same transition, its style kept.
        same = await ret.initial_state.transition_to(chat_state="Ask for the order ID")
        assert same.id == ask.id
        assert same.target.model.canned_responses == [canned.id]
        # Given again, the style is replaced.
        other = await agent.create_canned_response("Your order number, please.")
        restyled = await ret.initial_state.transition_to(
            chat_state="Ask for the order ID",
            canned_responses=[other],
            composition_mode=tactful.CompositionMode.FLUID,
        )
        assert restyled.id == ask.id
        state = restyled.target.model
        assert state.canned_responses == [other.id]
        assert state.composition_mode is tactful.CompositionMode.FLUID
        assert len((await ret.reload()).states) == 2

        with pytest.raises(ValidationError, match="apply to a chat or tool state"):
            await ret.initial_state.transition_to(end=True, canned_responses=["Bye"])
        with pytest.raises(NotFoundError):
            await ret.initial_state.transition_to(
                chat_state="Say hi", canned_responses=[tactful.CannedResponse(value="Hi")]
            )


async def test_journey_scoped_guidelines_and_canned_responses() -> None:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        agent = await s.create_agent("Shop")
        journey = await agent.create_journey(
            "Return an item", composition_mode=tactful.CompositionMode.CANNED_FLUID
        )
        assert journey.model.composition_mode is tactful.CompositionMode.CANNED_FLUID
        assert journey.tag == f"journey:{journey.id}"
        scoped = await journey.create_guideline("the item is damaged", "apologise", priority=2)
        assert scoped.tags == [agent.tag, journey.tag] and scoped.priority == 2
        assert (await journey.create_guideline("the item is damaged", "apologise")).id == scoped.id
        # The same rule for the whole agent is another guideline.
        general = await agent.create_guideline("the item is damaged", "apologise")
        assert general.id != scoped.id and general.tags == [agent.tag]
        observation = await journey.create_observation("the receipt is lost")
        assert observation.action is None and observation.tags == [agent.tag, journey.tag]
        canned = await journey.create_canned_response("Sorry about that!", signals=["sorry"])
        assert canned.tags == [agent.tag, journey.tag] and canned.signals == ["sorry"]
        everywhere = await agent.create_canned_response("Sorry about that!")
        assert everywhere.id != canned.id
        assert len(await s.entities(Guideline)) == 3


async def test_relationships_accept_journeys() -> None:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        agent, ret, address = await _two_journeys(s)
        hours = await agent.create_guideline("asks for the opening hours", "say 9 to 5")
        first = await agent.prioritize(ret, over=hours)
        assert first.source == Endpoint.tag(ret.tag)
        assert first.target == Endpoint.guideline(hours.id)
        assert (await agent.prioritize(ret, over=hours)).id == first.id
        excluded = await agent.exclude(ret.model, address)
        assert (excluded.source, excluded.target) == (
            Endpoint.tag(ret.tag),
            Endpoint.tag(address.tag),
        )
        [depends] = await agent.depend(hours, on=[address])
        assert depends.target == Endpoint.tag(address.tag)
        assert {r.id for r in await agent.relationships()} == {first.id, excluded.id, depends.id}
        with pytest.raises(NotFoundError):
            await agent.entail(Journey(title="Never stored"), hours)


async def test_the_handles_are_public() -> None:
    assert {"JourneyHandle", "StateHandle", "TransitionHandle"} <= set(tactful.__all__)
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        journey = await (await s.create_agent("Shop")).create_journey("Return an item")
        step = await journey.initial_state.transition_to(chat_state="Ask for the order ID")
    assert isinstance(journey, tactful.JourneyHandle)
    assert isinstance(step, tactful.TransitionHandle)
    assert isinstance(step.target, tactful.StateHandle)
