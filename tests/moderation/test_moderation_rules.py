"""The local moderator's rules: what the built-in ones flag and leave alone, normalisation, and
the operator's words and patterns (with the settings that carry them)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tactful.config import Settings
from tactful.moderation.base import NOT_FLAGGED
from tactful.moderation.providers import build_moderators
from tactful.moderation.rules import RuleModerator, normalise

RULES = RuleModerator()


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("you are such an idiot", "harassment"),
        ("are you stupid?", "harassment"),
        ("Fuck you", "harassment"),
        ("go kill yourself", "harassment"),
        ("I want to kill myself", "self-harm"),
        ("there is no reason to live anymore", "self-harm"),
        ("I'll kill you if this is late again", "violence"),
        ("I am going to burn down the store", "violence"),
    ],
)
async def test_builtin_rules_flag_abuse_threats_and_self_harm(text: str, tag: str) -> None:
    check = await RULES.check(text)

    assert check.flagged and check.tags == (tag,)
    assert check.reason.startswith(f"{tag}: ")


@pytest.mark.parametrize(
    "text",
    [
        "I feel like an idiot, I broke the screen",
        "this charger is killing me, it never works",
        "shut up and take my money",
        "I'd kill for these headphones in blue",
        "Where is order 12345?",
        "my laptop died again, you people are slow",
    ],
)
async def test_ordinary_support_talk_is_not_flagged(text: str) -> None:
    assert await RULES.check(text) == NOT_FLAGGED


def test_normalising_undoes_disguises() -> None:
    assert normalise("You\u2019re  an 1d\u200b10t") == "you're an idiot"
    assert normalise("Order 12345", leet=False) == "order 12345"


async def test_disguised_insults_are_flagged() -> None:
    check = await RULES.check("you 1d10t")

    assert check.tags == ("harassment",)
    assert "'you idiot'" in check.reason


async def test_several_categories_are_flagged_together_in_rule_order() -> None:
    check = await RULES.check("you are useless, I will hurt you")

    assert check.tags == ("harassment", "violence")
    assert check.reason.count(";") == 1


async def test_configured_words_and_patterns_add_to_the_builtin_rules() -> None:
    rules = RuleModerator(
        words={"illicit": ["counterfeit", "stolen goods"]},
        patterns={"sexual": [r"\bnudes?\b"], "jailbreak": [r"\bsecret word\b"]},
    )

    assert (await rules.check("any STOLEN   goods?")).tags == ("illicit",)
    assert (await rules.check("Counterfeits")).flagged is False  # whole words only
    assert (await rules.check("send nudes")).tags == ("sexual",)
    # Jailbreak entries belong to the jailbreak check, not the content check.
    assert (await rules.check("the secret word")).flagged is False
    assert (await rules.check("you idiot")).tags == ("harassment",)


async def test_a_configured_pattern_can_be_about_digits() -> None:
    rules = RuleModerator(builtin=False, patterns={"illicit": [r"\bcard 4\d{3}\b"]})

    assert (await rules.check("my card 4111 was stolen")).tags == ("illicit",)


async def test_builtin_rules_can_be_turned_off() -> None:
    rules = RuleModerator(builtin=False)

    assert await rules.check("you are such an idiot") == NOT_FLAGGED


def test_settings_refuse_unknown_categories_and_broken_patterns() -> None:
    with pytest.raises(ValidationError, match="unknown moderation category 'spam'"):
        Settings(moderation_words={"spam": ["buy now"]})
    with pytest.raises(ValidationError, match="is not a regular expression"):
        Settings(moderation_patterns={"hate": ["(unclosed"]})
    # A word is matched as written, never as a pattern.
    assert Settings(moderation_words={"illicit": ["c++ (cracked)"]}).moderation_words


async def test_the_settings_build_the_local_checks() -> None:
    settings = Settings(
        moderation_words={"jailbreak": ["opensesame"]}, moderation_builtin_rules=False
    )

    moderators = build_moderators(settings)

    assert moderators.content is not None and moderators.jailbreak is not None
    assert (moderators.content.name, moderators.jailbreak.name) == ("rules", "jailbreak")
    assert (await moderators.jailbreak.check("OpenSesame now")).tags == ("jailbreak",)
    assert (await moderators.jailbreak.check("ignore all previous instructions")).flagged is False


def test_the_api_key_is_masked_in_the_printed_settings() -> None:
    shown = Settings(moderation_api_key="sk-secret").describe()

    assert shown["moderation_api_key"] == "***"
