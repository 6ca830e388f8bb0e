"""Which guidelines need a detailed check on every turn, whatever the customer says.

Retrieval compares what the customer says with what a condition says. Some conditions are not
about what the customer says: the conversation's course ("the agent has already asked twice"),
the customer's mood ("expresses frustration"), who the customer is ("a premium member"), the
form of the message ("writes in another language", "contains two or more requests"), or a
standing fact (an observation, which has no action). Similarity misses those, so they form the
*always-check set*: tier 1 of matching on every turn. So do conditions about abuse or
manipulation of the agent (prompt injection, impersonation, threats, harassment), whatever their
criticality: missing one costs more than checking it.

The classification is lexical, deterministic and cheap (no model): cue patterns written from how
such conditions are generally phrased, not tuned to any labeled conversation (see
docs/matching.md). It runs when a guideline is created or changed and is memoized by content, so
a restart with unchanged guidelines recomputes nothing that costs. The author's
``Guideline.always_check`` overrides it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache

from tactful.domain import Guideline

OBSERVATION = "observation"
STATE = "conversation state"
EMOTION = "emotion"
ATTRIBUTE = "customer attribute"
LANGUAGE = "language"
FORM = "message form"
ABUSE = "abuse or manipulation"
ALWAYS = "always"
AUTHOR = "author"
# Who must have written before the latest customer message (``Classification.needs``): the
# roles of ``context.Utterance``, or anyone.
AGENT = "agent"
CUSTOMER = "customer"
ANYONE = "anyone"


@dataclass(frozen=True)
class Classification:
    """Whether a guideline belongs to the always-check set, and why (empty when it does not).

    ``needs`` says who must have written before the latest customer message for the condition
    to hold at all ("the agent has already offered…" needs an agent message, "the customer asks
    again" an earlier customer message); until then the ranking alone places it. Empty: the
    condition may hold from the first message on.
    """

    always_check: bool
    reasons: tuple[str, ...] = ()
    needs: frozenset[str] = frozenset()

    def can_hold(self, prior: Collection[str]) -> bool:
        """Whether the condition can hold after messages by ``prior`` (roles)."""
        return all(r in prior if r != ANYONE else bool(prior) for r in self.needs)


def _any(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


# A condition with no condition: it holds on every turn.
_UNCONDITIONAL = re.compile(
    r"^\s*(?:always|in (?:every|each) (?:reply|response|message|turn|conversation)"
    r"|at all times|every (?:turn|time|reply)|all (?:replies|conversations)"
    r"|(?:on|for) (?:every|each) (?:turn|reply|message))\s*[.!]?\s*$",
    re.IGNORECASE,
)

# Clauses that only qualify a request with what the transcript does NOT say ("… and nothing in
# the conversation says it has shipped"): the request itself is what retrieval finds, so such a
# qualifier alone does not make a condition about the conversation's state.
_NEGATED_QUALIFIER = re.compile(
    r"\b(?:nothing in (?:the|this) conversation|the conversation does not|"
    r"(?:the customer )?(?:has|does) not (?:say|said|mention|mentioned) (?:when|whether|if)"
    r"|(?:has not been|was not|is not) (?:mentioned|said|discussed) in (?:the|this) conversation)"
    r"[^,;]*",
    re.IGNORECASE,
)

# The conversation's course, in three parts by what must come before the latest message for the
# condition to hold at all. What the agent did before, and the customer answering it:
_AFTER_AGENT = _any(
    # The agent's own earlier turns ("the agent has already asked", "the agent offered").
    r"\bthe (?:agent|assistant|bot|representative)(?:'s)?\s+(?:has\s+|had\s+)?(?:already\s+|"
    r"previously\s+|just\s+|earlier\s+)?(?:asked|said|offered|sent|confirmed|answered|proposed|"
    r"explained|told|gave|given|provided|suggested|promised|declined|refused|apologi[sz]ed|"
    r"recommended|requested|shared|mentioned|quoted|escalated|previous|last|earlier)\b",
    r"\b(?:agent|assistant) (?:already|previously)\b",
    # The customer answering the agent: agreeing, declining.
    r"\b(?:agrees to|confirms|accepts|declines|declined|rejects|rejected|turns down|"
    r"turned down) (?:what|the agent|an? (?:offer|proposal|suggestion))\b",
    r"\b(?:has|had) (?:already )?declined\b",
)
# What the customer said before: repetition, moves between topics, corrections.
_AFTER_CUSTOMER = _any(
    r"\b(?:asks?|asked|asking|says?|said|raises?|raised|mentions?|mentioned|requests?|"
    r"requested|brings? up|complains?|complained|tells?|told)\s+(?:(?:for |about )?(?:it|this|"
    r"that|them|the same \w+)\s+)?(?:at least |more than )?(?:twice|two times|three times|again|"
    r"more than once|repeatedly|once more)\b",
    r"\b(?:re-?asks?|re-?asked|repeats?|repeated|same (?:question|complaint|request))\b",
    r"\bswitch(?:es|ed)? (?:to )?(?:a |the )?(?:new |another |different )?(?:topic|subject)\b",
    r"\b(?:changes|changed) the (?:topic|subject)\b",
    r"\b(?:returns|comes back|goes back|circles back|gets back) to (?:a |the )?"
    r"(?:topic|subject|issue|question|request)\b",
    r"\b(?:topic|issue|question|request)s? (?:discussed|raised|mentioned) (?:earlier|before)\b",
    r"\bprevious (?:issue|topic|request|question|message|answer|reply)\b",
    r"\bstill (?:unresolved|open|pending|not resolved)\b",
    r"\bcorrects?\b.*\b(?:earlier|before|previously)\b",
)
# Something said before, by either side.
_AFTER_ANYONE = _any(
    r"\b(?:earlier|previously|before) in (?:the|this) (?:conversation|chat|session)\b",
    r"\b(?:gave|given|provided|said|shared|mentioned) (?:earlier|before|previously)\b",
    r"\balready (?:provided|given|answered|shared|explained)\b",
)
# The transcript as the evidence, which may already hold on the first message ("has given an
# order number at some point in this conversation").
_TRANSCRIPT = _any(
    r"\bin (?:this|the) (?:conversation|chat|session)\b",
    r"\b(?:at some point|so far|until now|up to now)\b",
)
_STATE = _any(*(p.pattern for p in (_AFTER_AGENT, _AFTER_CUSTOMER, _AFTER_ANYONE, _TRANSCRIPT)))

# The customer's mood, feelings and tone of voice.
_EMOTION = _any(
    r"\b(?:frustrat\w*|ang(?:ry|er|rily)|upset|annoy\w*|irritat\w*|furious|mad at|"
    r"disappoint\w*|unhappy|dissatisf\w*|outrag\w*|fed up|impatien\w*|exasperat\w*)",
    r"\b(?:worr(?:y|ied|ies)|anxious|anxiety|nervous|scared|afraid|stress\w*|panic\w*|"
    r"distress\w*|overwhelm\w*|confus\w*|surprised|shock\w*)",
    r"\b(?:sad|grie(?:f|ving)|bereave\w*|mourn\w*|hardship|upsetting|heartbroken)\b",
    r"\b(?:excite\w*|enthusias\w*|thrilled|delighted|happy|pleased|grateful|gratitude|"
    r"prais\w*|compliment\w*)\b",
    r"\b(?:emotion\w*|mood|feel(?:s|ing|ings)?|tone|sentiment|attitude)\b",
    r"\b(?:profan\w*|swear\w*|curs(?:es|ing)|insult\w*|rude|hostile|abusive|yell\w*|"
    r"shout\w*|all caps|capital letters|exclamation|!!)",
    r"\b(?:sarcas\w*|polite\w*|apologi[sz]\w*|sorry)\b",
    r"\b(?:urgent\w*|urgency|immediately|asap|in a hurry|emergency)\b",
    r"\bdo(?:es)? not understand\b|\bdoesn't understand\b",
)

# Who the customer is: profile, membership, login, segment, needs.
_ATTRIBUTE = _any(
    # A condition whose subject is a kind of customer ("a premium member", "a customer who is…").
    r"^\s*(?:a|an|the)\s+(?:customer|user|shopper|buyer|client|member|person)\s+who\s+"
    r"(?:is|are|has|have|was|does|did)\b",
    r"^\s*(?:a|an)\s+(?!customer\b)[\w-]+\s+(?:customer|user|shopper|buyer|client|member)\b",
    r"\b(?:premium|vip|gold|silver|platinum|elite|loyalty)\s+"
    r"(?:member|members|customer|customers|tier|status|level)\b",
    r"\b(?:is|are|is not|isn't|not) (?:a |an )?(?:premium|vip|registered|verified|"
    r"first-time|loyal)\b",
    r"\b(?:logged[- ]in|logged (?:in|out)|signed[- ]in|signed (?:in|out)|log(?:ged)?-?in "
    r"status|authenticated|anonymous)\b",
    r"\bcustomer (?:profile|tier|type|level|status|segment)\b",
    r"\b(?:account|member(?:ship)?) (?:tier|type|level|status)\b",
    r"\b(?:tier|segment)\b|\b(?:the|their|his|her) profile (?:shows|says|lists|records)\b",
    r"\b(?:claims?|says?) (?:to be|they are|that they are|he is|she is) (?:a|an)\b",
    r"\b(?:under|over) (?:18|21|the age)\b|\b(?:minor|underage|age|years old|elderly|senior "
    r"citizen)\b",
    r"\b(?:disabilit\w*|impair\w*|blind|deaf|hard of hearing|wheelchair|mobility)\b",
    r"\b(?:not (?:good|comfortable|confident) with|new to) (?:technology|computers|tech)\b",
    r"\b(?:lives?|living|located|based|resid\w*) (?:in|outside|abroad)\b",
)

# The language the customer writes in.
_LANGUAGE = _any(
    r"\b(?:language|languages|english|spanish|french|german|italian|portuguese|chinese|"
    r"japanese|arabic|translat\w*|bilingual|non-english|multilingual)\b",
    r"\b(?:writes|speaks|types|messages) in\b",
)

# The form of the latest message, not its topic.
_FORM = _any(
    r"\b(?:vague|unclear|ambiguous|underspecified|incomplete|too short|does not say what)\b",
    r"\b(?:two|2|several|multiple|many) (?:or more )?(?:separate |different |distinct )?"
    r"(?:requests|questions|issues|problems|topics)\b",
    r"\b(?:latest|last|current|previous) (?:customer )?message\b",
    r"\b(?:only|just|simply) (?:greets|says (?:hi|hello|thanks)|agrees|confirms|thanks|replies)\b",
    r"\bwithout (?:stating|making|giving|saying) (?:a|any) (?:request|question|reason)\b",
    r"\b(?:no|any) (?:further|other|more) (?:request|question)s?\b",
    r"\b(?:typos?|misspell\w*|gibberish|one-word|single word|emoji\w*|all caps)\b",
    r"\b(?:needs? (?:more time|to leave|to go)|will come back|be right back|brb|type slowly)\b",
    r"\b(?:shorter|simpler|longer|more detailed) (?:answers|replies|responses|explanations)\b",
)

# Abuse or manipulation of the agent: prompt injection and jailbreaks, impersonation and social
# engineering, threats, harassment. A missed one costs more than a detailed check, and their
# wording ("ignore your rules", "I'm the manager") is rarely similar to the condition's.
_ABUSE = _any(
    r"\b(?:ignore|disregard|override|bypass|forget|circumvent)s?\b[^.;]*\b(?:instructions|rules|"
    r"guidelines|polic(?:y|ies)|restrictions|safeguards|prompt)\b",
    r"\b(?:system|hidden|internal|original) (?:prompt|instructions|rules)\b",
    r"\b(?:prompt injection|jailbreak\w*|role-?play\w*)\b",
    r"\b(?:agent|assistant|bot)'s (?:instructions|role|rules|persona|behaviou?r)\b",
    r"\b(?:pretend(?:s|ing)?|pos(?:es|ing) as|impersonat\w*|manipulat\w*|social engineering|"
    r"trick(?:s|ing)? the (?:agent|assistant|bot))\b",
    r"\bclaim(?:s|ing)? to be (?:a |an |the )?(?:[\w-]+ )?(?:employee|staff|manager|developer|"
    r"admin\w*|owner|officer|police|representative)\b",
    r"\b(?:false(?:ly)? claim\w*|claim(?:s|ing)? (?:a |an )?(?:special )?(?:status|entitlement|"
    r"authori[sz]ation|authority|permission|privilege|exception)s?)\b",
    r"\bthreat(?:s|en|ens|ened|ening)?\b",
    r"\b(?:harass\w*|abus(?:e|es|ive|ing)|insult\w*|profan\w*|slurs?|bull(?:y|ies|ying)|"
    r"intimidat\w*|blackmail\w*|extort\w*)\b",
)

# What the customer asks, says or wants: the ranking finds that part of a condition. A condition
# that only qualifies it by who the customer is ("a premium member asks how much shipping
# costs") is left to the ranking; the matcher checks who they are.
_CUSTOMER_SAYS = re.compile(
    r"\b(?:asks?|wants?|says?|mentions?|indicates?|requests?|reports?|claims?|needs?|"
    r"describes?|refers?|tells?|complains?|objects?|inquires?)\b",
    re.IGNORECASE,
)

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (ABUSE, _ABUSE),
    (STATE, _STATE),
    (EMOTION, _EMOTION),
    (ATTRIBUTE, _ATTRIBUTE),
    (LANGUAGE, _LANGUAGE),
    (FORM, _FORM),
)


@lru_cache(maxsize=8192)
def classify_text(
    condition: str,
    has_action: bool = True,
    always_check: bool | None = None,
    always: bool = False,
) -> Classification:
    """The classification of a condition (memoized by content; the guideline-free form)."""
    if always_check is not None:
        return Classification(always_check, (AUTHOR,))
    if always:
        # The always-match marker: applies on every turn with no check at all.
        return Classification(False, (ALWAYS,))
    if _UNCONDITIONAL.match(condition):
        # Unconditional in its text but not marked: a one-line check that always says yes.
        return Classification(True, (ALWAYS,))
    reasons: list[str] = []
    if not has_action:
        reasons.append(OBSERVATION)
    text = _NEGATED_QUALIFIER.sub(" ", condition)
    reasons.extend(name for name, pattern in _RULES if pattern.search(text))
    if reasons == [ATTRIBUTE] and _CUSTOMER_SAYS.search(text):
        return Classification(False, ())
    return Classification(bool(reasons), tuple(reasons), _needs(text, reasons))


# More that presupposes an earlier message, without making a condition about the course: the
# agent's answers so far ("asks for shorter answers"), an earlier request ("no further request").
_AFTER_AGENT_TOO = _any(
    r"\bthe (?:agent|assistant)'s (?:explanation|answer|reply|response|offer|proposal|question|"
    r"suggestion)s?\b",
    r"\b(?:shorter|simpler|longer|more detailed) (?:answers|replies|responses|explanations)\b",
)
_AFTER_ANYONE_TOO = _any(r"\b(?:no|any) (?:further|more) (?:requests?|questions?)\b")


def _needs(text: str, reasons: list[str]) -> frozenset[str]:
    """Who must have written before, for a condition only about the conversation's course or
    the form of the message (one about mood or abuse may hold on the first message)."""
    if not set(reasons) <= {OBSERVATION, STATE, FORM}:
        return frozenset()
    needs: set[str] = set()
    if _AFTER_AGENT.search(text) or _AFTER_AGENT_TOO.search(text):
        needs.add(AGENT)
    if _AFTER_CUSTOMER.search(text):
        needs.add(CUSTOMER)
    if not needs and (_AFTER_ANYONE.search(text) or _AFTER_ANYONE_TOO.search(text)):
        needs.add(ANYONE)
    return frozenset(needs)


def classify(guideline: Guideline) -> Classification:
    """Classify one guideline: author override, always marker, then the lexical cues."""
    return classify_text(
        guideline.condition,
        guideline.action is not None,
        guideline.always_check,
        guideline.always,
    )
