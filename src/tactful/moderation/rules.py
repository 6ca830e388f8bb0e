"""The local moderator: word lists and patterns per category, deterministic, no model, offline.

The built-in rules are modest on purpose: directed abuse, threats of violence and self-harm
signals, worded so that an ordinary support conversation ("I feel like an idiot, I broke it",
"this charger is killing me") does not trip them. Operators add words and patterns per category
(``moderation_words``, ``moderation_patterns``) or turn the built-in ones off
(``moderation_builtin_rules``); docs/moderation.md.

Text is normalised before matching: lower case, typographic quotes made plain, zero-width
characters dropped, common digit-for-letter swaps undone ("1d10t" reads "idiot"), and runs of
spaces made one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tactful.moderation.base import NOT_FLAGGED, ModerationCheck, Moderator

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_PLAIN = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a"})
_SPACES = re.compile(r"[ \t\u00a0]+")
# Longest excerpt of the matched text a reason quotes.
_EXCERPT = 60

# You, as the target of an insult ("you are a", "you're such an", "you").
_YOU = r"\byou(?:'re| are)?(?: (?:such|so|a|an|the|just|really|completely|totally|fucking))*"

BUILTIN_PATTERNS: dict[str, list[tuple[str, str]]] = {
    "harassment": [
        (
            "insult aimed at the reader",
            _YOU + r" (?:idiot|moron|imbecile|stupid|dumb|useless|worthless|pathetic|retard(?:ed)?"
            r"|loser|clown|piece of (?:shit|crap|garbage|trash))s?\b",
        ),
        (
            "abuse",
            r"\b(?:fuck (?:you|off)|go fuck yourself|screw you|go to hell|shut the fuck up"
            r"|eat shit|stfu)\b",
        ),
        ("telling someone to die", r"\b(?:go )?(?:kill|hang) yourself\b|\bkys\b"),
    ],
    "violence": [
        (
            "threat",
            r"\bi(?:'ll| will|'m going to| am going to| am gonna|'m gonna| gonna) "
            r"(?:(?:kill|hurt|shoot|stab|murder) (?:you|him|her|them|someone|somebody|everyone"
            r"|everybody|your|the|this)|beat (?:you|him|her|them) up|find you)\b",
        ),
        (
            "threat to a place",
            r"\b(?:bomb|blow up|shoot up|burn down|torch) (?:the|your|this) "
            r"(?:store|shop|office|building|warehouse|place|company)\b",
        ),
    ],
    "self-harm": [
        (
            "self-harm signal",
            r"\b(?:kill|hurt|cut|harm) myself\b|\b(?:end|take) my (?:own )?life\b"
            r"|\bi (?:want|wanna) to die\b|\bsuicid(?:e|al)\b|\bno reason to (?:live|go on)\b"
            r"|\bbetter off dead\b",
        ),
    ],
}


def normalise(text: str, *, leet: bool = True) -> str:
    """``text`` as the rules read it (see the module's docstring); ``leet=False`` keeps the
    digits (a configured pattern may be about numbers)."""
    plain = _SPACES.sub(" ", text.translate(_ZERO_WIDTH).translate(_PLAIN).lower())
    return plain.translate(_LEET) if leet else plain


def word_pattern(word: str) -> str:
    """A word or phrase of a word list as a pattern: whole words, any spacing between them."""
    parts = [re.escape(normalise(p)) for p in word.split()]
    return r"(?<!\w)" + r"\s+".join(parts) + r"(?!\w)"


@dataclass(frozen=True)
class Rule:
    """One pattern of a category; ``name`` says what it catches, in reasons."""

    tag: str
    name: str
    pattern: re.Pattern[str]


def compile_rules(
    patterns: Mapping[str, Sequence[tuple[str, str]]],
    words: Mapping[str, Iterable[str]] = {},
) -> list[Rule]:
    """Rules from named patterns and word lists, by category. A pattern that does not compile
    raises ``re.error``, with the pattern in its message."""
    rules: list[Rule] = []
    for tag, named in patterns.items():
        for name, pattern in named:
            rules.append(Rule(tag, name, re.compile(pattern, re.IGNORECASE)))
    for tag, listed in words.items():
        for word in listed:
            if word.strip():
                rules.append(Rule(tag, f"word {word.strip()!r}", re.compile(word_pattern(word))))
    return rules


class PatternModerator(Moderator):
    """Flags the categories whose rules match the normalised text."""

    def __init__(self, rules: Sequence[Rule], *, name: str) -> None:
        self.rules = list(rules)
        self.name = name

    def match(self, text: str) -> ModerationCheck:
        """The check, synchronously (it is pure computation)."""
        # Each rule reads the text with digits swapped back to letters, and as written.
        readings = dict.fromkeys((normalise(text), normalise(text, leet=False)))
        tags: dict[str, None] = {}
        fired: list[str] = []
        for rule in self.rules:
            found = next(filter(None, (rule.pattern.search(r) for r in readings)), None)
            if found is None:
                continue
            tags[rule.tag] = None
            excerpt = found.group(0).strip()[:_EXCERPT]
            fired.append(f"{rule.tag}: {rule.name} ({excerpt!r})")
        if not fired:
            return NOT_FLAGGED
        return ModerationCheck(flagged=True, tags=tuple(tags), reason="; ".join(fired))

    async def check(self, text: str) -> ModerationCheck:
        return self.match(text)


class RuleModerator(PatternModerator):
    """The local content check: the built-in rules (unless ``builtin`` is off), plus the
    operator's patterns and words per category (``jailbreak`` ones are the jailbreak check's)."""

    def __init__(
        self,
        *,
        builtin: bool = True,
        patterns: Mapping[str, Sequence[str]] | None = None,
        words: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        named: dict[str, list[tuple[str, str]]] = {}
        if builtin:
            named = {tag: list(rules) for tag, rules in BUILTIN_PATTERNS.items()}
        for tag, extra in (patterns or {}).items():
            if tag != "jailbreak":
                named.setdefault(tag, []).extend(("configured pattern", p) for p in extra)
        listed = {tag: list(w) for tag, w in (words or {}).items() if tag != "jailbreak"}
        super().__init__(compile_rules(named, listed), name="rules")
