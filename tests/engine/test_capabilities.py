"""Capabilities relevant to a turn: retrieval (best rows, threshold, limit, older messages
counting less, cached rows) and their way into the match and compose prompts and the trace,
with the scripted double."""

from __future__ import annotations

import pytest
import pytest_asyncio

import tactful
from tactful.domain import Agent, Capability, Customer, Session, Trace
from tactful.engine.capabilities import (
    AGE_PENALTY,
    RelevantCapability,
    capability_rows,
    for_prompt,
    relevant_capabilities,
)
from tactful.engine.compose import ReplyAnswer
from tactful.engine.context import TurnContext, Utterance
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.match import answer_listed
from tactful.llm.scripted import HashingEmbedder, ScriptedGenerator
from tactful.store.base import Store

PHONE = Capability(
    id="phone",
    title="Lend a phone",
    description="A loan handset while yours is being repaired",
    signals=["my phone screen cracked", "my phone will not turn on"],
)
PASSWORD = Capability(
    id="password",
    title="Reset a password",
    description="Email a link that sets a new account password",
    signals=["I forgot my password", "cannot log into my account"],
)
GIFT = Capability(
    id="gift",
    title="Wrap a gift",
    description="Gift wrapping with a card for any order",
    signals=["can you wrap it as a present"],
)


def context(*customer: str, capabilities: list[Capability] | None = None) -> TurnContext:
    """A turn whose customer said ``customer`` (oldest first), an agent reply between each."""
    agent = Agent(name="Support")
    messages = []
    for i, text in enumerate(customer):
        if i:
            messages.append(Utterance(role="agent", text="Let me see.", offset=2 * i - 1))
        messages.append(Utterance(role="customer", text=text, offset=2 * i))
    return TurnContext(
        agent=agent,
        session=Session(agent_id=agent.id, customer_id="c"),
        customer=Customer(id="c", name="Ann"),
        messages=messages,
        guidelines=[],
        canned_responses=[],
        terms=[],
        capabilities=[PHONE, PASSWORD, GIFT] if capabilities is None else capabilities,
    )


@pytest_asyncio.fixture
async def cache(store: Store) -> EmbeddingCache:
    return EmbeddingCache(HashingEmbedder(), store)


async def test_the_closest_capabilities_come_best_first_above_the_threshold(
    cache: EmbeddingCache,
) -> None:
    found = await relevant_capabilities(context("I forgot my password again"), cache)
    assert [r.capability.id for r in found] == ["password"]
    assert found[0].score > 0.5
    # Below the threshold nothing is offered.
    assert await relevant_capabilities(context("what is the weather in Lyon"), cache) == []


async def test_a_signal_alone_makes_a_capability_relevant(cache: EmbeddingCache) -> None:
    # "screen cracked" is in a signal, not in the title or the description.
    [found] = await relevant_capabilities(context("the screen cracked on my phone"), cache)
    assert found.capability.id == "phone"
    title_only = PHONE.model_copy(update={"signals": []})
    ctx = context("the screen cracked on my phone", capabilities=[title_only])
    without_signals = await relevant_capabilities(ctx, cache, min_similarity=-1.0)
    assert without_signals[0].score < found.score


async def test_limit_and_threshold_are_the_callers(cache: EmbeddingCache) -> None:
    ctx = context("my phone screen cracked and I forgot my password")
    both = await relevant_capabilities(ctx, cache, min_similarity=0.2)
    assert {r.capability.id for r in both} == {"phone", "password"}
    assert [r.score for r in both] == sorted((r.score for r in both), reverse=True)
    [best] = await relevant_capabilities(ctx, cache, limit=1, min_similarity=0.2)
    assert best == both[0]
    assert await relevant_capabilities(ctx, cache, limit=0) == []


async def test_older_customer_messages_count_less(cache: EmbeddingCache) -> None:
    latest = await relevant_capabilities(context("I forgot my password"), cache)
    earlier = await relevant_capabilities(
        context("I forgot my password", "thanks", "ok"), cache, min_similarity=-1.0
    )
    by_id = {r.capability.id: r.score for r in earlier}
    assert by_id["password"] == pytest.approx(latest[0].score - 2 * AGE_PENALTY, abs=1e-5)
    # Three messages back is out of the window: "thanks" and "ok" say nothing relevant.
    gone = await relevant_capabilities(
        context("I forgot my password", "thanks", "ok", "fine"), cache
    )
    assert gone == []


