"""Voltmart Support: a customer-support agent for a fictional consumer-electronics retailer.

It covers orders, returns, refunds, shipping and warranties (with the Voltmart Protect plan), plus
greetings, thanks, goodbyes and handoff to a person. Every guideline carries canned responses with
the exact policy wording, so on the offline tier (no model) the agent answers only from them, and
example customer utterances that help the offline retrieval find the right guideline.

It has real tools over a small order database it generates (``orders.py``): order lookup by
number or by email, returns, refunds and address changes. A rule that uses one has a "lookup"
twin that takes over once the customer has written what the tool needs (see ``Lookup``), so the
reply is the tool's result even on the offline tier.

Run it with ``python examples/voltmart/agent.py`` (port from ``PORT`` or ``TACTFUL_PORT``, default
8800). The contract for loaders is the module-level ``define(server)``: it is idempotent (every
definition has a stable id) and fast (no network).
"""

# No `from __future__ import annotations`: with string annotations, @dataclass looks its module
# up in sys.modules, which fails when a loader executes this file by path without registering it.
import asyncio
import importlib.util
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import tactful
from tactful.engine.hooks import MatchContext


def _sibling(name: str) -> ModuleType:
    """Import ``<name>.py`` next to this file. Loaders execute this file by path, so its folder
    may not be importable; the module is registered once, under a name of its own."""
    path = Path(__file__).resolve().with_name(f"{name}.py")
    module_name = f"voltmart_example_{name}"
    known = sys.modules.get(module_name)
    if known is not None and getattr(known, "__file__", None) == str(path):
        return known
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


orders = _sibling("orders")
journeys = _sibling("journeys")
# What the order tools' arguments look like in a message (their JSON-schema patterns, unanchored).
ORDER_NUMBER = re.compile(orders.ORDER_ID_PATTERN.removeprefix("^").removesuffix("$"))
EMAIL = re.compile(orders.EMAIL_PATTERN.removeprefix("^").removesuffix("$"))
NUMBER_MISSING = "vm-orders-number-missing"

AGENT_ID = "voltmart-support"
AGENT_NAME = "Voltmart Support"
AGENT_DESCRIPTION = (
    "The support assistant of Voltmart, an online consumer-electronics retailer. It helps with "
    "orders, returns, refunds, shipping, warranties and the Voltmart Protect plan, in a friendly, "
    "concise and policy-accurate way."
)
NO_MATCH_REPLY = (
    "Sorry, I'm not able to help with that here. I can help with Voltmart orders, returns, "
    "refunds, shipping and warranties. Could you rephrase your question, or ask for a person?"
)
# The moderation policy (docs/moderation.md): a customer message that moderation flags (post it
# with ?moderation=auto, or paranoid to check for prompt injection too) gets this refusal,
# with no model call, and the trace says what fired.
MODERATION_ACTION = tactful.ModerationAction.REFUSE
MODERATION_REFUSAL = (
    "I'm sorry, I can't help with that message. I'm happy to help with Voltmart orders, "
    "returns, refunds, shipping and warranties, or you can ask for a person."
)


@dataclass(frozen=True)
class ToolReply:
    """A canned response on a tool's result fields: it qualifies only in a turn where the tool
    ran (``{% if %}`` picks the wording for a refused request)."""

    id: str
    template: str


@dataclass(frozen=True)
class Lookup:
    """A rule's follow-through once the customer has given what its tool needs.

    It is a second guideline with its own action, the rule's tools and one reply on their
    result. A code matcher decides it: the customer wrote what ``given`` finds (an order number,
    an email address: the tool parameter's own pattern, which is also how the offline tier fills
    the argument). It also depends on the rule's intent having matched, or on the customer just
    answering the rule's question. Active, it takes priority over the rule, so the tool's reply
    replaces the rule's general ones ("please send your order number"): side by side in one
    guideline they would compete on wording alone, and the general ones would win. When the
    tool fails, the ``unavailable`` reply apologises instead of the agent's no-match reply.
    """

    id: str
    action: str
    given: re.Pattern[str]
    reply: ToolReply
    # (id, template): said when the tool could not answer (an error, a timeout). It uses no
    # tool field, so the result's reply, which does, outranks it whenever the tool returned.
    unavailable: tuple[str, str] | None = None


@dataclass(frozen=True)
class Rule:
    """One guideline with its example utterances and its canned responses (id, template).

    ``tools`` names the tools of ``orders.OrderTools`` the guideline calls when it applies,
    ``tool_replies`` are canned responses that use their results, and ``lookup`` follows the
    rule through once the customer has given what the tool needs.
    """

    id: str
    condition: str
    action: str
    examples: tuple[str, ...]
    responses: tuple[tuple[str, str], ...]
    priority: int = 0
    criticality: tactful.Criticality = tactful.Criticality.MEDIUM
    tools: tuple[str, ...] = ()
    tool_replies: tuple[ToolReply, ...] = ()
    lookup: Lookup | None = None


