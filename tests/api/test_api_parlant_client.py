"""Compatibility proof: Parlant's official Python client (3.3.1) against a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from parlant.client import AsyncParlantClient
from parlant.client.core.api_error import ApiError
from parlant.client.types import (
    Agent,
    CannedResponse,
    CannedResponseField,
    Capability,
    CapabilityTagUpdateParams,
    ConsumptionOffsetsUpdateParams,
    Customer,
    Event,
    Guideline,
    GuidelineLabelsUpdateParams,
    GuidelineWithRelationshipsAndToolAssociations,
    JourneyLabelsUpdateParams,
    PaginatedCustomers,
    Session,
    SessionLabelsUpdateParams,
    SessionListing,
    SessionMetadataUpdateParams,
    Tag,
    Term,
)

import tactful
from tactful.definitions import services
from tactful.runtime import Runtime


@pytest_asyncio.fixture
async def parlant(server_url: str) -> AsyncIterator[AsyncParlantClient]:
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as http:
        yield AsyncParlantClient(base_url=server_url, httpx_client=http)


async def test_the_official_client_drives_a_conversation(
    parlant: AsyncParlantClient, runtime: Runtime
) -> None:
    tag = await parlant.tags.create(name="billing")
    assert isinstance(tag, Tag)
    agent = await parlant.agents.create(
        name="Support",
        description="Answers billing questions",
        max_engine_iterations=3,
        composition_mode="strict_canned",
        message_output_mode="block",
        tags=[tag.id],
    )
    assert isinstance(agent, Agent)
    assert agent.composition_mode == "strict_canned"
    assert [a.id for a in await parlant.agents.list()] == [agent.id]
    assert (await parlant.agents.retrieve(agent.id)).name == "Support"
    agent = await parlant.agents.update(agent.id, description="Billing help")
    assert agent.description == "Billing help"

    customer = await parlant.customers.create(name="Ada", metadata={"tier": "gold"}, tags=[tag.id])
    assert isinstance(customer, Customer)
    listed = await parlant.customers.list()
    assert [c.id for c in listed] == [customer.id]  # type: ignore[union-attr]
    page = await parlant.customers.list(limit=10)
    assert isinstance(page, PaginatedCustomers)
    assert page.total_count == 1
    customer = await parlant.customers.update(customer.id, name="Ada Lovelace")
    assert customer.name == "Ada Lovelace"

    canned = await parlant.canned_responses.create(
        value="Refunds take five business days, {{customer_name}}.",
        fields=[
            CannedResponseField(name="customer_name", description="Their name", examples=["Ada"])
        ],
        tags=[f"agent:{agent.id}"],
        signals=["refund"],
    )
    assert isinstance(canned, CannedResponse)
    assert [c.id for c in await parlant.canned_responses.list()] == [canned.id]

    guideline = await parlant.guidelines.create(
        condition="the customer asks about a refund for their order",
        action="explain how long refunds take",
        criticality="high",
        tags=[f"agent:{agent.id}"],
        metadata={"owner": "billing"},
        priority=1,
    )
    assert isinstance(guideline, Guideline)
    # Attach the canned response through our extension field (plain HTTP).
    http = parlant._client_wrapper.httpx_client.httpx_client
    attached = await http.patch(
        f"/guidelines/{guideline.id}", json={"canned_responses": {"add": [canned.id]}}
    )
    assert attached.status_code == 200
    full = await parlant.guidelines.retrieve(guideline.id)
    assert isinstance(full, GuidelineWithRelationshipsAndToolAssociations)
    assert full.guideline.id == guideline.id
    assert full.relationships == [] and full.tool_associations == []
    updated = await parlant.guidelines.update(guideline.id, enabled=True, priority=2)
    assert updated.guideline.priority == 2
    assert [g.id for g in await parlant.guidelines.list()] == [guideline.id]

    term = await parlant.glossary.create_term(
        name="Refund", description="Money returned to the customer", synonyms=["reimbursement"]
    )
    assert isinstance(term, Term)
    assert [t.id for t in await parlant.glossary.list_terms()] == [term.id]

    session = await parlant.sessions.create(
        agent_id=agent.id, customer_id=customer.id, title="Refund", allow_greeting=False
    )
    assert isinstance(session, Session)
    guest_session = await parlant.sessions.create(agent_id=agent.id)
    assert guest_session.customer_id == "guest"
    listing = await parlant.sessions.list(agent_id=agent.id, limit=1)
    assert isinstance(listing, SessionListing)
    assert listing.total_count == 2 and listing.has_more
    session = await parlant.sessions.update(
        session.id,
        title="Refund question",
        consumption_offsets=ConsumptionOffsetsUpdateParams(client=0),
    )
    assert session.title == "Refund question"

    event = await parlant.sessions.create_event(
        session.id,
        kind="message",
        source="customer",
        message="I want to ask about a refund for my order",
    )
    assert isinstance(event, Event)
    assert event.offset == 0

    replies = await parlant.sessions.list_events(
        session.id, min_offset=1, kinds="message", source="ai_agent", wait_for_data=10
    )
    assert len(replies) == 1
    assert replies[0].data["message"] == "Refunds take five business days, Ada Lovelace."  # type: ignore[index]
    everything = await parlant.sessions.list_events(session.id, wait_for_data=0)
    assert all(isinstance(e, Event) for e in everything)
    assert [e.offset for e in everything][:1] == [0]
    read = await parlant.sessions.read_event(session.id, event.id)
    assert read.id == event.id
    traced = await parlant.sessions.list_events(
        session.id, trace_id=replies[0].trace_id, wait_for_data=0
    )
    assert replies[0].id in {e.id for e in traced}

    await runtime.engine.wait_idle()
    await parlant.sessions.delete_events(session.id, min_offset=1)
    assert [e.offset for e in await parlant.sessions.list_events(session.id, wait_for_data=0)] == [
        0
    ]
    await parlant.sessions.delete(guest_session.id)
    await parlant.glossary.delete_term(term.id)
    await parlant.canned_responses.delete(canned.id)
    await parlant.guidelines.delete(guideline.id)
    await parlant.customers.delete(customer.id)
    await parlant.agents.delete(agent.id)
    await parlant.tags.delete(tag.id)


async def test_the_official_client_manages_capabilities(
    parlant: AsyncParlantClient, runtime: Runtime
) -> None:
    agent = await parlant.agents.create(name="Support")
    tag = await parlant.tags.create(name="phones")
    capability = await parlant.capabilities.create(
        title="Replace a broken phone",
        description="Send a replacement phone while the broken one is repaired",
        signals=["my phone broke", "I need a phone while mine is repaired"],
        tags=[f"agent:{agent.id}"],
    )
    assert isinstance(capability, Capability)
    assert capability.signals == ["my phone broke", "I need a phone while mine is repaired"]
    assert capability.tags == [f"agent:{agent.id}"]
    other = await parlant.capabilities.create(
        title="Reset a password", description="Send a reset link", signals=[]
    )
    assert [c.id for c in await parlant.capabilities.list()] == [capability.id, other.id]
    by_tag = await parlant.capabilities.list(tag_id=f"agent:{agent.id}")
    assert [c.id for c in by_tag] == [capability.id]
    assert (await parlant.capabilities.retrieve(capability.id)).title == "Replace a broken phone"

    updated = await parlant.capabilities.update(
        capability.id,
        description="A loan phone while yours is repaired",
        signals=["my screen cracked"],
        tags=CapabilityTagUpdateParams(add=[tag.id], remove=[f"agent:{agent.id}"]),
    )
    assert updated.title == "Replace a broken phone"
    assert updated.description == "A loan phone while yours is repaired"
    assert updated.signals == ["my screen cracked"]
    assert updated.tags == [tag.id]

    await parlant.capabilities.delete(capability.id)
    with pytest.raises(ApiError) as gone:
        await parlant.capabilities.retrieve(capability.id)
    assert gone.value.status_code == 404
    with pytest.raises(ApiError) as invalid:
        await parlant.capabilities.create(title="", description="x", signals=[])
    assert invalid.value.status_code == 422
    assert [c.id for c in await parlant.capabilities.list()] == [other.id]


async def test_the_official_client_sees_our_errors(parlant: AsyncParlantClient) -> None:
    with pytest.raises(ApiError) as missing:
        await parlant.agents.retrieve("ghost")
    assert missing.value.status_code == 404
    assert missing.value.body == {"detail": "Agent 'ghost' was not found"}
    with pytest.raises(ApiError) as invalid:
        await parlant.agents.create(name="")
    assert invalid.value.status_code == 422
    agent = await parlant.agents.create(name="A")
    session = await parlant.sessions.create(agent_id=agent.id)
    assert await parlant.sessions.list_events(session.id, wait_for_data=0) == []
    with pytest.raises(ApiError) as timeout:
        await parlant.sessions.list_events(session.id, min_offset=5, wait_for_data=1)
    assert timeout.value.status_code == 504


async def test_the_official_client_annotates_events(parlant: AsyncParlantClient) -> None:
    agent = await parlant.agents.create(name="A")
    session = await parlant.sessions.create(agent_id=agent.id)
    event = await parlant.sessions.create_event(
        session.id, kind="custom", source="customer_ui", data={"card": 1}, metadata={"old": 1}
    )
    updated = await parlant.sessions.update_event(
        session.id,
        event.id,
        metadata=SessionMetadataUpdateParams(set_={"rating": "up"}, unset=["old"]),
    )
    assert isinstance(updated, Event)
    assert updated.metadata == {"rating": "up"}
    assert (await parlant.sessions.read_event(session.id, event.id)).metadata == {"rating": "up"}
    with pytest.raises(ApiError) as missing:
        await parlant.sessions.update_event(session.id, "ghost")
    assert missing.value.status_code == 404


async def test_the_official_client_labels_guidelines_journeys_and_sessions(
    parlant: AsyncParlantClient,
) -> None:
    agent = await parlant.agents.create(name="A")
    guideline = await parlant.guidelines.create(
        condition="the customer asks for a refund", action="explain", labels=["refund"]
    )
    assert guideline.labels == ["refund"]
    updated = await parlant.guidelines.update(
        guideline.id, labels=GuidelineLabelsUpdateParams(upsert=["money"], remove=["refund"])
    )
    assert updated.guideline.labels == ["money"]
    journey = await parlant.journeys.create(
        title="Returns", description="", conditions=["the customer returns"], labels=["returns"]
    )
    assert journey.labels == ["returns"]
    journey = await parlant.journeys.update(
        journey.id, labels=JourneyLabelsUpdateParams(upsert=["vip"])
    )
    assert journey.labels == ["returns", "vip"]

    first = await parlant.sessions.create(agent_id=agent.id, labels=["vip"])
    second = await parlant.sessions.create(agent_id=agent.id)
    second = await parlant.sessions.update(
        second.id, labels=SessionLabelsUpdateParams(upsert=["vip", "late"])
    )
    assert second.labels == ["vip", "late"]
    page = await parlant.sessions.list(labels=["vip", "late"], limit=10)
    assert isinstance(page, SessionListing)
    assert [s.id for s in page.items] == [second.id] and page.total_count == 1
    listed = await parlant.sessions.list(labels="vip")
    assert [s.id for s in listed] == [first.id, second.id]  # type: ignore[union-attr]


@tactful.tool(service="shop")
async def opening_hours(context: tactful.ToolContext) -> tactful.ToolResult:
    """The shop's opening hours."""
    return tactful.ToolResult(data="9 to 5")


async def test_the_official_client_lists_services_defined_in_code(
    parlant: AsyncParlantClient, runtime: Runtime
) -> None:
    await services.register_tools(runtime.store, runtime.engine.tools, [opening_hours])
    [listed] = await parlant.services.list()
    assert (listed.name, listed.kind, listed.url) == ("shop", "sdk", "")
    found = await parlant.services.retrieve("shop")
    assert [t.name for t in found.tools or []] == ["opening_hours"]
    with pytest.raises(ApiError) as refused:
        await parlant.services.delete("shop")
    assert refused.value.status_code == 409
