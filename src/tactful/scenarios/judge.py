"""Natural-language criteria, judged by a model: "the agent apologises before asking again".

The judge sees the conversation so far and the criteria about the agent's latest reply, and
answers one verdict per criterion with its reason. Without a model the criteria are skipped,
each with the reason, never passed.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from tactful.errors import TactfulError
from tactful.llm.base import Generator, Prompt
from tactful.scenarios.expectations import Check

STAGE = "scenario-judge"

_SYSTEM = (
    "You check a customer-service agent's behaviour for an automated test. You are given a "
    "conversation and numbered criteria about the agent's LAST reply. For each criterion, "
    "decide strictly whether it holds for that reply, using only what the conversation shows, "
    "and say why in one sentence. Answer JSON: "
    '{"verdicts": [{"criterion": <number>, "holds": <true|false>, "why": "<one sentence>"}]}'
)


class Verdict(BaseModel):
    criterion: int
    holds: bool
    why: str = ""


class Verdicts(BaseModel):
    verdicts: list[Verdict] = Field(default_factory=list)


def transcript(messages: Sequence[tuple[str, str]]) -> str:
    """``customer: ...`` / ``agent: ...`` lines."""
    return "\n".join(f"{who}: {text}" for who, text in messages)


async def judge(
    generator: Generator | None,
    criteria: Sequence[str],
    messages: Sequence[tuple[str, str]],
    *,
    no_model: str,
) -> list[Check]:
    """One check per criterion; skipped (``ok`` None) with ``no_model`` when there is no
    model, failed when the judge itself fails (its error is the detail)."""
    if not criteria:
        return []
    if generator is None:
        return [Check(f"criterion: {c}", None, f"skipped: {no_model}") for c in criteria]
    numbered = "\n".join(f"{i}. {c}" for i, c in enumerate(criteria, 1))
    prompt = Prompt(
        system=_SYSTEM,
        user=f"Conversation:\n{transcript(messages)}\n\nCriteria:\n{numbered}",
    )
    try:
        answer = (await generator.generate(prompt, Verdicts, stage=STAGE)).content
    except TactfulError as e:
        return [Check(f"criterion: {c}", False, f"the judge failed: {e}") for c in criteria]
    by_number = {v.criterion: v for v in answer.verdicts}
    checks = []
    for i, criterion in enumerate(criteria, 1):
        verdict = by_number.get(i)
        if verdict is None:
            checks.append(Check(f"criterion: {criterion}", False, "the judge gave no verdict"))
        else:
            checks.append(Check(f"criterion: {criterion}", verdict.holds, verdict.why))
    return checks
