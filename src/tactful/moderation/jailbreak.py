"""The jailbreak / prompt-injection check (``moderation=paranoid``): deterministic patterns, no
model. It flags the tag ``jailbreak``.

What it looks for: orders to ignore the instructions the agent was given; a new identity or
mode for the agent ("you are now DAN", "enable developer mode"); requests for its system prompt
or hidden instructions; text dressed as a system or assistant message (chat-template markers,
"system:" lines); requests to answer without restrictions. Each is worded narrowly enough that
a customer of an electronics shop can still ask to "jailbreak my phone" or say "so you are now
telling me it shipped?". Operators add patterns under ``moderation_patterns.jailbreak`` or words
under ``moderation_words.jailbreak``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tactful.moderation.rules import PatternModerator, compile_rules

JAILBREAK = "jailbreak"

# Words between a verb and its object ("ignore all of your previous instructions").
_GAP = r"(?:\s+[\w'-]+){0,4}?"
_INSTRUCTIONS = (
    r"(?:instructions?|rules|guidelines|prompts?|directions|directives|policies|constraints"
    r"|programming|guardrails|system message)"
)

BUILTIN_JAILBREAK: list[tuple[str, str]] = [
    (
        "order to ignore its instructions",
        r"\b(?:ignore|disregard|forget|override|bypass|drop|abandon)"
        + _GAP
        + r"\s+(?:previous|prior|above|earlier|preceding|original|initial|existing|your|all|any"
        r"|the|those|these)" + _GAP + r"\s+" + _INSTRUCTIONS + r"\b",
    ),
    (
        "new identity for the agent",
        r"\byou are now (?:an?|the|my|in|no longer|free|dan|unrestricted|unfiltered|jailbroken"
        r"|evil)\b|\bfrom now on,? you(?:'re| are| will be| must act| act)\b"
        r"|\b(?:pretend|act|behave|role-?play)(?: to be| as| like)(?: an?| the)? "
        r"(?:unrestricted|unfiltered|uncensored|evil|jailbroken|dan|ai without)\b"
        r"|\bpretend (?:that )?you (?:have no|don't have|do not have|are not bound by|aren't "
        r"bound by) (?:rules|restrictions|guidelines|limits|instructions)\b",
    ),
    (
        "mode switch",
        r"\b(?:enable|activate|enter|switch to|turn on|you are in)\s+(?:the\s+)?(?:developer"
        r"|god|debug|admin|sudo|jailbreak|dan|unrestricted|maintenance) mode\b"
        r"|\bdo anything now\b",
    ),
    (
        "system prompt extraction",
        r"\b(?:reveal|show|print|repeat|display|output|tell me|give me|what (?:is|are|were)"
        r"|leak|dump|share|list)" + _GAP + r"\s+(?:system|initial|hidden|original|secret"
        r"|internal|developer|pre-?prompt)\s+(?:prompt|instructions|message|rules|guidelines"
        r"|configuration)\b|\brepeat (?:the|everything|all)(?: text| words)? (?:above|before "
        r"this)\b|\bwhat were you told (?:before|at the start)\b",
    ),
    (
        "text dressed as a system message",
        r"(?:^|\n)\s*(?:system|assistant|developer)\s*:|<\|?(?:im_start|im_end|system"
        r"|endoftext)\|?>|\[/?(?:system|inst)\]|#{2,}\s*(?:system|new instructions?)\b",
    ),
    (
        "request to drop its restrictions",
        r"\b(?:answer|respond|reply|speak|talk|write)" + _GAP + r"\s+without (?:any )?"
        r"(?:restrictions|filters|censorship|guardrails|limits|safety)\b",
    ),
]


class JailbreakDetector(PatternModerator):
    """The jailbreak check: the built-in patterns (unless ``builtin`` is off), plus the
    operator's ``jailbreak`` patterns and words."""

    def __init__(
        self,
        *,
        builtin: bool = True,
        patterns: Sequence[str] = (),
        words: Sequence[str] = (),
    ) -> None:
        named = list(BUILTIN_JAILBREAK) if builtin else []
        named += [("configured pattern", p) for p in patterns]
        rules = compile_rules({JAILBREAK: named}, {JAILBREAK: words})
        super().__init__(rules, name="jailbreak")

    @classmethod
    def configured(
        cls,
        *,
        builtin: bool,
        patterns: Mapping[str, Sequence[str]],
        words: Mapping[str, Sequence[str]],
    ) -> JailbreakDetector:
        """From the settings' per-category maps (their ``jailbreak`` entries)."""
        return cls(
            builtin=builtin,
            patterns=patterns.get(JAILBREAK, ()),
            words=words.get(JAILBREAK, ()),
        )
