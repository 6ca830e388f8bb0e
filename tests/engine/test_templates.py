"""The templates a turn offers: the active guidelines' own first, retrievers' next, then the
closest free-standing ones; a template whose field is missing is disqualified with the reason,
and tool results' fields make templates sendable."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

import tactful
from tactful.domain import Agent, CannedResponse, Customer, Guideline, MatchVerdict, Session
from tactful.domain.customers import GUEST_CUSTOMER_ID
from tactful.engine.canned import TemplateLimits
from tactful.engine.context import TurnContext, Utterance
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.match import Match
from tactful.engine.retrieve import Ranked
from tactful.engine.templates import TemplateOffer, turn_fields
from tactful.engine.tools import ToolFindings
from tactful.llm.scripted import HashingEmbedder

REFUND = CannedResponse(id="refund", value="Your refund {{transaction_id}} is on its way.")
POLICY = CannedResponse(id="policy", value="Refunds take 5 business days.")
HOURS = CannedResponse(id="hours", value="We are open from 9 to 5.")
PARCEL = CannedResponse(id="parcel", value="Your parcel ships tomorrow.")


@pytest_asyncio.fixture
async def offer() -> AsyncIterator[TemplateOffer]:
    async with tactful.Server(transient=True, embedder=HashingEmbedder()) as server:
        cache = EmbeddingCache(HashingEmbedder(), server.runtime.store)
        yield TemplateOffer(cache, TemplateLimits())


def _ctx(customer: Customer, guideline: Guideline) -> TurnContext:
    agent = Agent(id="a1", name="Shop")
    return TurnContext(
        agent=agent,
        session=Session(id="s1", agent_id=agent.id, customer_id=customer.id),
        customer=customer,
        messages=[Utterance(role="customer", text="when are you open?", offset=0)],
        guidelines=[guideline],
        canned_responses=[REFUND, POLICY, HOURS, PARCEL],
        terms=[],
    )


def _active(guideline: Guideline) -> list[Match]:
    verdict = MatchVerdict(
        guideline_id=guideline.id,
        condition=guideline.condition,
        action=guideline.action,
        applies=True,
        score=1.0,
        rationale="test",
        method="model",
    )
    return [Match(Ranked(guideline, 1.0, 1.0), verdict)]


async def test_missing_fields_disqualify_and_tool_results_qualify(offer: TemplateOffer) -> None:
    refunds = Guideline(
        id="g1", condition="refund", action="explain", canned_responses=["refund", "policy"]
    )
    ctx = _ctx(Customer(id="c1", name="Ada"), refunds)

    found = await offer.candidates(ctx, _active(refunds), None, retrieve=0)
    by_id = {c.response.id: c for c in found}
    assert [c.response.id for c in found] == ["refund", "policy"]
    assert by_id["refund"].text is None and by_id["refund"].missing == ["transaction_id"]
    assert by_id["policy"].text == "Refunds take 5 business days."

    tools = ToolFindings()
    tools.fields["transaction_id"] = "T-42"
    again = await offer.candidates(ctx, _active(refunds), tools, retrieve=0)
    assert again[0].text == "Your refund T-42 is on its way."


async def test_retrievers_templates_then_the_closest_free_standing(offer: TemplateOffer) -> None:
    refunds = Guideline(id="g1", condition="refund", action="explain", canned_responses=["policy"])
    ctx = _ctx(Customer(id="c1", name="Ada"), refunds)
    given = CannedResponse(id="retriever:faq:0", value="See our FAQ.")

    found = await offer.candidates(
        ctx, _active(refunds), None, retrieve=1, query="when are you open", extra=[given]
    )
    # Attached templates never come back as free-standing ones; one free-standing slot.
    assert [c.response.id for c in found] == ["policy", "retriever:faq:0", "hours"]
    assert [c.guideline_id for c in found] == ["g1", None, None]


def test_a_guest_has_no_name_to_greet_by() -> None:
    named = turn_fields(_ctx(Customer(id="c1", name="Ada"), Guideline(id="g", condition="x")))
    guest = turn_fields(
        _ctx(Customer(id=GUEST_CUSTOMER_ID, name="Guest"), Guideline(id="g", condition="x"))
    )
    assert named["customer_name"] == "Ada"
    assert "customer_name" not in guest and "name" not in guest["customer"]
