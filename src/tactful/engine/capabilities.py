"""The agent's capabilities relevant to this turn, for matching and composition (no model call).

A capability is embedded as several rows: "title: description", then each of its signals (the
things a customer says when they need it). Its score is its best row's similarity to the
customer's latest messages, the latest counting most. The few best above a threshold reach
the prompts, so that the reply offers what the agent can really do and nothing else; an agent
with hundreds of capabilities costs a turn no more than one with three.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tactful.domain import Capability, CapabilityOffered
from tactful.engine.context import TurnContext
from tactful.engine.embeddings import EmbeddingCache

# At most this many capabilities per turn, each at least this similar to what the customer said.
# On the offline embedder (all-MiniLM-L6-v2), direct requests scored 0.50 to 0.75 against the
# capability they need, requests for something else under 0.45 (docs/capabilities.md).
MAX_CAPABILITIES = 3
MIN_SIMILARITY = 0.50
# The customer's messages compared, latest first; each older one counts this much less.
RECENT_MESSAGES = 3
AGE_PENALTY = 0.1


@dataclass(frozen=True)
class RelevantCapability:
    capability: Capability
    score: float


def capability_rows(capabilities: Sequence[Capability]) -> list[str]:
    """What capabilities are embedded as, every capability's rows one after the other: its
    "title: description", then its signals."""
    return [row for c in capabilities for row in _rows(c)]


def _rows(capability: Capability) -> list[str]:
    return [f"{capability.title}: {capability.description}", *capability.signals]


async def relevant_capabilities(
    ctx: TurnContext,
    cache: EmbeddingCache,
    *,
    limit: int = MAX_CAPABILITIES,
    min_similarity: float = MIN_SIMILARITY,
) -> list[RelevantCapability]:
    """The capabilities closest to the customer's latest messages, best first."""
    capabilities = ctx.capabilities
    said = list(reversed(ctx.recent_customer_messages(RECENT_MESSAGES)))
    if not capabilities or not said or limit <= 0:
        return []
    rows = await cache.embed(capability_rows(capabilities))
    queries = await cache.embed_messages(said)
    # Row x message similarity, each older message lowered by its age; a row's best.
    penalty = AGE_PENALTY * np.arange(len(said), dtype=np.float32)
    best_per_row = (rows @ queries.T - penalty).max(axis=1)
    found = []
    start = 0
    for capability in capabilities:
        end = start + len(_rows(capability))
        score = float(best_per_row[start:end].max())
        start = end
        if score >= min_similarity:
            found.append(RelevantCapability(capability, score))
    found.sort(key=lambda r: (-r.score, r.capability.title))
    return found[:limit]


def for_prompt(capabilities: Sequence[RelevantCapability]) -> str:
    """One "- title: description" line per capability."""
    return "\n".join(f"- {r.capability.title}: {r.capability.description}" for r in capabilities)


def traced(capabilities: Sequence[RelevantCapability]) -> list[CapabilityOffered]:
    """What the trace records of the capabilities offered."""
    return [
        CapabilityOffered(
            capability_id=r.capability.id, title=r.capability.title, score=round(r.score, 4)
        )
        for r in capabilities
    ]
