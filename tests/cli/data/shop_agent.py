"""A small agent definition file for the CLI tests (offline tier: canned responses)."""

from __future__ import annotations

import tactful


async def define(server: tactful.Server) -> tactful.Agent:
    agent = await server.create_agent(
        name="Shopbot",
        description="Answers questions about a small online shop.",
        id="shopbot",
        no_match_reply="Sorry, I can only help with returns and shipping.",
    )
    returns = await agent.create_canned_response(
        "You can return any item within 30 days for a full refund.", id="returns-reply"
    )
    shipping = await agent.create_canned_response(
        "Standard shipping takes 3 to 5 business days.", id="shipping-reply"
    )
    await agent.create_guideline(
        condition="the customer asks how to return an item or about the return policy",
        action="explain the 30-day return policy",
        id="returns",
        examples=["How do I return this?", "What is your return policy?"],
        canned_responses=[returns],
    )
    await agent.create_guideline(
        condition="the customer asks how long shipping or delivery takes",
        action="give the standard shipping time",
        id="shipping",
        examples=["How long does delivery take?", "When will my package arrive?"],
        canned_responses=[shipping],
    )
    await agent.create_observation("the customer is upset", id="upset")
    friendly = await agent.create_guideline(
        "in every reply", "keep a friendly tone", id="friendly", canned_responses=[]
    )
    await agent.match_always(friendly)
    return agent
