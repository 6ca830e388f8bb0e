"""The rules a relationship passes before it is stored: no cycle where one makes no sense, no
tool end on the kinds that relate guidelines, two distinct ends, one relationship per kind and
ends."""

from __future__ import annotations

import pytest

from tactful.domain import Endpoint, Relationship, RelationshipKind
from tactful.domain.relationships import admit, check_acyclic, find_cycle
from tactful.errors import ValidationError

K = RelationshipKind
End = str | Endpoint


def tag(id: str) -> Endpoint:
    return Endpoint.tag(id)


def rel(kind: RelationshipKind, source: End, target: End) -> Relationship:
    def end(e: End) -> Endpoint:
        return e if isinstance(e, Endpoint) else Endpoint.guideline(e)

    return Relationship(kind=kind, source=end(source), target=end(target))


@pytest.mark.parametrize("kind", [K.ENTAILMENT, K.PRIORITY, K.DEPENDENCY, K.DEPENDENCY_ANY])
def test_a_relationship_closing_a_cycle_is_found(kind: RelationshipKind) -> None:
    existing = [rel(kind, "a", "b"), rel(kind, "b", "c")]
    assert find_cycle(existing, rel(kind, "c", "a"), {}) == ["c", "a", "b", "c"]
    assert find_cycle(existing, rel(kind, "a", "c"), {}) is None


@pytest.mark.parametrize("kind", [K.ENTAILMENT, K.PRIORITY, K.DEPENDENCY, K.DEPENDENCY_ANY])
def test_a_self_relationship_is_a_cycle(kind: RelationshipKind) -> None:
    assert find_cycle([], rel(kind, "a", "a"), {}) == ["a", "a"]
    assert find_cycle([], rel(kind, tag("t"), tag("t")), {}) == ["t", "t"]


def test_the_dependency_kinds_form_one_family() -> None:
    existing = [rel(K.DEPENDENCY, "a", "b")]
    assert find_cycle(existing, rel(K.DEPENDENCY_ANY, "b", "a"), {}) == ["b", "a", "b"]
    # Other kinds do not mix.
    assert find_cycle(existing, rel(K.ENTAILMENT, "b", "a"), {}) is None
    assert find_cycle([rel(K.PRIORITY, "a", "b")], rel(K.ENTAILMENT, "b", "a"), {}) is None


def test_kinds_without_direction_may_go_both_ways() -> None:
    for kind in (K.EXCLUSION, K.DISAMBIGUATION, K.OVERLAP, K.REEVALUATION):
        assert find_cycle([rel(kind, "a", "b")], rel(kind, "b", "a"), {}) is None


def test_a_cycle_through_a_tag_names_the_tag() -> None:
    by_tag = {"billing": ["b"]}
    existing = [rel(K.ENTAILMENT, "a", tag("billing"))]
    assert find_cycle(existing, rel(K.ENTAILMENT, "b", "a"), by_tag) == ["b", "a", "billing", "b"]
    # Between tags, even before they tag anything.
    existing = [rel(K.PRIORITY, tag("t1"), tag("t2"))]
    assert find_cycle(existing, rel(K.PRIORITY, tag("t2"), tag("t1")), {}) == ["t2", "t1", "t2"]


def test_a_guideline_over_its_own_tag_is_not_a_cycle() -> None:
    by_tag = {"billing": ["a", "b"]}
    assert find_cycle([], rel(K.PRIORITY, "a", tag("billing")), by_tag) is None
    existing = [rel(K.PRIORITY, "a", tag("billing"))]
    assert find_cycle(existing, rel(K.PRIORITY, "b", "a"), by_tag) == ["b", "a", "billing", "b"]


def test_check_acyclic_names_the_cycle() -> None:
    with pytest.raises(ValidationError, match=r"cycle: a -> b -> a"):
        check_acyclic([rel(K.ENTAILMENT, "b", "a")], rel(K.ENTAILMENT, "a", "b"), {})
    check_acyclic([rel(K.ENTAILMENT, "b", "a")], rel(K.EXCLUSION, "a", "b"), {})


def test_admit_answers_the_stored_relationship_with_the_same_kind_and_ends() -> None:
    stored = rel(K.PRIORITY, "a", "b")
    assert admit(rel(K.PRIORITY, "a", "b"), [stored], {}) is stored
    assert admit(rel(K.PRIORITY, "b", "c"), [stored], {}) is None
    assert admit(rel(K.ENTAILMENT, "a", "b"), [stored], {}) is None


def test_admit_refuses_a_tool_end_where_guidelines_are_related() -> None:
    lookup = Endpoint.tool("orders:lookup")
    with pytest.raises(ValidationError, match="relates guidelines or tags; its source is the tool"):
        admit(rel(K.PRIORITY, lookup, "a"), [], {})
    assert admit(rel(K.REEVALUATION, lookup, "a"), [], {}) is None
    assert admit(rel(K.OVERLAP, lookup, Endpoint.tool("orders:refund")), [], {}) is None


def test_admit_refuses_one_end_twice_and_cycles() -> None:
    with pytest.raises(ValidationError, match="needs two different ends; both are guideline 'a'"):
        admit(rel(K.EXCLUSION, "a", "a"), [], {})
    with pytest.raises(ValidationError, match=r"cycle: a -> a"):
        admit(rel(K.ENTAILMENT, "a", "a"), [], {})
    with pytest.raises(ValidationError, match=r"cycle: b -> a -> billing -> b"):
        admit(rel(K.PRIORITY, "b", "a"), [rel(K.PRIORITY, "a", tag("billing"))], {"billing": ["b"]})
