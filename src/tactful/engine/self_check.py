"""Self-check: the written draft is checked before it is sent, and revised once if it must be.

Some rules can only be judged on the reply itself ("when the agent is about to promise a
delivery date, say it is an estimate"): matching before the draft exists misses them. Those
guidelines (``about_reply``, or recognised from their wording) are left out of matching and
checked here against the draft, in one model call that also asks whether the draft breaks any
guideline it was meant to follow. When it does, the draft is rewritten once, with the problems
named; the trace keeps both versions. Templates are approved wording and are never rewritten;
this runs only on replies the model wrote, and only for agents that have such guidelines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from pydantic import BaseModel, Field

from tactful.domain import Guideline, RuleChecked, SelfCheck
from tactful.engine.match import Match
from tactful.engine.trace import TraceRecorder
from tactful.llm.base import Generator, Prompt

SELF_CHECK_STAGE = "self_check"

# Conditions about what the agent itself is saying or about to say.
_ABOUT_REPLY = re.compile(
    r"\b(the agent(?:'s)? (?:is about to|reply|replies|response|message|draft|answer)"
    r"|the agent (?:says|said|promises|mentions|offers|quotes|suggests|recommends|apologi[sz]es)"
    r"|(?:the|its|your) (?:reply|response|draft) (?:mentions|contains|includes|promises|says))",
    re.IGNORECASE,
)


def about_reply(guideline: Guideline) -> bool:
    """Whether the guideline's condition concerns the agent's own reply."""
    if guideline.about_reply is not None:
        return guideline.about_reply
    return _reads_as_about_reply(guideline.condition)


@lru_cache(maxsize=65536)
def _reads_as_about_reply(condition: str) -> bool:
    return bool(_ABOUT_REPLY.search(condition))


class RuleCheck(BaseModel):
    rule: int = Field(description="The rule's number as listed")
    applies: bool = Field(description="Whether its condition holds for the draft")
    follows: bool = Field(description="When it applies: whether the draft does what it says")
    note: str = Field(default="", description="What is wrong, in a few words")


class DraftCheck(BaseModel):
    rules: list[RuleCheck] = Field(default_factory=list, description="One entry per RULE")
    broken: list[int] = Field(
        default_factory=list,
        description="Numbers of the GUIDELINES FOLLOWED that the draft breaks",
    )


class Revision(BaseModel):
    message: str = Field(min_length=1, description="The corrected message to the customer")


@dataclass
class CheckOutcome:
    text: str
    revised: bool
    # Guidelines about the reply that applied to the draft (the reply follows them now).
    applied: list[str] = field(default_factory=list)
    record: SelfCheck = field(default_factory=lambda: SelfCheck(draft=""))


async def check_draft(
    generator: Generator,
    rec: TraceRecorder,
    base: Prompt,
    draft: str,
    rules: Sequence[Guideline],
    followed: Sequence[Match],
) -> CheckOutcome:
    """Check ``draft`` against the reply ``rules`` and the ``followed`` guidelines; revise it
    once when a rule that applies is not followed or a followed guideline is broken."""
    listed_rules = "\n".join(
        f"{i}. When {g.condition}, then {g.action}" for i, g in enumerate(rules, start=1)
    )
    listed_followed = "\n".join(
        f"{i}. {m.ranked.guideline.action}" for i, m in enumerate(followed, start=1)
    )
    user = (
        f"{base.user}\n\nDRAFT (the agent's reply, not sent yet):\n{draft}\n\n"
        f"RULES about the reply itself: for each, does its condition hold for the DRAFT, and "
        f"does the draft do what it says?\n{listed_rules or '(none)'}\n\n"
        f'GUIDELINES FOLLOWED: list in "broken" any the draft contradicts.\n'
        f"{listed_followed or '(none)'}"
    )
    prompt = Prompt(
        system="You review a customer-service agent's draft reply before it is sent. "
        "Judge only the draft against the rules given. Answer in JSON.",
        user=user,
    )
    answer = await rec.generate(generator, prompt, DraftCheck, stage=SELF_CHECK_STAGE)
    check = answer.content
    failing = [
        (rules[c.rule - 1], c.note)
        for c in check.rules
        if 1 <= c.rule <= len(rules) and c.applies and not c.follows
    ]
    applied = [rules[c.rule - 1].id for c in check.rules if 1 <= c.rule <= len(rules) and c.applies]
    broken = [
        (followed[n - 1].ranked.guideline, "contradicted")
        for n in dict.fromkeys(check.broken)
        if 1 <= n <= len(followed)
    ]
    record = SelfCheck(
        draft=draft,
        rules=[RuleChecked.model_validate(c.model_dump()) for c in check.rules],
        broken=[g.id for g, _ in broken],
    )
    problems = failing + broken
    if not problems:
        return CheckOutcome(draft, False, applied, record)
    fix = "\n".join(
        f"- {g.action}" + (f" ({note})" if note and note != "contradicted" else "")
        for g, note in problems
    )
    revision = await rec.generate(
        generator,
        Prompt(
            system=base.system,
            user=f"{base.user}\n\nYour draft:\n{draft}\n\nIt does not yet do this; rewrite it "
            f"so that it does, changing nothing else:\n{fix}",
        ),
        Revision,
        stage=SELF_CHECK_STAGE,
    )
    record.revised = revision.content.message
    record.because = [g.id for g, _ in problems]
    return CheckOutcome(revision.content.message, True, applied, record)
