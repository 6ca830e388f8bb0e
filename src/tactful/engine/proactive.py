"""Proactive turns (``tactful.domain.proactive``): what asked the agent to speak, read back from
the status that opened the turn, and its actions as guidelines that apply this turn."""

from __future__ import annotations

from tactful.domain import (
    EventKind,
    MatchMethod,
    ProactiveKind,
    ProactiveRequest,
    Trace,
)
from tactful.engine.context import TurnContext
from tactful.engine.match import Match
from tactful.engine.retrievers import given_match
from tactful.engine.runner import Turn
from tactful.store.base import Store

CONDITIONS = {
    ProactiveKind.GREETING: "the conversation opens and the agent speaks first",
    ProactiveKind.UTTERANCE: "the agent is asked to speak without a new customer message",
}


async def read_request(store: Store, turn: Turn) -> ProactiveRequest:
    """The request carried by the ``acknowledged`` status that opened the turn (an utterance
    with no actions if it is gone: its events were deleted)."""
    opened = await store.list_events(
        turn.session_id,
        min_offset=turn.record.customer_offset,
        kinds=[EventKind.STATUS],
        trace_id=turn.trace_id,
        limit=1,
    )
    found = ProactiveRequest.of_status(opened[0].data) if opened else None
    return found or ProactiveRequest(kind=ProactiveKind.UTTERANCE)


def requested_guidelines(request: ProactiveRequest, trace: Trace) -> list[Match]:
    """The request's actions, as guidelines that apply this turn (they are not checked)."""
    return [
        given_match(
            trace,
            f"requested:{i}",
            CONDITIONS[request.kind],
            asked.action,
            rationale=f"asked for with the request to speak (rationale: {asked.rationale.value})",
            method=MatchMethod.REQUESTED,
        )
        for i, asked in enumerate(request.actions)
    ]


def answered(ctx: TurnContext) -> set[str]:
    """The guidelines the agent's messages since the customer's latest one applied."""
    since = 0
    for u in reversed(ctx.messages):
        if u.role == "customer":
            break
        since += u.role == "agent"
    recent = ctx.applied_history[-since:] if since else []
    return {gid for ids in recent for gid in ids}


def without_answered(ctx: TurnContext, matched: list[Match], trace: Trace) -> list[Match]:
    """``matched`` without the guidelines the offline tier matched on similarity to the
    customer's latest message when the agent has answered it already (``answered``): a
    proactive turn does not say that again. A model's verdict stands (it saw them marked as
    applied earlier, and said whether to apply them again)."""
    done = answered(ctx)
    again = {
        m.ranked.guideline.id
        for m in matched
        if m.ranked.guideline.id in done and m.verdict.method is MatchMethod.OFFLINE_SIMILARITY
    }
    if not again:
        return matched
    trace.final_guideline_ids = [g for g in trace.final_guideline_ids if g not in again]
    return [m for m in matched if m.ranked.guideline.id not in again]
