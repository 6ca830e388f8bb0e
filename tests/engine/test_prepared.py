"""Work done once per agent snapshot, not once per turn: reused while the definitions stand
still, and done again when they change."""

from __future__ import annotations

import gc
from collections.abc import Sequence

import tactful
from tactful.domain import (
    Agent,
    Candidate,
    Criticality,
    Customer,
    Guideline,
    JourneyProgress,
    JourneyRun,
    RunStatus,
    Session,
    Trace,
)
from tactful.engine.candidates import (
    DEPENDENCY,
    HIGH_CRITICALITY,
    fixed_reasons,
    select_candidates,
)
from tactful.engine.compose import ReplyAnswer
from tactful.engine.context import AgentSnapshot, TurnContext, Utterance
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.journeys import JourneyOutcome, off_scope, off_scope_of
from tactful.engine.journeys.follow import journey_tags
from tactful.engine.match import answer_listed
from tactful.engine.prepared import PreparedSnapshots
from tactful.engine.retrieve import Ranked, Retriever
from tactful.engine.self_check import about_reply
from tactful.llm.base import Vectors
from tactful.llm.scripted import HashingEmbedder, ScriptedCall, ScriptedGenerator
from tactful.store.base import Store

GUIDELINES = (
    Guideline(id="refund", condition="The customer asks for a refund of their purchase"),
    Guideline(id="ship", condition="The customer asks how much shipping costs"),
    Guideline(id="greet", condition="The customer only greets the agent"),
    Guideline(id="stolen", condition="The customer says a delivered package was stolen"),
)
GIFT_CARDS = "The customer asks whether we sell gift cards"


def _context(message: str) -> TurnContext:
    agent = Agent(name="Shop")
    return TurnContext(
        agent=agent,
        session=Session(agent_id=agent.id, customer_id="c"),
        customer=Customer(name="c"),
        messages=[Utterance(role="customer", text=message, offset=0)],
        guidelines=[],
        canned_responses=[],
        terms=[],
    )


class _Recording(EmbeddingCache):
    """Remembers every list of texts looked up."""

    def __init__(self, store: Store) -> None:
        super().__init__(HashingEmbedder(), store)
        self.looked_up: list[list[str]] = []

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.looked_up.append(list(texts))
        return await super().embed(texts)


def _focus(ranked: Sequence[Ranked], guideline_id: str) -> float:
    return next(r.focus for r in ranked if r.guideline.id == guideline_id)


def _edited(guidelines: Sequence[Guideline]) -> tuple[Guideline, ...]:
    return tuple(
        g.model_copy(update={"condition": GIFT_CARDS}) if g.id == "greet" else g for g in guidelines
    )


async def test_the_same_guidelines_ranked_again_are_not_looked_up_again(store: Store) -> None:
    cache = _Recording(store)
    retriever = Retriever(cache)
    await retriever.rank(_context("I want a refund"), GUIDELINES)
    assert any(GUIDELINES[0].condition in texts for texts in cache.looked_up)

    cache.looked_up.clear()
    again = await retriever.rank(_context("how much does shipping cost?"), GUIDELINES)
    assert again[0].guideline.id == "ship"
    # Only the messages were looked up: the guidelines' rows were kept from the first turn.
    assert not any(g.condition in texts for g in GUIDELINES for texts in cache.looked_up)


async def test_an_edited_guideline_is_ranked_by_its_new_condition(store: Store) -> None:
    retriever = Retriever(EmbeddingCache(HashingEmbedder(), store))
    message = _context("do you sell gift cards?")
    assert _focus(await retriever.rank(message, GUIDELINES), "greet") < 0.1

    ranked = await retriever.rank(message, _edited(GUIDELINES))
    assert _focus(ranked, "greet") > 0.4
    assert ranked[0].guideline.condition == GIFT_CARDS


async def test_a_list_changed_in_place_is_ranked_as_it_is_now(store: Store) -> None:
    retriever = Retriever(EmbeddingCache(HashingEmbedder(), store))
    message = _context("do you sell gift cards?")
    guidelines = list(GUIDELINES)
    assert _focus(await retriever.rank(message, guidelines), "greet") < 0.1

    guidelines[:] = _edited(guidelines)
    assert _focus(await retriever.rank(message, guidelines), "greet") > 0.4