RULES: tuple[Rule, ...] = (
    # -- orders ---------------------------------------------------------------------------------
    Rule(
        id="vm-orders-track",
        condition="The customer wants to know where their order is or when it will arrive",
        action="Point them to live tracking in Order History and offer to check the order "
        "status if they share the order number.",
        examples=(
            "Where is my order?",
            "When will my package get here?",
            "Can you track my delivery for me?",
            "I'd like a status update on something I bought last week",
        ),
        responses=(
            (
                "vm-orders-track-1",
                "You can follow your order live under Account > Order History, and the tracking "
                "link is also in your shipping confirmation email. If you share your order number "
                "(VM followed by 8 digits), I'll check its latest status for you.",
            ),
            (
                "vm-orders-track-2",
                "Happy to check on that! Please send me your order number: it starts with VM and "
                "has 8 digits, like VM12345678. You'll find it in your confirmation email.",
            ),
        ),
        tools=("order_status",),
        lookup=Lookup(
            id="vm-orders-track-lookup",
            action="Look the order up with order_status and tell them its status and its "
            "expected or actual delivery date.",
            given=ORDER_NUMBER,
            reply=ToolReply(
                "vm-orders-track-lookup-1",
                "{% if delivered_on %}Your order {{order_id}} ({{items}}) was delivered on "
                "{{delivered_on}}.{% elif status %}Your order {{order_id}} ({{items}}) is "
                "{{status}}{% if eta %} and should arrive by {{eta}}{% endif %}."
                "{% else %}I couldn't look up order {{order_id}}: {{order_problem}}.{% endif %}",
            ),
            unavailable=(
                "vm-orders-track-lookup-2",
                "Sorry, I can't reach our order system right now, so I couldn't check that "
                "order. You can follow it live under Account > Order History, or ask me again "
                "in a few minutes.",
            ),
        ),
    ),
    Rule(
        id=NUMBER_MISSING,
        condition="The customer does not know or cannot find their order number",
        action="Explain the order number format and where to find it, and offer a lookup by the "
        "checkout email address instead.",
        examples=(
            "I don't have my order number",
            "Where do I find the order number?",
            "I lost the confirmation email with the order ID",
        ),
        responses=(
            (
                "vm-orders-number-missing-1",
                "No problem! Your order number starts with VM followed by 8 digits (for example "
                "VM12345678). It's in the subject line of your order confirmation email and under "
                "Account > Order History. If you can't find it, tell me the email address you used "
                "at checkout and I'll look the order up that way.",
            ),
        ),
        tools=("find_order",),
        lookup=Lookup(
            id="vm-orders-number-missing-lookup",
            action="Find their orders with find_order and list them, so they can say which one "
            "they mean.",
            given=EMAIL,
            reply=ToolReply(
                "vm-orders-number-missing-lookup-1",
                "{% if orders %}I found these orders for {{email}}: {{orders}}. Which one can I "
                "help you with?{% else %}I couldn't find any orders for {{email}}. Could you "
                "double-check the address, or try another email you may have used at checkout?"
                "{% endif %}",
            ),
            unavailable=(
                "vm-orders-number-missing-lookup-2",
                "Sorry, I can't search orders by email right now. Your order number (VM "
                "followed by 8 digits) is in your confirmation email and under Account > Order "
                "History; or ask me again in a few minutes.",
            ),
        ),
    ),
    Rule(
        id="vm-orders-cancel",
        condition="The customer wants to cancel an order",
        action="Explain that orders can be cancelled free of charge until they ship, from Order "
        "History, with the refund going to the original payment method.",
        examples=(
            "I want to cancel my order",
            "Please cancel the laptop I ordered this morning",
            "I changed my mind, can I still call off my purchase?",
        ),
        responses=(
            (
                "vm-orders-cancel-1",
                "You can cancel free of charge until your order ships: go to Account > Order "
                "History, open the order and choose Cancel order. The full amount goes back to "
                "your original payment method, and any pending charge disappears within 3-5 "
                "business days.",
            ),
            (
                "vm-orders-cancel-2",
                "Sure, orders can be cancelled until they leave our warehouse (usually within 24 "
                "hours). Use Cancel order in Account > Order History, or share your order number "
                "and I'll check whether it has shipped yet.",
            ),
        ),
    ),
    Rule(
        id="vm-orders-cancel-shipped",
        condition="The customer wants to cancel an order that has already shipped or is out for "
        "delivery",
        action="Explain a shipped order cannot be cancelled; offer to refuse the delivery or "
        "return it for free within 30 days.",
        examples=(
            "It already shipped but I want to cancel it",
            "The package is out for delivery, can I still cancel?",
            "Too late to cancel? tracking says it's on the way",
        ),
        responses=(
            (
                "vm-orders-cancel-shipped-1",
                "Once an order has shipped it can't be cancelled anymore, but you have two easy "
                "options: refuse the delivery and it comes back to us automatically, or keep it "
                "sealed and return it for free within 30 days of delivery. Either way you get a "
                "full refund to your original payment method.",
            ),
        ),
    ),
    Rule(
        id="vm-orders-late",
        condition="The customer says their order has not arrived by the expected delivery date or "
        "is taking too long",
        action="Apologize, offer to check the carrier's latest scan, and explain the lost-package "
        "process after 5 business days without a tracking update.",
        examples=(
            "My order is late",
            "It was supposed to arrive yesterday and it's still not here",
            "The delivery date passed and I have nothing",
            "Why is my package taking so long?",
        ),
        responses=(
            (
                "vm-orders-late-1",
                "I'm sorry your order is running late! I'll check the carrier's latest scan and "
                "give you a new estimate (if you haven't yet, please share your order number: VM "
                "followed by 8 digits). If tracking hasn't updated for 5 business days, we open a "
                "lost-package claim and send a free replacement or a full refund.",
            ),
        ),
    ),
    Rule(
        id="vm-orders-delivered-not-received",
        condition="The customer says tracking shows their order as delivered but they never "
        "received it",
        action="Ask them to check around the property and with neighbors and to wait 48 hours, "
        "then open a carrier trace.",
        examples=(
            "Tracking says delivered but I never got it",
            "It says the package was dropped off but there's nothing at my door",
            "The app shows it was delivered but I can't find the box",
        ),
        responses=(
            (
                "vm-orders-delivered-not-received-1",
                "I'm sorry, that's frustrating! Carriers sometimes mark a parcel as delivered a "
                "little early or leave it with a neighbor, a mailroom or a safe spot. Please check "
                "around your building and wait 48 hours; if it still hasn't turned up, send me "
                "your order number and I'll open a carrier trace and arrange a replacement or "
                "refund.",
            ),
        ),
    ),
    Rule(
        id="vm-orders-missing-item",
        condition="The customer's delivery arrived but an item from the order is missing from the "
        "package",
        action="Explain that orders can ship in several packages, and offer a missing-item claim "
        "if tracking shows everything delivered.",
        examples=(
            "My package came but the headphones weren't in it",
            "One item is missing from my order",
            "I only got the mouse, not the keyboard I also ordered",
        ),
        responses=(
            (
                "vm-orders-missing-item-1",
                "Sorry about that! Orders with several items sometimes ship in separate packages "
                "from different warehouses, so the rest may still be on its way: check Account > "
                "Order History for a second tracking number. If everything shows as delivered, "
                "send me your order number and I'll open a missing-item claim.",
            ),
        ),
    ),
    Rule(
        id="vm-orders-wrong-item",
        condition="The customer received a different product from the one they ordered",
        action="Apologize, ask for a photo of the item and the shipping label, and arrange a free "
        "wrong-item replacement.",
        examples=(
            "You sent me the wrong item",
            "I ordered a black phone case and got a pink one",
            "This isn't what I bought, the box has a different model inside",
            "The product I received is not the one I ordered",
        ),
        responses=(
            (
                "vm-orders-wrong-item-1",
                "I'm so sorry we sent the wrong item! Please send me your order number and a photo "
                "of what arrived with its shipping label. We'll ship the right product at no cost "
                "and email you a free return label for the wrong one.",
            ),
        ),
    ),
    Rule(
        id="vm-orders-invoice",
        condition="The customer asks for an invoice or a receipt for an order",
        action="Explain how to download the invoice from Order History or offer to email it.",
        examples=(
            "Can I get a receipt for my purchase?",
            "I need an invoice for my order",
            "How do I download a proof of purchase?",
        ),
        responses=(
            (
                "vm-orders-invoice-1",
                "You can download a PDF invoice anytime from Account > Order History > Invoice. "
                "If you'd rather have it by email, share your order number and I'll send a copy to "
                "the address on file.",
            ),
        ),
    ),
    # -- returns --------------------------------------------------------------------------------
    Rule(
        id="vm-returns-within-window",
        condition="The customer wants to return an item they received within the last 30 days",
        action="Explain that returns are free within 30 days of delivery and how to get the "
        "prepaid label.",
        examples=(
            "I want to return the headphones I got last week",
            "How do I send back something I don't want anymore?",
            "Can I return my monitor? It arrived 10 days ago",
            "I'd like to return an item",
        ),
        responses=(
            (
                "vm-returns-within-window-1",
                "Returns are free within 30 days of delivery. Go to Account > Order History, "
                "choose Return an item, and print the prepaid label (or show the QR code at any "
                "UPS location). Once we've inspected the item, your refund is issued to your "
                "original payment method within 3-5 business days.",
            ),
            (
                "vm-returns-within-window-2",
                "Sure! Anything delivered in the last 30 days can be returned for free, opened or "
                "not, as long as all the accessories are in the box. Start the return in Account > "
                "Order History to get your prepaid label.",
            ),
        ),
    ),
    Rule(
        id="vm-returns-past-window",
        condition="The customer wants to return an item received more than 30 days ago",
        action="Explain the 30-day return window has passed and offer warranty options if the "
        "item is faulty.",
        examples=(
            "Can I still return something I bought two months ago?",
            "I received it 45 days ago, is it too late to send it back?",
            "I missed the return window",
        ),
        responses=(
            (
                "vm-returns-past-window-1",
                "I'm sorry, our return window is 30 days from delivery, so this item can no "
                "longer be returned for a refund. If it's faulty, though, it's still covered by "
                "the 1-year manufacturer warranty (or your Voltmart Protect plan), and I can help "
                "you start a warranty claim.",
            ),
        ),
    ),
    Rule(
        id="vm-returns-damaged",
        condition="The customer says a product arrived damaged, broken or dead on arrival",
        action="Apologize and offer a free replacement shipped right away or a full refund, "
        "asking for photos.",
        examples=(
            "My TV arrived with a cracked screen",
            "The box was crushed and the speaker inside is broken",
            "It was dead on arrival, won't even turn on",
        ),
        responses=(
            (
                "vm-returns-damaged-1",
                "I'm really sorry it arrived damaged! Please send your order number and a couple "
                "of photos of the item and the box. We'll ship a replacement right away at no "
                "cost (or issue a full refund if you prefer) and email you a free return label "
                "for the damaged one.",
            ),
        ),
        criticality=tactful.Criticality.HIGH,
    ),
    Rule(
        id="vm-returns-dropoff",
        condition="The customer asks where or how to drop off or ship a return package",
        action="Explain drop-off at any UPS location or Voltmart store, with the label or QR code.",
        examples=(
            "Where do I drop off my return?",
            "Can I bring the return to a store?",
            "How do I ship the box back to you?",
        ),
        responses=(
            (
                "vm-returns-dropoff-1",
                "You can drop your return at any UPS location or Voltmart store. Print the prepaid "
                "label from Account > Order History, or just show the QR code on your phone at a "
                "UPS counter: no printer needed.",
            ),
        ),
    ),
    Rule(
        id="vm-returns-status",
        condition="The customer asks about the status of a return they have already sent back",
        action="Explain that inspection takes up to 5 business days after the return arrives and "
        "offer to check the return tracking.",
        examples=(
            "I sent my return last week, did you get it?",
            "What's the status of my return?",
            "Has my returned laptop arrived at your warehouse yet?",
        ),
        responses=(
            (
                "vm-returns-status-1",
                "Once your return reaches our warehouse, we inspect it within 5 business days and "
                "email you as soon as the refund is issued. You can follow it under Account > "
                "Order History > Returns, or share your order number and I'll check it for you.",
            ),
        ),
    ),
    Rule(
        id="vm-returns-exchange",
        condition="The customer wants to exchange an item for a different model, size or color",
        action="Explain exchanges are handled as a free return plus a new order.",
        examples=(
            "Can I swap this for a different color?",
            "I want to exchange my tablet for the bigger model",
            "Could I trade the 128GB version for the 256GB one?",
        ),
        responses=(
            (
                "vm-returns-exchange-1",
                "Exchanges work as a free return plus a new order: place an order for the model "
                "you want, then return the first item within 30 days of delivery with the prepaid "
                "label from Account > Order History. That way the new one ships right away.",
            ),
        ),
    ),
    # -- refunds --------------------------------------------------------------------------------
    Rule(
        id="vm-refunds-status",
        condition="The customer asks where their refund is or says it has not arrived yet",
        action="Explain when refunds are issued and how long banks take, and offer to check the "
        "order.",
        examples=(
            "Where is my refund?",
            "I still haven't received my money back",
            "My refund hasn't shown up on my card yet",
        ),
        responses=(
            (
                "vm-refunds-status-1",
                "We issue refunds within 3-5 business days after your return is inspected, and "
                "your bank can take another 5-10 business days to show it. If it's been longer "
                "than that, share your order number and I'll look up the refund reference for "
                "your bank.",
            ),
        ),
        tools=("refund",),
        lookup=Lookup(
            id="vm-refunds-status-lookup",
            action="Check the order with the refund tool: it issues the refund once the return "
            "was received (or for an order cancelled before shipping) and gives the refund "
            "reference; otherwise explain why there is no refund yet.",
            given=ORDER_NUMBER,
            reply=ToolReply(
                "vm-refunds-status-lookup-1",
                "{% if transaction_id %}The refund of {{amount}} for order {{order_id}} has been "
                "issued to your original payment method. Your refund reference is "
                "{{transaction_id}}; your bank can take 5-10 business days to show it."
                "{% else %}I checked order {{order_id}}, and I can't issue a refund yet: "
                "{{refund_problem}}.{% endif %}",
            ),
            unavailable=(
                "vm-refunds-status-lookup-2",
                "Sorry, I can't reach our refund system right now, so I couldn't check that "
                "order. Refunds are issued within 3-5 business days after we inspect a return; "
                "please ask me again in a few minutes.",
            ),
        ),
    ),
    Rule(
        id="vm-refunds-timing",
        condition="The customer asks how long a refund takes",
        action="Explain refunds are issued 3-5 business days after inspection and banks take "
        "another 5-10 business days; PayPal is faster.",
        examples=(
            "How long do refunds take?",
            "When will I get my money back after returning something?",
            "How many days until the refund hits my account?",
        ),
        responses=(
            (
                "vm-refunds-timing-1",
                "Refunds are issued within 3-5 business days after we inspect your return. Card "
                "refunds then take 5-10 business days to appear, depending on your bank; PayPal "
                "refunds usually show up within 1-2 business days.",
            ),
        ),
    ),
    Rule(
        id="vm-refunds-method",
        condition="The customer asks how they will be refunded or wants the refund on a "
        "different card, account or as store credit",
        action="Explain refunds go to the original payment method, or to store credit if the "
        "customer prefers.",
        examples=(
            "Will the refund go back to my credit card?",
            "Can you refund me to a different card?",
            "I'd rather have store credit than a refund",
            "I paid with PayPal, how do I get refunded?",
        ),
        responses=(
            (
                "vm-refunds-method-1",
                "Refunds always go back to the original payment method: the same card, PayPal "
                "account or gift card you paid with. We can't send them to a different card or "
                "account, but if you prefer, we can issue the amount as Voltmart store credit "
                "instead.",
            ),
        ),
    ),
    # -- shipping -------------------------------------------------------------------------------
    Rule(
        id="vm-shipping-cost",
        condition="The customer asks how much shipping costs or how to get free shipping",
        action="Explain standard shipping is free on orders over $35 and $5.99 otherwise, and "
        "mention the faster options.",
        examples=(
            "How much is shipping?",
            "Is delivery free?",
            "What's the minimum order for free shipping?",
        ),
        responses=(
            (
                "vm-shipping-cost-1",
                "Standard shipping is free on orders over $35 and $5.99 otherwise. If you're in a "
                "hurry, Express (2 business days) is $12.99 and Next Day is $24.99.",
            ),
        ),
    ),
    Rule(
        id="vm-shipping-options",
        condition="The customer asks about delivery speed or which shipping options are available",
        action="List standard, express and next-day shipping with their delivery times and prices.",
        examples=(
            "What shipping options do you have?",
            "How fast can you deliver?",
            "Do you offer next day delivery?",
            "How long does standard shipping take?",
        ),
        responses=(
            (
                "vm-shipping-options-1",
                "We offer three speeds: Standard (3-5 business days, free over $35, otherwise "
                "$5.99), Express (2 business days, $12.99) and Next Day ($24.99, order by 2 pm "
                "ET on a business day). You choose at checkout.",
            ),
        ),
    ),
    Rule(
        id="vm-shipping-international",
        condition="The customer asks about shipping outside the United States or whether Voltmart "
        "ships to their country",
        action="Explain Voltmart ships to the United States and Canada only, and that Canadian "
        "orders may pay import duties at delivery.",
        examples=(
            "Do you ship internationally?",
            "Can I order from the UK?",
            "Do you deliver to Canada?",
            "I live in Australia, can you send it here?",
        ),
        responses=(
            (
                "vm-shipping-international-1",
                "We currently ship to the United States and Canada only. For Canadian orders, "
                "import duties and taxes may be collected by the carrier at delivery. Sorry we "
                "can't deliver further yet!",
            ),
        ),
    ),
    Rule(
        id="vm-shipping-address-change",
        condition="The customer wants to change the delivery address of an order",
        action="Explain the address can be changed until the order ships, and offer a carrier "
        "redirect request after that.",
        examples=(
            "I need to change my shipping address",
            "I put the wrong address on my order",
            "Can you send my order to my office instead of my home?",
            "I'm moving, can the delivery go to my new place?",
        ),
        responses=(
            (
                "vm-shipping-address-change-1",
                "You can change the delivery address until your order ships: open it in Account "
                "> Order History and choose Change address. If it has already shipped, send me the "
                "order number and the new address and I'll ask the carrier for a redirect (they "
                "can't always make it, but we'll try).",
            ),
        ),
    ),
    # -- warranty and Voltmart Protect ----------------------------------------------------------
    Rule(
        id="vm-warranty-coverage",
        condition="The customer asks whether their product is under warranty or how long the "
        "warranty lasts",
        action="Explain every new product has at least a 1-year manufacturer warranty handled by "
        "Voltmart, and how to check the end date.",
        examples=(
            "Is my laptop still under warranty?",
            "How long is the warranty on this TV?",
            "Does this come with a guarantee?",
        ),
        responses=(
            (
                "vm-warranty-coverage-1",
                "Every new product from Voltmart comes with at least a 1-year manufacturer "
                "warranty against defects, and we handle the claim for you. You can see the "
                "warranty end date for each item under Account > Order History > Warranty, or "
                "share your order number and I'll check it.",
            ),
        ),
    ),
    Rule(
        id="vm-warranty-claim",
        condition="The customer reports that a product stopped working or has a defect and wants "
        "it repaired or replaced",
        action="Offer to start a warranty claim and explain what is needed.",
        examples=(
            "My headphones stopped working",
            "The laptop keeps shutting down by itself, I want it fixed",
            "How do I make a warranty claim?",
            "My phone's charging port is broken after 4 months",
        ),
        responses=(
            (
                "vm-warranty-claim-1",
                "Sorry to hear it's acting up! If it's within its warranty, we'll repair or "
                "replace it for free. Start a claim under Account > Order History > Get help > "
                "Warranty claim, or send me your order number and a short description of the "
                "problem, and we'll email you a prepaid shipping label.",
            ),
        ),
    ),
    Rule(
        id="vm-warranty-accidental",
        condition="The customer says they accidentally damaged their product, for example by "
        "dropping it or spilling liquid on it",
        action="Explain the manufacturer warranty excludes accidental damage, which only "
        "Voltmart Protect Plus covers.",
        examples=(
            "I dropped my phone and the screen cracked",
            "I spilled coffee on my laptop",
            "My kid knocked the tablet off the table and now it's broken",
        ),
        responses=(
            (
                "vm-warranty-accidental-1",
                "Oh no, sorry to hear that! The manufacturer warranty doesn't cover accidental "
                "damage like drops or spills, but Voltmart Protect Plus does. If you have it, I "
                "can start a claim right away; if not, I can point you to our paid repair options.",
            ),
        ),
    ),
    Rule(
        id="vm-protect-coverage",
        condition="The customer asks what the Voltmart Protect plan is or what it covers",
        action="Explain Protect covers failures after the manufacturer warranty ends, Protect "
        "Plus adds accidental damage, and neither covers loss or theft.",
        examples=(
            "What is Voltmart Protect?",
            "What does the protection plan cover?",
            "Is the extended warranty worth it? What's included?",
        ),
        responses=(
            (
                "vm-protect-coverage-1",
                "Voltmart Protect extends your coverage to 2 or 3 years in total: it covers "
                "mechanical and electrical failures after the manufacturer warranty ends, with "
                "no deductible. Protect Plus also covers accidental damage such as drops and "
                "spills. Neither plan covers loss or theft.",
            ),
        ),
    ),
    Rule(
        id="vm-protect-add",
        condition="The customer wants to buy or add a Voltmart Protect plan to a product",
        action="Explain plans can be added at checkout or up to 60 days after purchase from Order "
        "History.",
        examples=(
            "Can I add Voltmart Protect to my order?",
            "I want to buy the protection plan for my new TV",
            "Is it too late to get the extended warranty?",
        ),
        responses=(
            (
                "vm-protect-add-1",
                "You can add Voltmart Protect at checkout or within 60 days of purchase: open the "
                "order in Account > Order History and choose Add protection. After 60 days, a "
                "plan can no longer be added to that product.",
            ),
        ),
    ),
    Rule(
        id="vm-protect-claim",
        condition="The customer wants to file a claim under their Voltmart Protect plan",
        action="Start the claim: ask for the plan number, a description of the problem and photos "
        "of any physical damage.",
        examples=(
            "I want to use my Voltmart Protect plan",
            "How do I file a claim on my protection plan?",
            "I have Protect Plus and my speaker died",
        ),
        responses=(
            (
                "vm-protect-claim-1",
                "Let's get your Voltmart Protect claim started! Please send your plan number "
                "(it's in your plan confirmation email and under Account > Protection plans), a "
                "short description of the problem, and photos if there's any physical damage.",
            ),
        ),
    ),
    # -- conversation ---------------------------------------------------------------------------
    # The agent speaks first when a session is created with allow_greeting (docs/handoff.md):
    # decided by a code matcher (``attach``), on a conversation with no message yet.
    Rule(
        id="vm-welcome",
        condition="The conversation has just opened and nobody has written anything yet",
        action="Welcome the customer to Voltmart Support and ask how you can help.",
        examples=(),
        responses=(
            (
                "vm-welcome-1",
                "Hi {{std.customer.name}}, welcome to Voltmart Support! I can help with orders, "
                "returns, refunds, deliveries and Voltmart Protect. What can I do for you?",
            ),
        ),
    ),
    Rule(
        id="vm-greeting",
        condition="The customer only greets the agent without stating a request",
        action="Greet them back and ask how you can help.",
        examples=("Hi", "Hello there", "Hey, good morning!"),
        responses=(
            (
                "vm-greeting-1",
                "Hi {{std.customer.name}}! Welcome to Voltmart Support. How can I help you today?",
            ),
            ("vm-greeting-2", "Hello, and welcome to Voltmart Support! What can I do for you?"),
        ),
    ),
    Rule(
        id="vm-thanks",
        condition="The customer thanks the agent",
        action="Say they are welcome and ask whether there is anything else.",
        examples=("Thanks for the help!", "Thank you, that's all I needed", "Great, appreciate it"),
        responses=(
            (
                "vm-thanks-1",
                "You're very welcome, {{std.customer.name}}! Is there anything else I can help "
                "you with?",
            ),
            ("vm-thanks-2", "Happy to help! Anything else I can do for you today?"),
        ),
    ),
    Rule(
        id="vm-goodbye",
        condition="The customer says goodbye and has no further request",
        action="Close warmly and mention they can start a new chat anytime.",
        examples=("Bye!", "That's all for today, take care", "OK I'm done here, goodbye"),
        responses=(
            (
                "vm-goodbye-1",
                "Thanks for chatting with Voltmart! Have a great day, and feel free to start a new "
                "chat anytime.",
            ),
        ),
    ),
    Rule(
        id="vm-human-handoff",
        condition="The customer asks to speak with a human agent, a real person, a supervisor or "
        "a manager",
        action="Offer the handoff to a person without trying to talk them out of it, and give "
        "the support hours.",
        examples=(
            "Can I talk to a real person?",
            "I want a human agent",
            "Let me speak to your manager",
            "agent please",
        ),
        responses=(
            (
                "vm-human-handoff-1",
                "Of course. I'll connect you with a member of the Voltmart support team. Our "
                "people are available every day from 8 am to 10 pm ET, and the wait is usually "
                "under 5 minutes.",
            ),
        ),
        priority=1,
        # The session goes to manual mode: the agent stays quiet until a person answers.
        tools=("hand_off_to_person",),
    ),
)

