"""Glossary terms relevant to this turn, for matching and composition (no model call).

A term is relevant when the recent conversation names it or one of its synonyms, or when its
name and description are close to what the customer said (cached embeddings). Only the few
most relevant terms reach the prompts, so a glossary of thousands of terms costs a turn no
more than one of ten.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tactful.domain import Term
from tactful.engine.context import TurnContext
from tactful.engine.embeddings import EmbeddingCache

# At most this many terms per turn; a term needs this similarity unless it is named.
MAX_TERMS = 5
MIN_SIMILARITY = 0.35


@dataclass(frozen=True)
class RelevantTerm:
    term: Term
    score: float
    # "named" (the conversation says the term or a synonym) or "similar".
    why: str


def _named(term: Term, text: str) -> bool:
    for name in (term.name, *term.synonyms):
        if name.strip() and re.search(rf"(?<!\w){re.escape(name.strip())}(?!\w)", text, re.I):
            return True
    return False


async def relevant_terms(
    ctx: TurnContext,
    cache: EmbeddingCache,
    *,
    limit: int = MAX_TERMS,
    min_similarity: float = MIN_SIMILARITY,
) -> list[RelevantTerm]:
    """The terms the recent conversation names, then those closest to it, best first."""
    terms = ctx.terms
    if not terms or limit <= 0:
        return []
    recent = " ".join(u.text for u in ctx.window(4))
    latest = ctx.last_customer_message or recent
    query = (await cache.embed_messages([latest or " "]))[0]
    similarity = await cache.embed([term_text(t) for t in terms]) @ query
    found = []
    for term, score in zip(terms, similarity, strict=True):
        if _named(term, recent):
            found.append(RelevantTerm(term, 1.0 + float(score), "named"))
        elif float(score) >= min_similarity:
            found.append(RelevantTerm(term, float(score), "similar"))
    found.sort(key=lambda r: (-r.score, r.term.name))
    return found[:limit]


def term_text(term: Term) -> str:
    """What a term is embedded as: its name, synonyms and description."""
    synonyms = f" (also: {', '.join(term.synonyms)})" if term.synonyms else ""
    return f"{term.name}{synonyms}: {term.description}"


def for_prompt(terms: Sequence[RelevantTerm]) -> str:
    """One "- name (also: ...): description" line per term."""
    return "\n".join(f"- {term_text(r.term)}" for r in terms)
