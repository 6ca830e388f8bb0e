"""Voltmart's two journeys: returning an item, and changing the delivery address of an order.

Each is a procedure with tool states (the order lookup, then the action), a fork decided by the
looked-up order (code conditions over the tool's result, so no model call is needed for it and
the offline tier follows it too), and a canned response on every step, so the offline tier says
exactly what the step says. A customer may interrupt either one with another question; the
journey pauses, and resumes when the customer answers the pending step.

The transitions into the steps and the steps' canned responses have stable ids (the steps' own
are generated): ``vm-return-within-window`` leads to the step whose reply is
``vm-return-within-window-1``, the id conversation tests (``scenarios/``) expect it by.

``define_journeys(agent, tools)`` is idempotent, like the rest of the example; the code that
decides the forks is attached apart (``attach_branches``), by transition id.
"""

from datetime import date
from typing import Any

import tactful
from tactful.domain.common import utcnow
from tactful.engine.hooks import BranchContext

RETURN_ID = "vm-journey-return"
ADDRESS_ID = "vm-journey-address"
RETURN_WINDOW_DAYS = 30

GAVE_NUMBER = "The customer gave the order number"


def _order(ctx: BranchContext) -> dict[str, Any]:
    found = ctx.results.get("order_status")
    return found if isinstance(found, dict) else {}


def not_found(ctx: BranchContext) -> bool:
    return _order(ctx).get("ok") is False


def not_delivered(ctx: BranchContext) -> bool:
    order = _order(ctx)
    return bool(order.get("ok")) and order.get("status") != "delivered"


def _days_since_delivery(order: dict[str, Any]) -> int | None:
    delivered = order.get("delivered_on")
    if order.get("status") != "delivered" or not isinstance(delivered, str):
        return None
    # tactful's clock, as the order tools use (a conversation test's ``time:`` sets it).
    return (utcnow().date() - date.fromisoformat(delivered)).days


def within_window(ctx: BranchContext) -> bool:
    days = _days_since_delivery(_order(ctx))
    return days is not None and days <= RETURN_WINDOW_DAYS


def past_window(ctx: BranchContext) -> bool:
    days = _days_since_delivery(_order(ctx))
    return days is not None and days > RETURN_WINDOW_DAYS


def still_processing(ctx: BranchContext) -> bool:
    order = _order(ctx)
    return bool(order.get("ok")) and order.get("status") == "processing"


def already_on_its_way(ctx: BranchContext) -> bool:
    order = _order(ctx)
    return bool(order.get("ok")) and order.get("status") != "processing"


def address_changed(ctx: BranchContext) -> bool:
    changed = ctx.results.get("change_address")
    return isinstance(changed, dict) and changed.get("ok") is True


def address_refused(ctx: BranchContext) -> bool:
    return not address_changed(ctx)


# The transitions decided by code over the looked-up order (``branches``), by their ids.
BRANCHES: dict[str, Any] = {
    f"{RETURN_ID}-not-found": not_found,
    f"{ADDRESS_ID}-not-found": not_found,
    "vm-return-not-delivered": not_delivered,
    "vm-return-past-window": past_window,
    "vm-return-within-window": within_window,
    "vm-address-shipped": already_on_its_way,
    "vm-address-processing": still_processing,
    "vm-address-changed": address_changed,
    "vm-address-refused": address_refused,
}


def attach_branches(server: tactful.Server) -> None:
    """Decide the forks' transitions with code (held in memory: call it when the process
    starts). By transition id, so it works before the journeys are loaded."""
    hooks = server.runtime.engine.hooks
    for transition_id, predicate in BRANCHES.items():
        hooks.add_branch(transition_id, predicate)


NOT_FOUND = (
    "I couldn't find order {{order_id}}. Could you check the number? It starts with VM and has "
    "8 digits, and you'll find it in Account > Order History."
)


LOOKUP_FAILED = (
    "Sorry, I can't reach our order system right now. Please send me the order number again "
    "in a minute and I'll try once more."
)


