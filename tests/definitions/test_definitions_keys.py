"""Natural keys (``definitions.keys``) are stored with every SDK definition: a key that changed
would make the next run define everything again beside the old copies, so they are pinned."""

from __future__ import annotations

from tactful.definitions.keys import (
    canned_response_key,
    digest,
    guideline_key,
    journey_scope,
    tag_name_key,
    term_key,
)

HI = "8f434346648f6b96df89dda901c5176b"  # digest("hi")
RULE = "7fbf47d168eb62616bd6571cc5556177"  # digest("c", "a")


def test_the_digest_is_stable_and_none_counts_as_empty() -> None:
    assert digest("hi") == HI
    assert digest("c", "a") == RULE
    assert digest("c", None) == digest("c", "")
    assert digest("c", "a") != digest("ca")


def test_only_journey_tags_scope_a_definition_sorted_once_each() -> None:
    tags = ["journey:j2", "vip", "agent:shop", "journey:j1", "journey:j2"]
    assert journey_scope(tags) == ":journey:j1:journey:j2"
    assert journey_scope(["vip", "agent:shop"]) == ""


def test_keys_keep_the_format_the_sdk_has_always_stored() -> None:
    assert guideline_key("shop", ["vip"], "c", "a") == f"guideline:shop:{RULE}"
    assert guideline_key("shop", ["journey:j1"], "c", "a") == f"guideline:shop:journey:j1:{RULE}"
    assert canned_response_key("shop", [], "hi") == f"canned:shop:{HI}"
    # A canned response shared by all agents (``Server.create_canned_response``).
    assert canned_response_key("", [], "hi") == f"canned::{HI}"
    assert term_key("shop", "Voltmart Protect") == "term:shop:voltmart protect"
    assert tag_name_key("vip") == "tag:vip"
