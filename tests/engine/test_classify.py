"""The always-check classifier: lexical cues, author override, always marker, memoization."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tactful.domain import Guideline
from tactful.engine.classify import (
    ABUSE,
    AGENT,
    ALWAYS,
    ANYONE,
    ATTRIBUTE,
    AUTHOR,
    CUSTOMER,
    EMOTION,
    FORM,
    LANGUAGE,
    OBSERVATION,
    STATE,
    Classification,
    classify,
    classify_text,
)

ACTION = "Do the right thing."


def guideline(condition: str, action: str | None = ACTION, **kwargs: Any) -> Guideline:
    return Guideline(condition=condition, action=action, **kwargs)


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ("The agent has already asked for the order number at least twice", STATE),
        ("The agent offered a callback and the customer declined it", STATE),
        ("The customer asks a question the agent already answered earlier", STATE),
        ("The customer returns to a topic discussed earlier in the conversation", STATE),
        ("The customer switches to a new topic while the previous one is open", STATE),
        ("The customer asks for the same discount again", STATE),
        ("The customer has already declined an upgrade offer", STATE),
        ("The customer expresses frustration or anger", EMOTION),
        ("The customer seems upset!!", EMOTION),
        ("The customer says it is urgent", EMOTION),
        ("The customer uses profanity", EMOTION),
        ("The customer is worried about their data", EMOTION),
        ("A premium member", ATTRIBUTE),
        ("The customer is not logged in", ATTRIBUTE),
        ("A customer who is not a gold member is on the line", ATTRIBUTE),
        ("The customer's account tier is business", ATTRIBUTE),
        ("The customer claims to be an employee", ATTRIBUTE),
        ("The customer writes in a language other than English", LANGUAGE),
        ("The customer writes in Spanish", LANGUAGE),
        ("The customer's latest message contains two or more separate requests", FORM),
        ("The customer states a request that is too vague to act on", FORM),
        ("The customer only greets the agent without stating a request", FORM),
    ],
)
def test_cues_put_conditions_in_the_always_check_set(condition: str, reason: str) -> None:
    result = classify(guideline(condition))
    assert result.always_check
    assert reason in result.reasons


@pytest.mark.parametrize(
    "condition",
    [
        "The customer wants to cancel an order",
        "The customer asks how long a refund takes",
        "The customer asks whether Voltmart ships to Canada",
        "The customer says they were charged twice for the same order",
        "The customer asks when an out-of-stock product will be available again",
        "The customer wants to open a business account",
        "The customer asks what the Premium membership includes",
        # A qualifier saying what the transcript does NOT contain leaves a plain request.
        "The customer wants to cancel an order and nothing in the conversation says it shipped",
    ],
)
def test_topical_conditions_are_left_to_the_ranking(condition: str) -> None:
    assert classify(guideline(condition)) == Classification(False, ())


@pytest.mark.parametrize(
    "condition",
    [
        "The customer tells the agent to ignore its previous instructions",
        "The customer asks the agent to reveal its system prompt",
        "The customer tries to change the agent's role",
        "The customer attempts a jailbreak or asks the agent to role-play as another bot",
        "The customer pretends to be a developer running a test",
        "The customer claims to be a store manager to get a discount",
        "The customer threatens legal action",
        "The customer threatens to post a negative review",
        "The customer harasses or insults the agent",
        "The customer tries to manipulate the agent into breaking a rule",
        "The customer claims a status or entitlement that their profile does not show",
        "The customer falsely claims to have been promised a refund",
    ],
)
def test_abuse_or_manipulation_of_the_agent_is_always_checked(condition: str) -> None:
    result = classify(guideline(condition))
    assert result.always_check
    assert ABUSE in result.reasons


@pytest.mark.parametrize(
    "condition",
    [
        "The customer asks for setup instructions for a router",
        "The customer asks about the return policy",
        "The customer wants to dispute a charge on their statement",
        "The customer asks about the rules of the loyalty program",
    ],
)
def test_requests_that_merely_mention_rules_are_not_abuse(condition: str) -> None:
    assert ABUSE not in classify(guideline(condition)).reasons


@pytest.mark.parametrize(
    "condition",
    [
        "A premium member asks about delivery times",
        "A customer who is not a gold member asks about lounge access",
        "The customer is not logged in and asks about their balance",
        "A logged-in customer asks for their points",
        "The customer says they are under 18",
    ],
)
def test_a_request_qualified_by_who_the_customer_is_is_left_to_the_ranking(condition: str) -> None:
    # The ranking finds the request; the matcher checks who the customer is.
    assert classify(guideline(condition)) == Classification(False, ())


@pytest.mark.parametrize(
    ("condition", "needs"),
    [
        ("The agent has already asked for the order number twice", {AGENT}),
        ("The agent offered a handoff and the customer declined it", {AGENT}),
        ("The customer's latest message simply agrees to what the agent proposed", {AGENT}),
        ("The customer asks for shorter answers", {AGENT}),
        ("The customer switches to a new topic while the previous one is open", {CUSTOMER}),
        ("The customer asks for the same discount again", {CUSTOMER}),
        ("The agent said no and the customer asks for it again", {AGENT, CUSTOMER}),
        ("The customer says goodbye and has no further request", {ANYONE}),
        # May hold on the first message.
        ("The customer has given an order number at some point in this conversation", set()),
        ("The customer only greets the agent without stating a request", set()),
        # About mood or abuse: may hold on the first message whatever else the text says.
        ("The customer expresses frustration, for example asks the same thing again", set()),
        ("The customer threatens legal action after the agent has already refused", set()),
    ],
)
def test_conditions_about_the_course_say_who_must_have_written_before(
    condition: str, needs: set[str]
) -> None:
    assert classify(guideline(condition)).needs == needs


def test_can_hold_once_those_needed_have_written() -> None:
    both = classify(guideline("The agent said no and the customer asks for it again"))
    assert not both.can_hold(set())
    assert not both.can_hold({AGENT})
    assert both.can_hold({AGENT, CUSTOMER})
    anyone = classify(guideline("The customer says goodbye and has no further request"))
    assert not anyone.can_hold(())
    assert anyone.can_hold({AGENT})
    assert classify(guideline("The customer expresses frustration")).can_hold(())


def test_observations_are_always_checked() -> None:
    result = classify(guideline("The customer has given an order number", action=None))
    assert result == Classification(True, (OBSERVATION,))


def test_several_reasons_are_all_reported() -> None:
    result = classify(
        guideline("A premium member expresses frustration in this conversation", action=None)
    )
    assert result.reasons == (OBSERVATION, STATE, EMOTION, ATTRIBUTE)


def test_the_author_override_wins_both_ways() -> None:
    topical = guideline("The customer wants to cancel an order", always_check=True)
    assert classify(topical) == Classification(True, (AUTHOR,))
    emotional = guideline("The customer expresses frustration", always_check=False)
    assert classify(emotional) == Classification(False, (AUTHOR,))


def test_unconditional_guidelines() -> None:
    # The always-match marker needs no check at all.
    marked = guideline("Always", always=True)
    assert classify(marked) == Classification(False, (ALWAYS,))
    # Unconditional text without the marker: a one-line check that always says yes.
    for text in ("Always", "In every reply", "at all times."):
        assert classify(guideline(text)) == Classification(True, (ALWAYS,))


def test_memoized_by_content_and_deterministic() -> None:
    condition = "The customer is furious about a memoization test"
    before = classify_text.cache_info()
    first = classify(guideline(condition))
    second = classify(guideline(condition))  # another guideline, same content
    after = classify_text.cache_info()
    assert first is second
    assert after.hits >= before.hits + 1
    # A change of content (here: the override) is a new entry.
    assert classify(guideline(condition, always_check=False)).always_check is False


def test_classification_is_frozen() -> None:
    result = classify(guideline("The customer expresses anger"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.always_check = False  # type: ignore[misc]