OBSERVATIONS: tuple[tuple[str, str], ...] = (
    (
        "vm-obs-order-number-given",
        "The customer has given an order number (even a malformed one) in this conversation",
    ),
    ("vm-obs-frustrated", "The customer expresses frustration or anger"),
    ("vm-obs-has-protect", "The customer says they have a Voltmart Protect plan"),
)

# What the agent can do for a customer (id, title, description, signals): the ones close to
# what the customer says are put before the model each turn, so that it offers these and does
# not promise anything else. Each is backed by a tool or a rule above.
CAPABILITIES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "vm-cap-return",
        "Start a return",
        "Open a return for an item delivered in the last 30 days and give its RMA number; the "
        "return label is free.",
        (
            "I want to return this",
            "can I send it back for my money",
            "I'd like to return an item I bought",
        ),
    ),
    (
        "vm-cap-address",
        "Change a delivery address",
        "Change the delivery address of an order until it ships.",
        (
            "I moved, my package should go to my new home",
            "please change my delivery address",
            "can the delivery go to my office instead",
        ),
    ),
    (
        "vm-cap-protect-claim",
        "File a Voltmart Protect claim",
        "Start a claim under a Voltmart Protect plan for a product that stopped working "
        "(accidental damage only with Protect Plus): the plan number, what went wrong and photos "
        "of any damage.",
        (
            "my TV stopped working and I have Voltmart Protect",
            "I want to make a claim on my protection plan",
            "my laptop died after the warranty ended, I bought Protect",
        ),
    ),
    (
        "vm-cap-person",
        "Hand over to a person",
        "Pass the conversation to a person on the Voltmart support team, who answers in this chat.",
        ("can I talk to a human", "I want a real person", "connect me to someone from support"),
    ),
)