async def define_journeys(agent: tactful.Agent, tools: Any) -> list[tactful.JourneyHandle]:
    """Define both journeys on ``agent`` (``tools`` is the example's ``OrderTools``)."""
    return [await _return_an_item(agent, tools), await _change_an_address(agent, tools)]


async def _says(
    journey: tactful.JourneyHandle, transition_id: str, template: str
) -> list[tactful.CannedResponse]:
    """The reply of the step ``transition_id`` leads to, under the id ``<transition_id>-1``."""
    return [await journey.create_canned_response(template, id=f"{transition_id}-1")]


async def _look_up_the_order(
    journey: tactful.JourneyHandle, tools: Any, ask_state: str, ask_reply: str
) -> tactful.StateHandle:
    """The steps both journeys begin with: ask for the order number, look the order up, and
    fork on what was found (a number that was not found is asked for again). Returns the fork."""
    ask = await journey.initial_state.transition_to(
        id=f"{journey.id}-ask",
        chat_state=ask_state,
        canned_responses=await _says(journey, f"{journey.id}-ask", ask_reply),
    )
    # A tool step's own reply is said only when the journey stays there: the tool failed.
    look = await ask.target.transition_to(
        id=f"{journey.id}-look-up",
        condition=GAVE_NUMBER,
        tool_state=tools.order_status,
        canned_responses=await _says(journey, f"{journey.id}-look-up", LOOKUP_FAILED),
    )
    fork = await look.target.transition_to(fork=True)
    missing = await fork.target.transition_to(
        id=f"{journey.id}-not-found",
        condition="The order was not found",
        chat_state="Say the order was not found and ask the customer to check the number",
        canned_responses=await _says(journey, f"{journey.id}-not-found", NOT_FOUND),
    )
    await missing.target.transition_to(condition=GAVE_NUMBER, state=look.target)
    return fork.target


async def _return_an_item(agent: tactful.Agent, tools: Any) -> tactful.JourneyHandle:
    wants = await agent.create_observation(
        "The customer wants to return an item they bought",
        id="vm-journey-return-wanted",
        examples=[
            "I want to return my headphones",
            "I'd like to send this back for a refund",
            "I would like to return my order",
        ],
    )
    journey = await agent.create_journey(
        "Return an item",
        conditions=[wants],
        description="Check the order, then open the return and give the RMA number.",
        id=RETURN_ID,
    )
    fork = await _look_up_the_order(
        journey,
        tools,
        "Ask for the order number of the item to return",
        "I can help you return it. What's the order number? It starts with VM and has 8 "
        "digits (you'll find it in Account > Order History).",
    )

    early = await fork.transition_to(
        id="vm-return-not-delivered",
        condition="The order has not been delivered yet",
        chat_state="Explain that a return can start once the order is delivered",
        canned_responses=await _says(
            journey,
            "vm-return-not-delivered",
            "Order {{order_id}} is {{status}} and hasn't been delivered yet, so there's nothing "
            "to return yet. Once it arrives you have 30 days to send it back for free.",
        ),
    )
    await early.target.transition_to(end=True)

    late = await fork.transition_to(
        id="vm-return-past-window",
        condition="The order was delivered more than 30 days ago",
        chat_state="Explain that the 30-day return window has passed and offer warranty help",
        canned_responses=await _says(
            journey,
            "vm-return-past-window",
            "Order {{order_id}} ({{items}}) was delivered on {{delivered_on}}, more than 30 days "
            "ago, so it can no longer be returned for a refund. If it's faulty, it's still "
            "covered by its warranty, and I can help you start a claim.",
        ),
    )
    await late.target.transition_to(end=True)

    why = await fork.transition_to(
        id="vm-return-within-window",
        condition="The order was delivered within the last 30 days",
        chat_state="Ask why the customer is returning it",
        canned_responses=await _says(
            journey,
            "vm-return-within-window",
            "Good news: order {{order_id}} ({{items}}) can be returned for free. May I ask why "
            "you're sending it back?",
        ),
    )
    start = await why.target.transition_to(
        id="vm-return-start",
        tool_state=tools.start_return,
        canned_responses=await _says(
            journey,
            "vm-return-start",
            "Sorry, our returns system didn't answer, so the return isn't open yet. Send me any "
            "message in a minute and I'll try again.",
        ),
    )
    done = await start.target.transition_to(
        id="vm-return-opened",
        chat_state="Give the RMA number and explain how to send the parcel, or why the return "
        "could not be opened",
        canned_responses=await _says(
            journey,
            "vm-return-opened",
            "{% if rma %}Your return for order {{order_id}} is open: your RMA number is {{rma}}. "
            "Print the prepaid label from Account > Order History (or show the QR code at any "
            "UPS location), and your refund is issued within 3-5 business days after we inspect "
            "the item.{% else %}I couldn't start a return for order {{order_id}}: "
            "{{return_problem}}.{% endif %}",
        ),
    )
    await done.target.transition_to(end=True)
    return journey