async def test_nothing_to_compare_embeds_nothing(store: Store) -> None:
    embedder = HashingEmbedder()
    cache = EmbeddingCache(embedder, store)
    assert await relevant_capabilities(context("hello", capabilities=[]), cache) == []
    assert await relevant_capabilities(context(), cache) == []
    assert embedder.calls == []


async def test_rows_are_embedded_once(store: Store) -> None:
    embedder = HashingEmbedder()
    cache = EmbeddingCache(embedder, store)
    await relevant_capabilities(context("I forgot my password"), cache)
    await relevant_capabilities(context("my phone will not turn on"), cache)
    embedded = [t for call in embedder.calls for t in call]
    for row in capability_rows([PHONE, PASSWORD, GIFT]):
        assert embedded.count(row) == 1, row


def test_rows_and_prompt_lines() -> None:
    assert capability_rows([GIFT]) == [
        "Wrap a gift: Gift wrapping with a card for any order",
        "can you wrap it as a present",
    ]
    lines = for_prompt([RelevantCapability(PASSWORD, 0.9), RelevantCapability(GIFT, 0.6)])
    assert lines == (
        "- Reset a password: Email a link that sets a new account password\n"
        "- Wrap a gift: Gift wrapping with a card for any order"
    )


# -- through whole turns ---------------------------------------------------------------------

REFUND = "the customer asks for a refund"


@pytest_asyncio.fixture
async def model() -> ScriptedGenerator:
    return ScriptedGenerator(
        {
            "match": lambda call: answer_listed(
                call.prompt.user, lambda g: "yes" if g.condition == REFUND else None
            ),
            "compose": lambda call: ReplyAnswer(message="We can lend you a phone."),
        }
    )


async def _shop(server: tactful.Server) -> tuple[tactful.Agent, Capability]:
    agent = await server.create_agent("Shop", composition_mode=tactful.CompositionMode.FLUID)
    await agent.create_guideline(REFUND, "explain refunds")
    phone = await agent.create_capability(PHONE.title, PHONE.description, signals=PHONE.signals)
    await agent.create_capability(PASSWORD.title, PASSWORD.description, signals=PASSWORD.signals)
    return agent, phone


async def test_relevant_capabilities_reach_matching_composition_and_the_trace(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent, phone = await _shop(server)
    # Another agent's capability is never this agent's to offer, however close.
    other = await server.create_agent("Other")
    await other.create_capability(
        "Repair a phone screen", "Fix a cracked phone screen", signals=["my phone screen cracked"]
    )
    session = await server.create_session(agent)
    reply = await server.send(session, "my phone screen cracked, can I get a refund?")
    assert reply.data["message"] == "We can lend you a phone."
    line = f"- {PHONE.title}: {PHONE.description}"
    [match] = model.calls_for("match")
    [compose] = model.calls_for("compose")
    head = match.prompt.user.split("Conversation (latest last):")[0]
    assert f"What the agent can do:\n{line}\n" in head
    offer = "What you can do (offer these when they help; never promise what is not here or in "
    assert f"{offer}the guidelines):\n{line}" in compose.prompt.user
    for call in (match, compose):
        assert PASSWORD.title not in call.prompt.user
        assert "Repair a phone screen" not in call.prompt.user
    trace = await server.runtime.store.get(Trace, reply.trace_id)
    [offered] = trace.composition.capabilities
    assert (offered.capability_id, offered.title) == (phone.id, PHONE.title)
    assert offered.score >= 0.5
    assert "capabilities" in trace.stage_timings_ms


async def test_without_a_relevant_capability_the_prompts_have_no_such_section(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent, _ = await _shop(server)
    session = await server.create_session(agent)
    reply = await server.send(session, "I would like a refund for the blender")
    [match] = model.calls_for("match")
    [compose] = model.calls_for("compose")
    assert "What the agent can do" not in match.prompt.user
    assert "What you can do" not in compose.prompt.user
    trace = await server.runtime.store.get(Trace, reply.trace_id)
    assert trace.composition.capabilities == []


async def test_a_changed_capability_is_offered_as_changed(
    server: tactful.Server, model: ScriptedGenerator
) -> None:
    agent, phone = await _shop(server)
    session = await server.create_session(agent)
    await server.send(session, "my phone will not turn on")
    # Defined again under the same title: the same capability, described anew.
    again = await agent.create_capability(
        "lend a phone", "A loan handset for up to two weeks", signals=PHONE.signals
    )
    assert again.id == phone.id
    await server.send(session, "my phone will not turn on")
    compose = model.calls_for("compose")[-1]
    assert "- lend a phone: A loan handset for up to two weeks" in compose.prompt.user
    assert PHONE.description not in compose.prompt.user
