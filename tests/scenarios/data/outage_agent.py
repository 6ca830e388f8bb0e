"""A tiny agent for the conversation-test tests: an outage check (a tool), a plan variable,
a greeting with the customer's name, and a handoff tool."""

import tactful
from tactful.domain.common import utcnow
from tactful.tools import SessionControl


@tactful.tool(service="status")
async def outage_status(context: tactful.ToolContext) -> tactful.ToolResult:
    """Whether the network has an outage now (the real one would ask a monitoring system)."""
    return tactful.ToolResult(
        data={"outage": False},
        fields={"outage_state": "all systems normal", "checked_at": utcnow().isoformat()},
    )


@tactful.tool(service="status")
async def hand_off(context: tactful.ToolContext) -> tactful.ToolResult:
    """Hand the conversation to a person."""
    return tactful.ToolResult(data="handed off", control=SessionControl.HANDOFF)


async def define(server: tactful.Server) -> tactful.Agent:
    agent = await server.create_agent("Netco", "Support for an internet provider.", id="netco")
    await agent.create_variable("plan", "The customer's internet plan", id="netco-plan")
    await agent.create_canned_response(
        "Network status: {{outage_state}} (checked {{checked_at}}).", id="netco-status-1"
    )
    await agent.create_guideline(
        "The customer says their internet is down or asks about an outage",
        "Check for an outage and tell them the network status",
        id="netco-outage",
        examples=("Is there an outage?", "My internet is down", "no connection at home"),
        tools=[outage_status],
        canned_responses=["netco-status-1"],
    )
    await agent.create_canned_response(
        "Hello {{std.customer.name}}, on {{plan}}!", id="netco-hi-named"
    )
    await agent.create_guideline(
        "The customer greets the agent",
        "Greet them back",
        id="netco-greet",
        examples=("Hi", "Hello", "Good morning"),
        canned_responses=["netco-hi-named"],
    )
    await agent.create_canned_response("Connecting you with a person now.", id="netco-human-1")
    await agent.create_guideline(
        "The customer asks to talk to a human",
        "Hand them to a person",
        id="netco-human",
        examples=("Can I talk to a human?", "real person please", "agent please"),
        tools=[hand_off],
        canned_responses=["netco-human-1"],
    )
    return agent