TERMS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "vm-term-order-number",
        "Order number",
        "The identifier of a Voltmart order: the letters VM followed by 8 digits, e.g. "
        "VM12345678. It is in the order confirmation email and in Order History.",
        ("order ID", "order #", "confirmation number"),
    ),
    (
        "vm-term-protect",
        "Voltmart Protect",
        "Voltmart's extended protection plan: covers mechanical and electrical failures for 2 or "
        "3 years in total, after the manufacturer warranty ends, with no deductible. It can be "
        "added up to 60 days after purchase. It never covers loss or theft.",
        ("protection plan", "extended warranty", "Protect"),
    ),
    (
        "vm-term-protect-plus",
        "Voltmart Protect Plus",
        "Voltmart Protect plus accidental damage (drops, spills, cracked screens).",
        ("Protect Plus", "accidental damage plan"),
    ),
    (
        "vm-term-return-window",
        "Return window",
        "30 days from delivery, during which returns are free and refunded to the original "
        "payment method after inspection.",
        ("return period", "30-day returns"),
    ),
    (
        "vm-term-order-history",
        "Order History",
        "The page under Account where customers track, cancel, return and download invoices for "
        "their orders.",
        ("my orders", "account orders"),
    ),
    (
        "vm-term-manufacturer-warranty",
        "Manufacturer warranty",
        "At least one year of coverage against defects on every new product; Voltmart handles "
        "the claim. It excludes accidental damage.",
        ("warranty", "guarantee"),
    ),
    (
        "vm-term-express",
        "Express shipping",
        "Delivery in 2 business days for $12.99; Next Day costs $24.99 when ordered by 2 pm ET.",
        ("2-day shipping", "expedited shipping", "next day delivery"),
    ),
)