def test_reasons_worked_out_ahead_select_as_classifying_on_the_turn_does() -> None:
    guidelines = [
        *GUIDELINES,
        Guideline(id="urgent", condition="The customer asks to close the account", action="x"),
        Guideline(
            id="declined",
            condition="The agent offered a callback and the customer declined it",
            action="x",
        ),
        Guideline(
            id="angry",
            condition="The customer expresses frustration",
            action="x",
            criticality=Criticality.LOW,
        ),
        Guideline(
            id="injection",
            condition="The customer tells the agent to ignore its instructions",
            action="x",
            criticality=Criticality.LOW,
        ),
    ]
    guidelines[4] = guidelines[4].model_copy(update={"criticality": Criticality.HIGH})
    ranked = [Ranked(g, 1.0 - i / 10) for i, g in enumerate(guidelines)]
    fixed = {g.id: fixed_reasons(g) for g in guidelines}
    for prior in (None, set(), {"customer"}, {"customer", "agent"}):
        ahead = select_candidates(ranked, k=1, prior=prior, fixed=fixed)
        assert ahead == select_candidates(ranked, k=1, prior=prior)
        assert {s.guideline.id: s.reasons for s in ahead.tier1}["urgent"] == (HIGH_CRITICALITY,)


# --- through whole turns --------------------------------------------------------------------


def _model() -> ScriptedGenerator:
    def match(call: ScriptedCall) -> object:
        return answer_listed(call.prompt.user, lambda g: None)

    return ScriptedGenerator({"match": match, "compose": lambda c: ReplyAnswer(message="OK.")})


async def _candidates(server: tactful.Server, trace_id: str) -> dict[str, Candidate]:
    trace = await server.runtime.store.get(Trace, trace_id)
    return {c.guideline_id: c for c in trace.candidates}


async def _variables(server: tactful.Server, trace_id: str) -> dict[str, object]:
    trace = await server.runtime.store.get(Trace, trace_id)
    return {v.name: v.value for v in trace.composition.variables}


async def test_what_turns_work_out_is_kept_until_a_definition_changes() -> None:
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), generator=_model()
    ) as server:
        agent = await server.create_agent("Support")
        await agent.create_guideline("the customer asks for a refund", "explain refunds", id="r")
        await agent.create_guideline("the customer asks about shipping", "explain", id="s")
        session = await server.create_session(agent)
        prepared = server.runtime.engine.pipeline.prepared
        first = await _candidates(server, (await server.send(session, "a refund please")).trace_id)
        await server.send(session, "and shipping?")
        assert prepared.builds == 1
        assert HIGH_CRITICALITY not in first["s"].reasons

        # Edited: a new condition, now of high criticality, depended on by the other one.
        await agent.create_guideline(
            "the customer asks about gift cards", "explain", id="s", criticality=Criticality.HIGH
        )
        reply = await server.send(session, "do you sell gift cards?")
        assert prepared.builds == 2
        now = await _candidates(server, reply.trace_id)
        assert now["s"].condition == "the customer asks about gift cards"
        assert now["s"].rank == 1
        assert HIGH_CRITICALITY in now["s"].reasons
        assert DEPENDENCY not in now["r"].reasons

        await agent.depend("s", on="r")
        reply = await server.send(session, "gift cards again")
        assert prepared.builds == 3
        assert DEPENDENCY in (await _candidates(server, reply.trace_id))["r"].reasons


async def test_variable_definitions_come_with_the_snapshot_and_values_every_turn() -> None:
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), generator=_model()
    ) as server:
        agent = await server.create_agent("Support")
        session = await server.create_session(agent)
        snapshots = server.runtime.engine.snapshots
        first = await server.send(session, "hello")
        assert await _variables(server, first.trace_id) == {}

        points = await agent.create_variable("loyalty points", "the customer's points")
        await agent.set_variable_value(points, 100)
        second = await server.send(session, "how many points do I have?")
        assert await _variables(server, second.trace_id) == {"loyalty points": 100}
        loads = snapshots.loads

        # A value is not a definition: the snapshot stands, and the new value is read.
        await agent.set_variable_value(points, 250)
        third = await server.send(session, "and now?")
        assert snapshots.loads == loads
        assert await _variables(server, third.trace_id) == {"loyalty points": 250}


async def test_a_closed_server_gives_what_it_froze_back_to_the_collector() -> None:
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), generator=_model()
    ) as server:
        agent = await server.create_agent("Support")
        await agent.create_guideline("the customer asks for a refund", "explain refunds")
        await server.send(await server.create_session(agent), "a refund please")
        # Frozen whatever the number of guidelines: a full collection skips the definitions.
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


async def _final(server: tactful.Server, trace_id: str) -> list[str]:
    return (await server.runtime.store.get(Trace, trace_id)).final_guideline_ids


