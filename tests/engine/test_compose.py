"""Composition through whole turns with the scripted double: each mode, the strictest-wins
rule, disqualification by missing field, several templates in one reply, generative fields,
the no-match reply, template retrieval, and glossary terms reaching the prompts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest_asyncio
from pydantic import BaseModel

import tactful
from tactful.domain import TemplateDropped, Trace
from tactful.engine.compose import ReplyAnswer, TemplateChoice
from tactful.engine.match import MatchAnswer, answer_listed
from tactful.llm.scripted import HashingEmbedder, ScriptedCall, ScriptedGenerator

REFUND = "the customer asks for a refund"
SHIPPING = "the customer asks how long shipping takes"

Chooser = Callable[[ScriptedCall], BaseModel]


class Model:
    """Matches every listed guideline whose condition is in ``applies``; composes with
    ``chooser`` (templates) or a fixed fluid message."""

    def __init__(self) -> None:
        self.applies: set[str] = set()
        self.chooser: Chooser = lambda call: TemplateChoice(templates=[1])
        self.generator = ScriptedGenerator({"match": self.match, "compose": self.compose})

    def match(self, call: ScriptedCall) -> MatchAnswer:
        return answer_listed(
            call.prompt.user, lambda g: "yes" if g.condition in self.applies else None
        )

    def compose(self, call: ScriptedCall) -> BaseModel:
        if call.schema is TemplateChoice:
            return self.chooser(call)
        return ReplyAnswer(message="A fluid reply.")

    def composed(self) -> list[ScriptedCall]:
        return self.generator.calls_for("compose")


@pytest_asyncio.fixture
async def model() -> Model:
    return Model()


async def _shop(
    server: tactful.Server, mode: tactful.CompositionMode, **guideline: Any
) -> tactful.Agent:
    agent = await server.create_agent("Shop", composition_mode=mode, no_match_reply="A person?")
    refund = await agent.create_canned_response("Your refund {{transaction_id}} is on its way.")
    policy = await agent.create_canned_response("Refunds take 5 business days.")
    await agent.create_guideline(
        REFUND, "explain refunds", canned_responses=[refund, policy], **guideline
    )
    ship = await agent.create_canned_response("Shipping takes 2 days.")
    await agent.create_guideline(SHIPPING, "give shipping times", canned_responses=[ship])
    return agent


async def _send(server: tactful.Server, agent: tactful.Agent, text: str) -> tuple[str, Trace]:
    session = await server.create_session(agent)
    reply = await server.send(session, text)
    return reply.data["message"], await server.runtime.store.get(Trace, reply.trace_id)


def _offered(call: ScriptedCall) -> list[str]:
    """The numbered templates a choice prompt offered, in order."""
    part = call.prompt.user.split("Approved replies (templates):\n")[1].split("\n\n")[0]
    return [line.split(". ", 1)[1] for line in part.splitlines()]


async def test_fluid_mode_writes_the_reply(server: tactful.Server, model: Model) -> None:
    agent = await _shop(server, tactful.CompositionMode.FLUID)
    model.applies = {REFUND}
    text, trace = await _send(server, agent, "refund please")
    assert text == "A fluid reply."
    assert (trace.composition.mode, trace.composition.mode_rule) == ("fluid", "agent")
    [call] = model.composed()
    assert call.schema is ReplyAnswer and "then explain refunds" in call.prompt.user


async def test_strict_mode_offers_only_qualifying_templates_and_sends_the_choice(
    server: tactful.Server, model: Model
) -> None:
    agent = await _shop(server, tactful.CompositionMode.STRICT)
    model.applies = {REFUND}
    text, trace = await _send(server, agent, "refund please")
    assert text == "Refunds take 5 business days."
    [call] = model.composed()
    # The template needing {{transaction_id}} is disqualified: never offered, listed in the trace.
    assert _offered(call) == ["Refunds take 5 business days."]
    missing = [t for t in trace.composition.templates if not t.qualified]
    assert [m.missing_fields for m in missing] == [["transaction_id"]]
    assert trace.composition.method == "canned"


async def test_strict_mode_without_a_choice_sends_the_no_match_reply(
    server: tactful.Server, model: Model
) -> None:
    agent = await _shop(server, tactful.CompositionMode.STRICT)
    model.applies = {REFUND}
    model.chooser = lambda call: TemplateChoice(templates=[], message="I will improvise!")
    text, trace = await _send(server, agent, "refund please")
    assert text == "A person?"  # strict never sends the model's own words
    assert trace.composition.method == "no-match"


async def test_canned_fluid_sends_a_template_or_writes_when_none_fits(
    server: tactful.Server, model: Model
) -> None:
    agent = await _shop(server, tactful.CompositionMode.CANNED_FLUID)
    model.applies = {REFUND}
    text, _ = await _send(server, agent, "refund please")
    assert text == "Refunds take 5 business days."
    model.chooser = lambda call: TemplateChoice(message="Written because none fits.")
    text, trace = await _send(server, agent, "refund please")
    assert text == "Written because none fits."
    assert trace.composition.method == "fluid"
    assert len(model.composed()) == 2  # one call per turn either way


async def test_composited_mode_writes_in_the_style_of_the_closest_templates(
    server: tactful.Server, model: Model
) -> None:
    agent = await _shop(server, tactful.CompositionMode.COMPOSITED)
    model.applies = {REFUND}
    text, trace = await _send(server, agent, "refund please")
    assert (text, trace.composition.method) == ("A fluid reply.", "composited")
    [call] = model.composed()
    assert "in their style and wording" in call.prompt.user
    assert "- Refunds take 5 business days." in call.prompt.user
    assert "{{transaction_id}}" not in call.prompt.user  # disqualified ones are no style guide


async def test_the_strictest_mode_wins_and_the_trace_names_the_rule(
    server: tactful.Server, model: Model
) -> None:
    agent = await _shop(
        server, tactful.CompositionMode.FLUID, composition_mode=tactful.CompositionMode.STRICT
    )
    refund = next(g for g in await agent.guidelines() if g.condition == REFUND)
    model.applies = {SHIPPING}
    _, trace = await _send(server, agent, "how long is shipping")
    assert (trace.composition.mode, trace.composition.mode_rule) == ("fluid", "agent")
    model.applies = {REFUND, SHIPPING}
    _, trace = await _send(server, agent, "refund, and how long is shipping")
    assert trace.composition.mode == "strict_canned"
    assert trace.composition.mode_rule == f"guideline {refund.id}"


async def test_several_templates_in_one_reply(server: tactful.Server, model: Model) -> None:
    agent = await _shop(server, tactful.CompositionMode.STRICT)
    model.applies = {REFUND, SHIPPING}

    def both(call: ScriptedCall) -> TemplateChoice:
        offered = _offered(call)
        picks = [offered.index(t) + 1 for t in offered if "take" in t]
        return TemplateChoice(templates=picks)

    model.chooser = both
    text, trace = await _send(server, agent, "refund, and how long is shipping")
    assert set(text.split("\n\n")) == {"Refunds take 5 business days.", "Shipping takes 2 days."}
    assert len(trace.composition.chosen) == 2
    assert len(trace.final_guideline_ids) == 2


async def test_generative_fields_are_filled_by_the_model_or_the_template_is_dropped(
    server: tactful.Server, model: Model
) -> None:
    agent = await server.create_agent("Shop", composition_mode=tactful.CompositionMode.STRICT)
    sorry = await agent.create_canned_response(
        "Sorry about the {{generative.item}}. A replacement ships today."
    )
    await agent.create_guideline(
        "the customer got a broken item", "apologise", canned_responses=[sorry]
    )
    model.applies = {"the customer got a broken item"}
    model.chooser = lambda call: TemplateChoice(templates=[1], generative_fields={"item": "kettle"})
    text, _ = await _send(server, agent, "my kettle arrived broken")
    assert text == "Sorry about the kettle. A replacement ships today."
    [call] = model.composed()
    assert "Sorry about the <item>." in _offered(call)[0]
    # Without the field the template cannot be sent: strict falls back to the no-match reply.
    model.chooser = lambda call: TemplateChoice(templates=[1])
    _, trace = await _send(server, agent, "my kettle arrived broken")
    assert trace.composition.method == "no-match"
    assert trace.composition.dropped[0].missing_fields == ["generative.item"]


async def test_offline_a_generative_template_never_qualifies() -> None:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        agent = await s.create_agent("Shop", no_match_reply="A person?")
        sorry = await agent.create_canned_response("Sorry about the {{generative.item}}.")
        await agent.create_guideline(
            "the customer got a broken item", "apologise", canned_responses=[sorry]
        )
        session = await s.create_session(agent)
        reply = await s.send(session, "the customer got a broken item")
        assert reply.data["message"] == "A person?"


async def test_free_standing_templates_are_retrieved_not_all_offered(
    server: tactful.Server, model: Model
) -> None:
    agent = await _shop(server, tactful.CompositionMode.STRICT)
    for i in range(60):
        await agent.create_canned_response(f"Fact number {i} about our warehouse robots.")
    hours = await agent.create_canned_response("Our store hours are 9 to 5 on weekdays.")
    model.applies = set()
    model.chooser = lambda call: TemplateChoice(templates=[_offered(call).index(hours.value) + 1])
    text, _ = await _send(server, agent, "what are your store hours on weekdays?")
    assert text == hours.value
    [call] = model.composed()
    assert len(_offered(call)) == 10  # the closest ten of 61 free-standing templates


async def test_relevant_glossary_terms_reach_matching_and_composition(
    server: tactful.Server, model: Model
) -> None:
    agent = await _shop(server, tactful.CompositionMode.FLUID)
    await agent.create_term("Voltmart Protect", "Our 2-year extended warranty", synonyms=["VP"])
    await agent.create_term("Kettle club", "A loyalty scheme for tea lovers")
    model.applies = {REFUND}
    _, trace = await _send(server, agent, "does VP cover refunds?")
    [match] = model.generator.calls_for("match")
    [compose] = model.composed()
    for call in (match, compose):
        assert "Voltmart Protect (also: VP): Our 2-year extended warranty" in call.prompt.user
        assert "Kettle club" not in call.prompt.user
    assert trace.composition.glossary[0].term == "Voltmart Protect"
    assert trace.composition.glossary[0].why == "named"


async def test_abusive_templates_are_never_offered_and_a_chosen_one_can_still_be_dropped(
    server: tactful.Server, model: Model
) -> None:
    agent = await server.create_agent(
        "Shop", composition_mode=tactful.CompositionMode.STRICT, no_match_reply="A person?"
    )
    dump = await agent.create_canned_response("About you: {{ customer }}")
    sorry = await agent.create_canned_response("Sorry about the {{generative.item}}.")
    await agent.create_guideline(
        "the customer got a broken item", "apologise", canned_responses=[dump, sorry]
    )
    model.applies = {"the customer got a broken item"}
    # The model fills the generative field with more than a message may hold.
    model.chooser = lambda call: TemplateChoice(
        templates=[1], generative_fields={"item": "k" * 5000}
    )
    text, trace = await _send(server, agent, "my kettle arrived broken")
    [call] = model.composed()
    assert _offered(call) == ["Sorry about the <item>.  [generative: item]"]
    reasons = {t.id: t.reason for t in trace.composition.templates}
    assert reasons == {
        dump.id: "prints the whole mapping customer; use one of its fields instead",
        sorry.id: None,
    }
    assert text == "A person?"
    assert trace.composition.dropped == [
        TemplateDropped(template=1, id=sorry.id, reason="renders more than 4000 characters")
    ]
