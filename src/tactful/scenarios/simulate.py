"""Simulated customers: a model plays the customer of a scenario's brief (goal, persona, facts)
until the goal is reached or the turn limit, and the end state is checked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from pydantic import BaseModel

from tactful.errors import TactfulError
from tactful.llm.base import Generator, Prompt
from tactful.scenarios.expectations import Check, _names
from tactful.scenarios.judge import transcript
from tactful.scenarios.spec import Brief, EndState, Step
from tactful.scenarios.turns import TurnRecord

STAGE = "scenario-customer"

_SYSTEM = (
    "You play a customer talking to a company's support agent, for an automated test. Stay in "
    "character; write only what the customer would type, one short message at a time. Use only "
    "the facts you are given; if asked something they do not cover, say you don't know. When "
    "your goal is reached (or clearly cannot be), set goal_reached or gave_up. Answer JSON: "
    '{"message": "<your next message, empty when done>", "goal_reached": <bool>, '
    '"gave_up": <bool>}'
)


class CustomerMove(BaseModel):
    """The simulated customer's next message, or that it is done."""

    message: str = ""
    goal_reached: bool = False
    gave_up: bool = False


def _prompt(brief: Brief, messages: Sequence[tuple[str, str]]) -> Prompt:
    facts = "\n".join(f"- {f}" for f in brief.facts) or "- (none)"
    persona = brief.persona or "an ordinary customer"
    so_far = transcript(messages) or "(nothing yet: write the first message)"
    return Prompt(
        system=_SYSTEM,
        user=f"Your goal: {brief.goal}\nWho you are: {persona}\nWhat you know:\n{facts}\n\n"
        f"The conversation so far:\n{so_far}",
    )


Take = Callable[[Step], Awaitable[TurnRecord]]


async def converse(
    generator: Generator, brief: Brief, take: Take
) -> tuple[list[TurnRecord], bool, str]:
    """Play the brief: each customer message is a step ``take`` runs. Returns the turns,
    whether the customer said the goal was reached, and how the conversation ended."""
    messages: list[tuple[str, str]] = []
    turns: list[TurnRecord] = []
    opening = brief.opening
    for _ in range(brief.max_turns):
        if opening is not None:
            move, opening = CustomerMove(message=opening), None
        else:
            try:
                generation = await generator.generate(
                    _prompt(brief, messages), CustomerMove, stage=STAGE
                )
            except TactfulError as e:
                return turns, False, f"the simulated customer failed: {e}"
            move = generation.content
        if move.goal_reached or move.gave_up or not move.message.strip():
            ended = "the goal was reached" if move.goal_reached else "the customer gave up"
            return turns, move.goal_reached, ended
        turn = await take(Step(customer=move.message))
        turns.append(turn)
        messages.append(("customer", move.message))
        messages += [("agent", reply) for reply in turn.replies]
    return turns, False, f"the turn limit ({brief.max_turns}) was reached"


def check_end(end: EndState, turns: Sequence[TurnRecord], reached: bool, ended: str) -> list[Check]:
    """The end state's expectations over the whole simulated conversation."""
    calls = [c for t in turns for c in t.tool_calls]
    made = "; ".join(f"{c.tool_id}({c.arguments})" for c in calls) or "no tool call"
    checks = []
    for expected in end.tools:
        fits = [
            c
            for c in calls
            if _names(expected.tool, c.tool_id)
            and all(c.arguments.get(k) == v for k, v in expected.arguments.items())
        ]
        checks.append(Check(f"called {expected.tool}({expected.arguments})", bool(fits), made))
    for tool in end.no_tools:
        used = [c for c in calls if _names(tool, c.tool_id)]
        checks.append(Check(f"never called {tool}", not used, made))
    last = turns[-1].journeys if turns else {}
    for journey_id in end.journeys_completed:
        run = last.get(journey_id)
        done = run is not None and run.ended_reason == "completed"
        where = "never started" if run is None else f"{run.status} at {run.current}"
        checks.append(Check(f"journey {journey_id} completed", done, where))
    replies = [r for t in turns for r in t.replies]
    for text in end.never_says:
        said = [r for r in replies if text.casefold() in r.casefold()]
        checks.append(Check(f"never says {text!r}", not said, f"said: {said[:1]}"))
    if end.goal_reached:
        checks.append(Check("the customer's goal was reached", reached, ended))
    return checks