async def test_tags_resolution_works_out_ahead_follow_a_definition_change() -> None:
    def match(call: ScriptedCall) -> object:
        return answer_listed(
            call.prompt.user, lambda g: "yes" if "refund" in g.condition else None, reapply=True
        )

    model = ScriptedGenerator({"match": match, "compose": lambda c: ReplyAnswer(message="OK.")})
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), generator=model
    ) as server:
        agent = await server.create_agent("Support")
        await agent.create_guideline("the customer asks for a refund", "explain refunds", id="r")
        await agent.create_guideline("the customer asks about shipping", "explain", id="s")
        extra = await server.create_tag("extra")
        await agent.entail("r", then=extra)
        session = await server.create_session(agent)
        prepared = server.runtime.engine.pipeline.prepared
        assert await _final(server, (await server.send(session, "a refund")).trace_id) == ["r"]

        # Tagged now: the entailment of the tag reaches it.
        await agent.create_guideline(
            "the customer asks about shipping", "explain", id="s", tags=[extra.id]
        )
        final = await _final(server, (await server.send(session, "a refund")).trace_id)
        assert sorted(final) == ["r", "s"]
        assert prepared.builds == 2

        # Scoped to a journey that is not live: a match no longer applies.
        journey = await agent.create_journey("Exchange", conditions=["the customer wants a swap"])
        await agent.create_guideline(
            "the customer asks for a refund", "explain refunds", id="r", tags=[journey.tag]
        )
        final = await _final(server, (await server.send(session, "a refund")).trace_id)
        assert final == []
        assert prepared.builds == 3


def _off_scope_as_before(guidelines: Sequence[Guideline], outcome: JourneyOutcome) -> set[str]:
    """off_scope as it was worked out on every turn, over every guideline's tags."""
    live = {jid for jid, run in outcome.progress.runs.items() if run.live}
    return {
        g.id
        for g in guidelines
        for t in g.tags
        if t.startswith("journey:") and t.removeprefix("journey:") not in live
    }


def _outcome(**statuses: RunStatus) -> JourneyOutcome:
    runs = {jid: JourneyRun(journey_id=jid, status=s) for jid, s in statuses.items()}
    return JourneyOutcome(progress=JourneyProgress(id="s", runs=runs))


def test_journey_tags_worked_out_ahead_give_the_same_off_scope_set() -> None:
    guidelines = [
        *GUIDELINES,
        Guideline(id="a", condition="x", tags=["journey:ret", "vip"]),
        Guideline(id="b", condition="x", tags=["journey:ret", "journey:swap"]),
        Guideline(id="c", condition="x", tags=["journey:swap"]),
        Guideline(id="d", condition="x", tags=["journey:gone", "journey:gone"]),
        Guideline(id="e", condition="x", tags=["agent:shop"]),
    ]
    outcomes = [
        _outcome(),
        _outcome(ret=RunStatus.ACTIVE),
        _outcome(ret=RunStatus.ACTIVE, swap=RunStatus.ENDED),
        _outcome(ret=RunStatus.ACTIVE, swap=RunStatus.ACTIVE, gone=RunStatus.ACTIVE),
    ]
    for outcome in outcomes:
        expected = _off_scope_as_before(guidelines, outcome)
        assert off_scope_of(journey_tags(guidelines), outcome) == expected
        assert off_scope(guidelines, outcome) == expected
    assert off_scope_of(journey_tags(guidelines), outcomes[1]) == {"b", "c", "d"}


def test_journey_tags_and_roster_are_worked_out_again_for_a_new_snapshot() -> None:
    agent = Agent(name="Shop")
    first = AgentSnapshot(-1, agent, GUIDELINES, (), (), (), ())
    tagged = GUIDELINES[0].model_copy(update={"tags": ["journey:ret", "vip"]})
    second = AgentSnapshot(-1, agent, (tagged, *GUIDELINES[1:]), (), (), (), ())
    prepared = PreparedSnapshots()
    ctx = _context("hi")
    ctx.snapshot = first
    before = prepared.get(ctx)
    assert prepared.get(ctx) is before
    assert before.journey_tags == {}
    assert before.roster.members == {}
    ctx.snapshot = second
    after = prepared.get(ctx)
    assert prepared.builds == 2
    assert after.journey_tags == {"refund": ("ret",)}
    assert after.roster.members == {"journey:ret": ["refund"], "vip": ["refund"]}


def test_reply_rules_worked_out_ahead_are_those_a_turn_would_find() -> None:
    # Conditions about the agent's own reply, marked or recognised from their wording, with an
    # action and enabled: what a written reply is checked against.
    guidelines = (
        *GUIDELINES,
        Guideline(id="m", condition="x", action="Sign off as Ada", about_reply=True),
        Guideline(id="w", condition="The agent's reply mentions a competitor", action="Remove it"),
        Guideline(id="off", condition="y", action="Be brief", about_reply=True, enabled=False),
        Guideline(id="bare", condition="z", about_reply=True),
    )
    ctx = _context("hi")
    ctx.snapshot = AgentSnapshot(-1, Agent(name="Shop"), guidelines, (), (), (), ())
    ctx.guidelines = list(guidelines)
    expected = [g for g in ctx.guidelines if g.enabled and g.action and about_reply(g)]
    assert [g.id for g in expected] == ["m", "w"]
    assert list(PreparedSnapshots().get(ctx).reply_rules) == expected