async def define(server: tactful.Server) -> tactful.Agent:
    """Define Voltmart Support on ``server``; safe to call any number of times."""
    agent = await server.create_agent(
        AGENT_NAME,
        AGENT_DESCRIPTION,
        id=AGENT_ID,
        no_match_reply=NO_MATCH_REPLY,
        moderation_action=MODERATION_ACTION,
        moderation_refusal=MODERATION_REFUSAL,
    )
    tools = await attach(server)
    for rule in RULES:
        for response_id, template in rule.responses:
            await agent.create_canned_response(template, id=response_id)
        for reply in rule.tool_replies:
            await agent.create_canned_response(reply.template, id=reply.id)
        rule_tools = [getattr(tools, name) for name in rule.tools]
        await agent.create_guideline(
            rule.condition,
            rule.action,
            id=rule.id,
            examples=rule.examples,
            tools=rule_tools,
            canned_responses=[
                *(response_id for response_id, _ in rule.responses),
                *(reply.id for reply in rule.tool_replies),
            ],
            priority=rule.priority,
            criticality=rule.criticality,
        )
        if rule.lookup is not None:
            await _define_lookup(agent, rule, rule.lookup, rule_tools)
    lookups = [rule.lookup for rule in RULES if rule.lookup is not None]
    for lookup in lookups:
        if lookup.given is ORDER_NUMBER:
            # The customer evidently has the order number: "I don't know it" is a false match
            # (the offline tier finds one for most messages that mention an order number).
            await agent.prioritize(lookup.id, over=NUMBER_MISSING)
        for other in lookups:
            if other is not lookup:
                # An answer to one rule's question is about that rule, not another one that
                # the message happens to resemble ("order VM12345678" after "where is my
                # refund?" is not a tracking question).
                await agent.prioritize(f"{lookup.id}-answer", over=other.id)
    # The procedures: returning an item and changing an address are journeys. Once one is under
    # way it answers instead of the general policy rule; a past-window question stays policy.
    returning, moving = await journeys.define_journeys(agent, tools)
    await agent.prioritize(returning, over="vm-returns-within-window")
    await agent.prioritize("vm-returns-past-window", over=returning)
    # "I don't need it anymore" may be a return or a cancellation: the closer match decides.
    await agent.exclude(returning, "vm-orders-cancel")
    await agent.prioritize(moving, over="vm-shipping-address-change")
    for journey in (returning, moving):
        for lookup in lookups:
            # A journey under way looks the order up itself: no rule's lookup runs beside it.
            await agent.prioritize(journey, over=lookup.id)
            await agent.prioritize(journey, over=f"{lookup.id}-answer")
    for observation_id, condition in OBSERVATIONS:
        await agent.create_observation(condition, id=observation_id)
    for term_id, name, description, synonyms in TERMS:
        await agent.create_term(name, description, id=term_id, synonyms=synonyms)
    for capability_id, title, description, signals in CAPABILITIES:
        await agent.create_capability(title, description, id=capability_id, signals=signals)
    return agent


