"""Traces stored before the trace was typed load into the typed sections, on every backend."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from tactful.domain import (
    ArgumentSource,
    JourneyStepKind,
    MatchMethod,
    ReplyMethod,
    ResolutionEffect,
    RunStatus,
    SessionControl,
    Trace,
    TraceStatus,
)
from tactful.store.schema import ENTITY_TABLES
from tactful.store.sql import SQLStore

# A trace as the engine wrote it when ``composition`` was a free dict: every key any stage
# wrote, each in the shape it had (optional keys left out, ``method`` and step methods "").
OLD: dict[str, Any] = {
    "id": "old-trace",
    "creation_utc": "2025-01-01T10:00:00Z",
    "session_id": "s1",
    "agent_id": "a1",
    "tier": "model:gpt-4o-mini",
    "status": "done",
    "candidates": [{"guideline_id": "g1", "condition": "asks", "score": 0.8, "rank": 1}],
    "matches": [
        {
            "guideline_id": "g1",
            "condition": "asks about an order",
            "action": "look it up",
            "applies": True,
            "score": 0.9,
            "method": "model",
            "tool_calls": [
                {
                    "tool": "order_status",
                    "arguments": [{"name": "order_id", "value": "VM1", "source": "customer"}],
                }
            ],
        },
        {"guideline_id": "g2", "condition": "greets", "applies": False, "method": ""},
    ],
    "resolution": [
        {
            "rule": "exclusion",
            "effect": "removed",
            "guideline_id": "g3",
            "because": ["g1"],
            "detail": "excluded by g1",
        }
    ],
    "final_guideline_ids": ["g1"],
    "journeys": [
        {
            "journey_id": "j1",
            "title": "Refund",
            "kind": "sub-journey",
            "status_after": "active",
            "method": "",
        }
    ],
    "composition": {
        "glossary": [{"term": "Voltmart Protect", "why": "named", "score": 0.91}],
        "variables": [
            {
                "variable_id": "v1",
                "name": "tier",
                "key": "c1",
                "value": {"level": "gold", "points": [1, 2.5, None]},
                "refreshed": False,
                "error": None,
            }
        ],
        "matcher_errors": ["matcher of guideline g4: timed out after 0.05s"],
        "match_failures": ["batch 2 failed closed: timeout"],
        "match_degraded": "the model failed for 1 guideline(s); the offline tier decided them",
        "hook_errors": ["on_selected of g1: boom"],
        "tool_plan": [
            {
                "guideline_id": "g1",
                "tool_id": "local:order_status",
                "arguments": {"order_id": "VM1", "customer_id": "c1"},
                "sources": {"order_id": "customer", "customer_id": "context"},
                "missing": [],
                "guessed": [],
                "blocked": None,
            }
        ],
        "tool_calls": [
            {
                "tool_id": "local:order_status",
                "arguments": {"order_id": "VM1"},
                "result": {
                    "data": {"status": "shipped", "items": [{"sku": "K1", "qty": 2}]},
                    "metadata": {},
                    "fields": {"eta": "Friday"},
                    "control": "handoff",
                },
                "error": None,
                "started": "2025-01-01T10:00:00Z",
                "ended": "2025-01-01T10:00:00.012000Z",
                "duration_ms": 12.0,
                "timed_out": False,
            }
        ],
        "tool_calls_reused": ["local:order_status"],
        "handoff": "local:order_status",
        "reevaluations": [
            {"iteration": 2, "rechecked": ["g5"], "now_active": ["g5"], "no_longer_active": []}
        ],
        "retrievers": [
            {"name": "broken", "owner": "agent:a1", "ok": False, "took_ms": 3.0, "error": "x"},
            {
                "name": "stock",
                "owner": "agent:a1",
                "ok": True,
                "took_ms": 1.2,
                "templates": 0,
                "fields": ["stock_level"],
                "guidelines": 1,
            },
        ],
        "preamble": {"text": "One moment.", "why": "tools", "event_offset": 2, "after_ms": 3.4},
        "mode": "strict_canned",
        "mode_rule": "guideline g1",
        "templates": [
            {
                "id": "r1",
                "guideline_id": "g1",
                "qualified": True,
                "missing_fields": [],
                "reason": None,
                "similarity": 0.8,
            }
        ],
        "chosen": ["r1"],
        "dropped": [
            {"template": 3, "why": "no such template"},
            {"template": 2, "id": "r2", "missing_fields": ["generative.item"], "reason": "no"},
        ],
        "candidates": [{"id": "r1", "guideline_id": None, "score": 0.9}],
        "disqualified": [
            {
                "id": "r3",
                "guideline_id": "g1",
                "qualified": False,
                "missing_fields": ["transaction_id"],
                "reason": "missing fields: transaction_id",
                "similarity": 0.5,
            }
        ],
        "style_templates": ["r1"],
        "clarification": {"observation_id": "o1", "option_ids": ["c", "t"]},
        "self_check": {
            "draft": "It arrives Friday.",
            "rules": [{"rule": 1, "applies": True, "follows": False, "note": ""}],
            "broken": [],
            "revised": "It should arrive Friday.",
            "because": ["g9"],
        },
        "streamed": {"chunks": 3, "ok": True},
        "degraded": "model failed while composing: bad gateway",
        "reason": "no template chosen",
        "method": "no-match",
        "canned_response_id": None,
        "canned_response_ids": [],
        "applied_guideline_ids": [],
        # A key no release writes any more: ignored.
        "retired_section": {"anything": [1, 2]},
    },
    "model_calls": [{"stage": "match", "model": "gpt-4o-mini", "prompt_tokens": 900}],
    "stage_timings_ms": {"match": 4.5},
}


async def test_a_trace_stored_before_the_typed_sections_loads(store: SQLStore) -> None:
    placeholder = Trace(
        id=OLD["id"], creation_utc=OLD["creation_utc"], session_id="s1", agent_id="a1"
    )
    row = store._row(placeholder, None)
    async with store._tx() as conn:
        await conn.execute(insert(ENTITY_TABLES["traces"]).values(**{**row, "data": OLD}))
    trace = await store.get(Trace, OLD["id"])
    assert trace.status is TraceStatus.DONE
    ask, greet = trace.matches
    assert ask.method is MatchMethod.MODEL and greet.method is None
    assert ask.tool_calls[0].arguments[0].source is ArgumentSource.CUSTOMER
    assert trace.resolution[0].effect is ResolutionEffect.REMOVED
    [step] = trace.journeys
    assert (step.kind, step.method) == (JourneyStepKind.SUB_JOURNEY, None)
    assert step.status_after is RunStatus.ACTIVE
    c = trace.composition
    assert c.method is ReplyMethod.NO_MATCH and c.mode == "strict_canned"
    assert c.variables[0].value == {"level": "gold", "points": [1, 2.5, None]}
    [call] = c.tool_calls
    assert call.result is not None and call.result.control is SessionControl.HANDOFF
    assert call.result.data == {"status": "shipped", "items": [{"sku": "K1", "qty": 2}]}
    assert [(d.template, d.why, d.id) for d in c.dropped] == [
        (3, "no such template", None),
        (2, None, "r2"),
    ]
    assert [r.error for r in c.retrievers] == ["x", None]
    assert c.self_check is not None and c.self_check.revised == "It should arrive Friday."
    assert c.clarification is not None and c.clarification.option_ids == ["c", "t"]
    assert c.tool_plan[0].sources["customer_id"] is ArgumentSource.CONTEXT
    assert "retired_section" not in c.model_dump()

    # Saved again, it comes back the same, keys and all.
    await store.upsert(trace)
    again = await store.get(Trace, OLD["id"])
    assert again == trace
    assert again.model_dump(mode="json")["composition"]["streamed"] == {"chunks": 3, "ok": True}
