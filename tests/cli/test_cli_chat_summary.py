"""The lines ``tactful chat`` prints under a reply, from a trace (``tactful.cli.summary``)."""

from __future__ import annotations

from typing import Any

from tactful.cli.summary import LEGEND, summary
from tactful.client import TraceInfo


def verdict(gid: str, condition: str, **more: Any) -> dict[str, Any]:
    return {
        "guideline_id": gid,
        "condition": condition,
        "action": "do it",
        "applies": True,
        "score": 0.9,
        "rationale": "similar",
        "method": "offline-similarity",
    } | more


def trace(**fields: Any) -> TraceInfo:
    return TraceInfo.model_validate({"id": "t1", "session_id": "s", "agent_id": "a"} | fields)


def why_of(lines: list[str], condition: str) -> str:
    """The why line under the guideline line that starts with ``condition``."""
    at = next(i for i, line in enumerate(lines) if line[4:].startswith(condition))
    assert lines[at + 1].startswith("      ↳ "), lines
    return lines[at + 1].removeprefix("      ↳ ")


def test_a_guideline_that_shaped_the_reply_has_a_tick_and_no_why() -> None:
    lines = summary(
        trace(matches=[verdict("g1", "asks about refunds")], final_guideline_ids=["g1"]),
        ["g1"],
    )
    assert lines[0] == "  ✓ asks about refunds  [0.90] similar"
    assert lines[1].startswith("  0 model calls, 0 prompt tokens")
    assert lines[1].endswith("· trace t1")


def test_ids_show_where_conditions_repeat_and_a_guideline_shows_once() -> None:
    lines = summary(
        trace(
            matches=[
                verdict("track", "where is my order", score=0.7),
                verdict("track-intent", "Where is my order", action=None),
                verdict("refund", "wants a refund"),
                # Checked again (a code matcher, a reevaluation): one line, the later verdict.
                verdict("track", "where is my order", score=1.0, rationale="by code"),
            ],
            final_guideline_ids=["track", "refund"],
        ),
        ["track", "refund"],
    )
    assert lines[:3] == [
        "  ✓ where is my order (track)  [1.00] by code",
        "  ○ Where is my order (track-intent)  [0.90] similar",
        "      ↳ an observation: it has no action of its own (it can start journeys)",
    ]
    assert lines[3] == "  ✓ wants a refund  [0.90] similar"
    assert len(lines) == len(set(lines)) == 5


def test_a_suppressed_guideline_names_the_relationship_and_who_won() -> None:
    lines = summary(
        trace(
            matches=[
                verdict("refund", "wants a refund"),
                verdict("upsell", "is buying"),
                verdict("loud", "is shouting"),
                verdict("journey:ret", "is returning", method="journey"),
            ],
            journeys=[
                {
                    "journey_id": "ret",
                    "title": "Return an item",
                    "kind": "start",
                    "status_after": "active",
                    "label_after": "1 (Ask)",
                    "method": "offline",
                    "rationale": "its condition holds",
                }
            ],
            resolution=[
                {
                    "rule": "priority",
                    "effect": "removed",
                    "guideline_id": "refund",
                    "because": ["journey:ret"],
                    "detail": "journey:ret take(s) priority over it",
                },
                {
                    "rule": "exclusion",
                    "effect": "removed",
                    "guideline_id": "upsell",
                    "because": ["loud"],
                    "detail": "excluded by loud",
                },
            ],
            final_guideline_ids=["journey:ret", "loud"],
        ),
        ["journey:ret", "loud"],
    )
    assert why_of(lines, "wants a refund") == (
        "suppressed by priority: journey 'Return an item' take(s) priority over it"
    )
    assert why_of(lines, "is buying") == "excluded by loud"
    # Explained on their guidelines' lines: no separate step lines.
    assert not any(line.startswith("  - ") for line in lines)
    assert "  ↪ journey 'Return an item' start 1 (Ask) [offline]: its condition holds" in lines


def test_an_active_guideline_whose_template_could_not_be_sent_says_which_field_was_missing() -> (
    None
):
    lines = summary(
        trace(
            matches=[verdict("refund", "wants a refund"), verdict("greet", "says hello")],
            final_guideline_ids=["refund", "greet"],
            composition={
                "method": "canned",
                "canned_response_ids": ["hello"],
                "applied_guideline_ids": ["greet"],
                "disqualified": [
                    {
                        "id": "refund-done",
                        "guideline_id": "refund",
                        "qualified": False,
                        "missing_fields": ["transaction_id"],
                        "reason": "missing fields: transaction_id",
                    }
                ],
            },
        ),
        ["greet"],
    )
    assert why_of(lines, "wants a refund") == (
        "its template refund-done was disqualified: missing transaction_id"
    )


def test_other_reasons_a_matched_guideline_did_not_shape_the_reply() -> None:
    matches = [
        verdict("scoped", "asks about step 2"),
        verdict("rechecked", "order is late"),
        verdict("rechecked", "order is late", applies=False, rationale="the tool says not"),
        verdict("plain", "says thanks"),
        verdict("chosen", "wants a gift wrap"),
    ]
    lines = summary(
        trace(
            matches=matches,
            final_guideline_ids=["plain", "chosen"],
            composition={
                "method": "no-match",
                "reason": "the model chose no template",
                "templates": [{"id": "wrap", "guideline_id": "chosen", "qualified": True}],
                "dropped": [{"template": 1, "id": "wrap", "missing_fields": ["generative.colour"]}],
            },
        ),
        [],
    )
    assert why_of(lines, "asks about step 2") == (
        "not active: it is scoped to a journey that is not under way"
    )
    assert why_of(lines, "order is late") == "no longer applies once the tool results were in"
    assert why_of(lines, "says thanks") == (
        "no template could be sent: the no-match reply went out (the model chose no template)"
    )
    assert why_of(lines, "wants a gift wrap") == (
        "its template wrap was chosen, then dropped: missing generative.colour"
    )


def test_a_guideline_a_relationship_added_says_so_and_other_steps_are_listed_once() -> None:
    step = {"rule": "entailment", "guideline_id": "ghost", "because": ["g1"], "detail": ""}
    lines = summary(
        trace(
            matches=[
                verdict("g1", "asks"),
                verdict("always", "in every reply", method="resolution", score=0.0),
            ],
            resolution=[
                {"rule": "always", "effect": "added", "guideline_id": "always"},
                step | {"effect": "added"},
                step | {"effect": "removed"},
                step | {"effect": "removed"},
            ],
            final_guideline_ids=["g1", "always"],
            degraded=["matching: the model failed; the offline tier decided"],
        ),
        ["g1", "always"],
    )
    assert "  ✓ in every reply  [0.00] added by always" in lines
    assert lines.count("  - removed by entailment because of g1: ghost") == 1
    assert "  + added by entailment because of g1: ghost" in lines
    assert "  ! matching: the model failed; the offline tier decided" in lines


def test_no_match_at_all_says_so() -> None:
    assert summary(trace(), [])[0] == "  no guideline matched"


def test_the_legend_explains_every_symbol_the_summary_uses() -> None:
    for symbol in ("✓", "○", "↳", "(id)", "+ - ?", "↪", "!", "[score]"):
        assert symbol in LEGEND