async def attach(server: tactful.Server) -> Any:
    """Voltmart's code, apart from its definitions: the order tools (the ``voltmart`` tool
    service, over the order database, opened and seeded on the first call), the lookups' code
    matchers and the journeys' code branches, all by id. ``define`` calls it; a server given
    Voltmart's definitions another way (``tactful serve --agent voltmart.yaml``, whose ``code``
    names this file) calls it alone. Returns the tools. The same service comes back on every
    call for this server, so attaching again changes nothing."""
    tools = orders.tools_for(server)
    await server.add_service(tools)
    hooks = server.runtime.engine.hooks
    for rule in RULES:
        if rule.lookup is not None:
            asked = [text for _, text in rule.responses]
            hooks.add_matcher(f"{rule.lookup.id}-answer", _answers(asked, rule.lookup.given))
            hooks.add_matcher(rule.lookup.id, _written(rule.lookup.given))
    # Voltmart speaks first only on a conversation that has no message yet.
    hooks.add_matcher("vm-welcome", _opening)
    journeys.attach_branches(server)
    return tools


def _opening(context: MatchContext) -> bool:
    """A code matcher: nobody has written anything yet (a greeting turn)."""
    return not context.messages and not context.latest_message


def _written(pattern: re.Pattern[str]) -> Callable[[MatchContext], bool]:
    """A code matcher: the customer wrote something ``pattern`` finds, in any message."""

    def written(context: MatchContext) -> bool:
        texts = [text for role, text in context.messages if role == "customer"]
        return any(pattern.search(text) for text in [*texts, context.latest_message])

    return written