async def _change_an_address(agent: tactful.Agent, tools: Any) -> tactful.JourneyHandle:
    wants = await agent.create_observation(
        "The customer wants to change the delivery address of an order",
        id="vm-journey-address-wanted",
        examples=[
            "I need to change the delivery address of my order",
            "Can you update the shipping address on my order?",
            "I moved, can my order go to my new address instead?",
        ],
    )
    journey = await agent.create_journey(
        "Change a delivery address",
        conditions=[wants],
        description="Check the order is still processing, then change where it goes.",
        id=ADDRESS_ID,
    )
    fork = await _look_up_the_order(
        journey,
        tools,
        "Ask for the number of the order whose address should change",
        "Sure, I can help with the delivery address. Which order is it? Send me its number "
        "(VM and 8 digits).",
    )

    shipped = await fork.transition_to(
        id="vm-address-shipped",
        condition="The order has already shipped or been delivered",
        chat_state="Explain that the address can no longer be changed and offer a carrier redirect",
        canned_responses=await _says(
            journey,
            "vm-address-shipped",
            "Order {{order_id}} is already {{status}}, so its address can't be changed in our "
            "system any more. If it's still on its way, the carrier may be able to redirect "
            "it: use the tracking link in your shipping email.",
        ),
    )
    await shipped.target.transition_to(end=True)

    new = await fork.transition_to(
        id="vm-address-processing",
        condition="The order is still processing",
        chat_state="Ask for the new delivery address",
        canned_responses=await _says(
            journey,
            "vm-address-processing",
            "Order {{order_id}} hasn't shipped yet, so I can still change where it goes. What's "
            "the new address? Please include the street, city, state and ZIP code.",
        ),
    )
    change = await new.target.transition_to(
        id="vm-address-change",
        condition="The customer gave the new delivery address",
        tool_state=tools.change_address,
        canned_responses=await _says(
            journey,
            "vm-address-change",
            "Sorry, our order system didn't answer, so the address isn't changed yet. Please "
            "send me the new address again in a minute and I'll try once more.",
        ),
    )
    after = await change.target.transition_to(fork=True)
    ok = await after.target.transition_to(
        id="vm-address-changed",
        condition="The address was changed",
        chat_state="Confirm the new delivery address",
        canned_responses=await _says(
            journey,
            "vm-address-changed",
            "Done! Order {{order_id}} will now be delivered to {{new_address}}.",
        ),
    )
    await ok.target.transition_to(end=True)
    refused = await after.target.transition_to(
        id="vm-address-refused",
        condition="The address could not be changed",
        chat_state="Explain why the address could not be changed",
        canned_responses=await _says(
            journey,
            "vm-address-refused",
            "I couldn't change the address of order {{order_id}}: {{address_problem}}.",
        ),
    )
    await refused.target.transition_to(end=True)
    return journey
