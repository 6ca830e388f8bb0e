"""The writing prompt: what the model is told when it writes, fills or picks a turn's reply
(``engine/compose.py`` decides how the reply is made; this, what the writer knows)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tactful.domain import CannedResponse
from tactful.engine.context import TurnContext
from tactful.engine.match import Match
from tactful.engine.tools import ToolFindings
from tactful.llm.base import OnText, Prompt


@dataclass(frozen=True)
class TurnExtras:
    """What else the reply may draw on this turn, besides guidelines and tool results."""

    # Journeys the customer interrupted ("title: step").
    paused: Sequence[str] = ()
    # Relevant glossary terms and retrievers' data, one "- ..." line each.
    glossary: str = ""
    retrieved: str = ""
    # Templates retrievers offered (always candidates this turn).
    templates: Sequence[CannedResponse] = ()
    # Where a streamed fluid reply's pieces go as they arrive (None: no streaming).
    stream: OnText | None = None
    # The agent's capabilities relevant to the turn, one "- title: description" line each.
    capabilities: str = ""


def writing_prompt(
    ctx: TurnContext,
    actionable: Sequence[Match],
    tools: ToolFindings | None = None,
    extras: TurnExtras | None = None,
    *,
    plain: bool = False,
) -> Prompt:
    """The writing prompt; ``plain`` asks for the message as plain text (streaming)
    instead of JSON."""
    extras = extras or TurnExtras()
    language = (
        "Write in the language of the customer's latest message."
        if ctx.agent.reply_in_customer_language
        else "Write in the language of these instructions, whatever the customer writes in."
    )
    system = (
        f"You are {ctx.agent.name}, a customer-service agent. {ctx.agent.description or ''}\n"
        "Write the agent's next message. Follow every guideline given; do not invent facts, "
        f"prices, policies or order details that are not in the conversation. {language} "
        + ("Answer with the message only, as plain text." if plain else "Answer in JSON.")
    )
    rules = "\n".join(
        f"- When {m.ranked.guideline.condition}, then {m.ranked.guideline.action}"
        for m in actionable
    )
    history = "\n".join(f"{u.role}: {u.text}{u.note}" for u in ctx.window())
    user = (
        f"Customer: {ctx.customer.name}\n\nGuidelines to follow now:\n{rules or '- (none)'}\n\n"
        f"Glossary:\n{extras.glossary or '- (none)'}\n\nConversation:\n{history}"
    )
    if extras.capabilities:
        user += (
            "\n\nWhat you can do (offer these when they help; never promise what is not "
            f"here or in the guidelines):\n{extras.capabilities}"
        )
    if ctx.proactive is not None:
        user += (
            "\n\nThe customer has not written anything new: this message is the agent's "
            f"own initiative ({ctx.proactive.kind.value})."
        )
    if tools and tools.notes:
        user += f"\n\nWhat we know (context variables):\n{tools.notes}"
    if tools and tools.for_prompt():
        user += f"\n\nTools this turn:\n{tools.for_prompt()}"
    if extras.retrieved:
        user += f"\n\nRetrieved for this turn:\n{extras.retrieved}"
    if extras.paused:
        waiting = "\n".join(f"- {p}" for p in extras.paused)
        user += (
            "\n\nProcedures on hold (the customer turned to something else; answer that, "
            f"then offer to carry on where it stopped):\n{waiting}"
        )
    return Prompt(system=system, user=user)