def _answers(asked: list[str], pattern: re.Pattern[str]) -> Callable[[MatchContext], bool]:
    """A code matcher: the agent's previous message is one of ``asked`` and the customer's
    latest message holds what ``pattern`` finds."""

    def answers(context: MatchContext) -> bool:
        if not pattern.search(context.latest_message):
            return False
        agent_said = [text for role, text in context.messages if role == "agent"]
        return bool(agent_said) and agent_said[-1].strip() in asked

    return answers


async def _define_lookup(
    agent: tactful.Agent, rule: Rule, lookup: Lookup, tools: list[Any]
) -> None:
    # The rule's intent again, as an observation: it matches when the rule does (the same
    # condition and examples) but takes none of the offline tier's few slots for guidelines.
    intent = f"{lookup.id}-intent"
    await agent.create_observation(rule.condition, id=intent, examples=rule.examples)
    # A reply to the rule's own question ("please send your order number") is just the value,
    # which the offline tier cannot match to the rule: a code matcher notices the answer.
    answer = f"{lookup.id}-answer"
    await agent.create_observation(
        f"The customer answers the agent's reply from {rule.id} with what its tool needs",
        id=answer,
    )
    await agent.create_canned_response(lookup.reply.template, id=lookup.reply.id)
    replies = [lookup.reply.id]
    if lookup.unavailable is not None:
        await agent.create_canned_response(lookup.unavailable[1], id=lookup.unavailable[0])
        replies.append(lookup.unavailable[0])
    await agent.create_guideline(
        rule.condition,
        lookup.action,
        id=lookup.id,
        description=f"{rule.id}, once the customer has given what its tool needs",
        examples=rule.examples,
        tools=tools,
        canned_responses=replies,
        priority=rule.priority,
        criticality=rule.criticality,
    )
    await agent.depend(lookup.id, on_any=[intent, answer])
    await agent.prioritize(lookup.id, over=rule.id)


def _port() -> int | None:
    """``PORT`` if set; otherwise the server's own setting (``TACTFUL_PORT``, default 8800)."""
    value = os.environ.get("PORT")
    return int(value) if value else None


async def main() -> None:
    async with tactful.Server(serve=True, port=_port()) as server:
        agent = await define(server)
        print(
            f"{agent.name} ({agent.id}) is serving on {server.url} ({server.runtime.tier_reason})"
        )


if __name__ == "__main__":
    asyncio.run(main())
