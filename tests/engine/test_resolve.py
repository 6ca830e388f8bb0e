"""Stage 5, resolve: one focused test per rule, and independence from input order (the cycle
checks on creation are tests/domain/test_domain_relationships.py)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from tactful.domain import Endpoint, Guideline, Relationship, RelationshipKind
from tactful.domain.relationships import guidelines_by_tag
from tactful.engine.resolve import Clarification, Resolution, Roster, resolve

K = RelationshipKind
End = str | Endpoint


def g(
    id: str,
    *,
    observation: bool = False,
    priority: int = 0,
    tags: Sequence[str] = (),
    always: bool = False,
    enabled: bool = True,
) -> Guideline:
    return Guideline(
        id=id,
        condition=f"condition {id}",
        action=None if observation else f"action {id}",
        priority=priority,
        tags=list(tags),
        always=always,
        enabled=enabled,
    )


def tag(id: str) -> Endpoint:
    return Endpoint.tag(id)


def rel(kind: RelationshipKind, source: End, target: End) -> Relationship:
    def end(e: End) -> Endpoint:
        return e if isinstance(e, Endpoint) else Endpoint.guideline(e)

    return Relationship(kind=kind, source=end(source), target=end(target))


def run(
    matched: dict[str, float], guidelines: Sequence[Guideline], *relationships: Relationship
) -> Resolution:
    return resolve(matched, {x.id: x for x in guidelines}, relationships)


def effects(resolution: Resolution) -> list[tuple[str, str, str, list[str]]]:
    return [(s.rule, s.effect, s.guideline_id, s.because) for s in resolution.steps]


# -- no relationships ---------------------------------------------------------------------------


def test_without_relationships_the_matched_guidelines_stay_by_score_then_id() -> None:
    res = run({"b": 0.5, "c": 0.9, "a": 0.5, "ghost": 1.0}, [g("a"), g("b"), g("c")])
    assert res.active == ["c", "a", "b"]  # unknown ids are ignored
    assert res.steps == [] and res.clarification is None
    assert res.scores == {"c": 0.9, "a": 0.5, "b": 0.5}


def test_disabled_guidelines_are_never_active() -> None:
    res = run({"a": 0.5, "b": 0.5}, [g("a"), g("b", enabled=False)])
    assert res.active == ["a"]


# -- always ---------------------------------------------------------------------------------------


def test_always_marker_activates_without_a_match() -> None:
    guidelines = [g("a"), g("polite", always=True), g("off", always=True, enabled=False)]
    res = run({"a": 0.7}, guidelines)
    assert res.active == ["a", "polite"]
    assert effects(res) == [("always", "added", "polite", [])]
    assert res.scores["polite"] == 0.0
    # Matched anyway: no step, its score is kept.
    assert run({"polite": 0.3}, guidelines).steps == []


# -- entailment ------------------------------------------------------------------------------------


def test_entailment_adds_the_target_with_the_source_score() -> None:
    res = run({"a": 0.8}, [g("a"), g("b")], rel(K.ENTAILMENT, "a", "b"))
    assert res.active == ["a", "b"]
    assert effects(res) == [("entailment", "added", "b", ["a"])]
    assert res.scores["b"] == 0.8
    assert run({"b": 0.8}, [g("a"), g("b")], rel(K.ENTAILMENT, "a", "b")).active == ["b"]


def test_entailment_is_transitive_and_takes_the_best_source_score() -> None:
    guidelines = [g("a"), g("b"), g("c"), g("d")]
    res = run(
        {"a": 0.4, "d": 0.9},
        guidelines,
        rel(K.ENTAILMENT, "a", "b"),
        rel(K.ENTAILMENT, "b", "c"),
        rel(K.ENTAILMENT, "d", "b"),
    )
    assert res.active == ["b", "c", "d", "a"]  # ties by id
    assert effects(res) == [
        ("entailment", "added", "b", ["a", "d"]),
        ("entailment", "added", "c", ["b"]),
    ]
    assert res.scores["c"] == 0.9


def test_entailment_of_a_tag_adds_every_guideline_carrying_it() -> None:
    guidelines = [g("a"), g("b", tags=["billing"]), g("c", tags=["billing"]), g("d")]
    res = run({"a": 0.5}, guidelines, rel(K.ENTAILMENT, "a", tag("billing")))
    assert res.active == ["a", "b", "c"]


# -- dependencies ----------------------------------------------------------------------------------


def test_dependency_needs_all_of_its_targets() -> None:
    guidelines = [g("a"), g("b"), g("c")]
    deps = (rel(K.DEPENDENCY, "a", "b"), rel(K.DEPENDENCY, "a", "c"))
    res = run({"a": 0.9, "b": 0.5}, guidelines, *deps)
    assert res.active == ["b"]
    assert effects(res) == [("dependency", "removed", "a", ["c"])]
    assert run({"a": 0.9, "b": 0.5, "c": 0.1}, guidelines, *deps).active == ["a", "b", "c"]


def test_dependency_on_an_unknown_or_disabled_guideline_is_never_met() -> None:
    guidelines = [g("a"), g("off", enabled=False)]
    res = run({"a": 0.9, "off": 0.9}, guidelines, rel(K.DEPENDENCY, "a", "off"))
    assert res.active == []
    res = run({"a": 0.9}, guidelines, rel(K.DEPENDENCY, "a", "deleted"))
    assert effects(res) == [("dependency", "removed", "a", ["deleted"])]


def test_dependency_any_needs_one_of_its_targets() -> None:
    guidelines = [g("a"), g("b"), g("c")]
    deps = (rel(K.DEPENDENCY_ANY, "a", "b"), rel(K.DEPENDENCY_ANY, "a", "c"))
    assert run({"a": 0.9, "c": 0.2}, guidelines, *deps).active == ["a", "c"]
    res = run({"a": 0.9}, guidelines, *deps)
    assert res.active == []
    assert effects(res) == [("dependency_any", "removed", "a", ["b", "c"])]


def test_dependency_any_on_an_empty_tag_is_never_met() -> None:
    res = run({"a": 0.9}, [g("a")], rel(K.DEPENDENCY_ANY, "a", tag("nobody")))
    assert res.active == []


def test_observations_count_as_active_dependencies_when_matched() -> None:
    guidelines = [g("a"), g("has-order", observation=True)]
    dep = rel(K.DEPENDENCY, "a", "has-order")
    assert run({"a": 0.9, "has-order": 0.6}, guidelines, dep).active == ["a", "has-order"]
    assert run({"a": 0.9}, guidelines, dep).active == []


def test_dependency_removals_cascade() -> None:
    guidelines = [g("a"), g("b"), g("c")]
    res = run(
        {"a": 0.9, "b": 0.8},
        guidelines,
        rel(K.DEPENDENCY, "a", "b"),
        rel(K.DEPENDENCY, "b", "c"),
    )
    assert res.active == []
    assert effects(res) == [
        ("dependency", "removed", "b", ["c"]),
        ("dependency", "removed", "a", ["b"]),
    ]


def test_dependency_on_a_tag_needs_every_guideline_carrying_it() -> None:
    guidelines = [g("a"), g("b", tags=["t"]), g("c", tags=["t"])]
    dep = rel(K.DEPENDENCY, "a", tag("t"))
    assert run({"a": 0.9, "b": 0.1}, guidelines, dep).active == ["b"]
    assert run({"a": 0.9, "b": 0.1, "c": 0.1}, guidelines, dep).active == ["a", "b", "c"]


def test_a_tag_source_makes_each_tagged_guideline_depend() -> None:
    guidelines = [g("a", tags=["t"]), g("b", tags=["t"]), g("x")]
    dep = rel(K.DEPENDENCY, tag("t"), "x")
    assert run({"a": 0.9, "b": 0.8}, guidelines, dep).active == []
    assert run({"a": 0.9, "b": 0.8, "x": 0.1}, guidelines, dep).active == ["a", "b", "x"]


# -- priority --------------------------------------------------------------------------------------


def test_priority_between_guidelines_removes_the_target() -> None:
    guidelines = [g("a"), g("b")]
    over = rel(K.PRIORITY, "a", "b")
    res = run({"a": 0.1, "b": 0.9}, guidelines, over)
    assert res.active == ["a"]
    assert effects(res) == [("priority", "removed", "b", ["a"])]
    assert run({"b": 0.9}, guidelines, over).active == ["b"]


def test_priority_holds_through_a_chain_with_an_inactive_middle() -> None:
    guidelines = [g("a"), g("b"), g("c")]
    res = run(
        {"a": 0.1, "c": 0.9}, guidelines, rel(K.PRIORITY, "a", "b"), rel(K.PRIORITY, "b", "c")
    )
    assert res.active == ["a"]
    assert effects(res) == [("priority", "removed", "c", ["a"])]


def test_priority_over_a_tag_removes_every_active_guideline_carrying_it() -> None:
    guidelines = [g("a", tags=["t"]), g("b", tags=["t"]), g("c", tags=["t"]), g("d")]
    # a carries the tag too: it is not removed by its own priority.
    res = run({"a": 0.1, "b": 0.5, "d": 0.3}, guidelines, rel(K.PRIORITY, "a", tag("t")))
    assert res.active == ["d", "a"]
    assert effects(res) == [("priority", "removed", "b", ["a"])]
    # A tag over a guideline.
    res = run({"b": 0.5, "d": 0.3}, guidelines, rel(K.PRIORITY, tag("t"), "d"))
    assert res.active == ["b"]


def test_priority_both_ways_removes_neither() -> None:
    # Creation refuses such cycles; resolution must still be sane if one is stored.
    guidelines = [g("a"), g("b")]
    res = run(
        {"a": 0.1, "b": 0.2}, guidelines, rel(K.PRIORITY, "a", "b"), rel(K.PRIORITY, "b", "a")
    )
    assert res.active == ["b", "a"]


# -- exclusion -------------------------------------------------------------------------------------


def test_exclusion_keeps_the_higher_numeric_priority() -> None:
    guidelines = [g("a", priority=1), g("b", priority=2)]
    # b is removed by numeric priority too: use observations to test exclusion alone.
    obs = [g("a", observation=True, priority=1), g("b", observation=True, priority=2)]
    res = run({"a": 0.9, "b": 0.1}, obs, rel(K.EXCLUSION, "a", "b"))
    assert res.active == ["b"]
    assert effects(res) == [("exclusion", "removed", "a", ["b"])]
    assert run({"a": 0.9, "b": 0.1}, guidelines, rel(K.EXCLUSION, "a", "b")).active == ["b"]


def test_exclusion_then_keeps_the_higher_score_then_the_source() -> None:
    guidelines = [g("a"), g("b")]
    assert run({"a": 0.2, "b": 0.7}, guidelines, rel(K.EXCLUSION, "a", "b")).active == ["b"]
    assert run({"a": 0.7, "b": 0.7}, guidelines, rel(K.EXCLUSION, "b", "a")).active == ["b"]
    assert run({"a": 0.7, "b": 0.7}, guidelines, rel(K.EXCLUSION, "a", "b")).active == ["a"]
    # Both ways and a tie: the smaller id.
    both = (rel(K.EXCLUSION, "a", "b"), rel(K.EXCLUSION, "b", "a"))
    assert run({"a": 0.7, "b": 0.7}, guidelines, *both).active == ["a"]


def test_exclusion_lets_the_strongest_win_first() -> None:
    # z beats b (source), b beats c: z removes b, and c, no longer excluded by anyone, stays.
    guidelines = [g("z"), g("b"), g("c")]
    res = run(
        {"z": 0.5, "b": 0.5, "c": 0.5},
        guidelines,
        rel(K.EXCLUSION, "z", "b"),
        rel(K.EXCLUSION, "b", "c"),
    )
    assert res.active == ["c", "z"]
    assert effects(res) == [("exclusion", "removed", "b", ["z"])]


def test_exclusion_breaks_a_cycle_of_ties_deterministically() -> None:
    guidelines = [g("a"), g("b"), g("c")]
    res = run(
        {"a": 0.5, "b": 0.5, "c": 0.5},
        guidelines,
        rel(K.EXCLUSION, "a", "b"),
        rel(K.EXCLUSION, "b", "c"),
        rel(K.EXCLUSION, "c", "a"),
    )
    # a beats b, b beats c, c beats a: broken at (a, b); then c beats a.
    assert res.active == ["c"]
    assert [s.guideline_id for s in res.steps] == ["b", "a"]


# -- numeric priority ------------------------------------------------------------------------------


def test_numeric_priority_suppresses_lower_actionable_guidelines() -> None:
    guidelines = [
        g("a", priority=2),
        g("b", priority=1),
        g("c"),
        g("d", priority=2),
        g("obs", observation=True),
    ]
    res = run({"a": 0.1, "b": 0.9, "c": 0.8, "d": 0.2, "obs": 0.5}, guidelines)
    assert res.active == ["obs", "d", "a"]
    assert effects(res) == [
        ("numeric_priority", "removed", "b", ["a", "d"]),
        ("numeric_priority", "removed", "c", ["a", "d"]),
    ]


def test_default_priorities_suppress_nothing_and_observations_do_not_count() -> None:
    guidelines = [g("a"), g("b"), g("obs", observation=True, priority=9)]
    res = run({"a": 0.1, "b": 0.9, "obs": 0.5}, guidelines)
    assert res.active == ["b", "obs", "a"]
    assert res.steps == []


# -- disambiguation --------------------------------------------------------------------------------


def _ambiguity() -> tuple[list[Guideline], tuple[Relationship, ...]]:
    guidelines = [
        g("vague", observation=True),
        g("refund"),
        g("exchange"),
        g("repair"),
    ]
    relationships = tuple(
        rel(K.DISAMBIGUATION, "vague", t) for t in ("refund", "exchange", "repair")
    )
    return guidelines, relationships


def test_disambiguation_with_two_active_targets_asks_instead_of_guessing() -> None:
    guidelines, relationships = _ambiguity()
    res = run({"vague": 0.9, "refund": 0.6, "exchange": 0.7}, guidelines, *relationships)
    assert res.active == ["vague"]
    assert res.clarification == Clarification(
        observation_id="vague", option_ids=["exchange", "refund"]
    )
    assert effects(res) == [
        ("disambiguation", "clarify", "exchange", ["vague"]),
        ("disambiguation", "clarify", "refund", ["vague"]),
    ]


def test_disambiguation_with_one_active_target_keeps_it() -> None:
    guidelines, relationships = _ambiguity()
    res = run({"vague": 0.9, "refund": 0.6}, guidelines, *relationships)
    assert res.active == ["vague", "refund"]
    assert res.clarification is None and res.steps == []


def test_disambiguation_needs_its_source_active() -> None:
    guidelines, relationships = _ambiguity()
    res = run({"refund": 0.6, "exchange": 0.7}, guidelines, *relationships)
    assert res.active == ["exchange", "refund"]
    assert res.clarification is None


def test_disambiguation_over_a_tag() -> None:
    guidelines = [g("vague", observation=True), g("x", tags=["t"]), g("y", tags=["t"])]
    res = run(
        {"vague": 0.9, "x": 0.5, "y": 0.6}, guidelines, rel(K.DISAMBIGUATION, "vague", tag("t"))
    )
    assert res.clarification == Clarification(observation_id="vague", option_ids=["y", "x"])


def test_the_best_scored_source_asks_when_several_do() -> None:
    guidelines = [g("s1", observation=True), g("s2", observation=True)]
    guidelines += [g("a"), g("b"), g("c"), g("d")]
    res = run(
        {"s1": 0.4, "s2": 0.8, "a": 0.1, "b": 0.1, "c": 0.1, "d": 0.1},
        guidelines,
        rel(K.DISAMBIGUATION, "s1", "a"),
        rel(K.DISAMBIGUATION, "s1", "b"),
        rel(K.DISAMBIGUATION, "s2", "c"),
        rel(K.DISAMBIGUATION, "s2", "d"),
    )
    assert res.active == ["s2", "s1"]
    assert res.clarification == Clarification(observation_id="s2", option_ids=["c", "d"])


# -- how the rules interact ------------------------------------------------------------------------


def test_suppressing_a_guideline_withdraws_what_it_entailed() -> None:
    guidelines = [g("a"), g("b"), g("c")]
    res = run(
        {"a": 0.5, "c": 0.4}, guidelines, rel(K.ENTAILMENT, "a", "b"), rel(K.PRIORITY, "c", "a")
    )
    assert res.active == ["c"]
    assert effects(res) == [
        ("entailment", "added", "b", ["a"]),
        ("priority", "removed", "a", ["c"]),
        ("entailment", "removed", "b", ["a"]),
    ]


def test_a_removal_breaks_a_dependency_after_priority() -> None:
    guidelines = [g("a"), g("b"), g("c", priority=1)]
    res = run({"a": 0.5, "b": 0.5, "c": 0.5}, guidelines, rel(K.DEPENDENCY, "c", "b"))
    # Numeric priority removes a and b; c then lacks its dependency b.
    assert res.active == []
    assert [s.rule for s in res.steps] == ["numeric_priority", "numeric_priority", "dependency"]


def test_an_always_guideline_still_obeys_its_dependencies() -> None:
    guidelines = [g("a", always=True), g("b")]
    res = run({}, guidelines, rel(K.DEPENDENCY, "a", "b"))
    assert res.active == []
    assert effects(res) == [("always", "added", "a", []), ("dependency", "removed", "a", ["b"])]


def test_tool_ends_and_tool_kinds_are_ignored() -> None:
    guidelines = [g("a"), g("b")]
    res = run(
        {"a": 0.5, "b": 0.5},
        guidelines,
        rel(K.OVERLAP, "a", "b"),
        rel(K.REEVALUATION, Endpoint.tool("orders:lookup"), "a"),
        rel(K.PRIORITY, Endpoint.tool("orders:lookup"), "a"),
    )
    assert res.active == ["a", "b"]


# -- independence from input order -----------------------------------------------------------------


def _scenario(rng: random.Random) -> tuple[dict[str, float], list[Guideline], list[Relationship]]:
    ids = [f"g{i}" for i in range(8)]
    guidelines = [
        g(
            gid,
            observation=rng.random() < 0.2,
            priority=rng.choice([0, 0, 0, 1, 2]),
            tags=rng.sample(["t1", "t2"], rng.randint(0, 2)),
            always=rng.random() < 0.1,
        )
        for gid in ids
    ]
    matched = {gid: rng.choice([0.1, 0.5, 0.5, 0.9]) for gid in rng.sample(ids, 5)}
    kinds = [K.ENTAILMENT, K.DEPENDENCY, K.DEPENDENCY_ANY, K.PRIORITY, K.EXCLUSION]
    kinds.append(K.DISAMBIGUATION)
    ends: list[End] = [*ids, tag("t1"), tag("t2")]
    relationships = [
        rel(rng.choice(kinds), rng.choice(ends), rng.choice(ends)) for _ in range(rng.randint(0, 9))
    ]
    return matched, guidelines, relationships


def test_the_result_does_not_depend_on_input_order() -> None:
    rng = random.Random(20240611)
    for _ in range(300):
        matched, guidelines, relationships = _scenario(rng)
        expected = run(matched, guidelines, *relationships)
        for _ in range(4):
            shuffled_matched = dict(rng.sample(list(matched.items()), len(matched)))
            shuffled_guidelines = rng.sample(guidelines, len(guidelines))
            # Fresh ids too: relationships are identified by their ends, not their ids.
            shuffled_relationships = [
                rel(r.kind, r.source, r.target)
                for r in rng.sample(relationships, len(relationships))
            ]
            again = run(shuffled_matched, shuffled_guidelines, *shuffled_relationships)
            assert again == expected


def test_every_active_guideline_has_its_dependencies_at_the_end() -> None:
    rng = random.Random(7)
    for _ in range(300):
        matched, guidelines, relationships = _scenario(rng)
        res = run(matched, guidelines, *relationships)
        active = set(res.active)
        members = guidelines_by_tag(guidelines)
        for r in relationships:
            sources = members.get(r.source.id, []) if r.source.kind == "tag" else [r.source.id]
            targets = members.get(r.target.id, []) if r.target.kind == "tag" else [r.target.id]
            for s in sources:
                if r.kind is K.DEPENDENCY and s in active:
                    assert set(targets) - {s} <= active, (r, res)
                if r.kind is K.EXCLUSION and s in active:
                    assert not (set(targets) - {s}) & active, (r, res)


# -- a roster worked out ahead -------------------------------------------------------------------


def _roster_fields(roster: Roster) -> tuple[object, ...]:
    return roster.known, roster.members, roster.always


def test_a_roster_plus_a_turns_guidelines_is_the_roster_of_them_all() -> None:
    rng = random.Random(18)
    for _ in range(300):
        matched, guidelines, relationships = _scenario(rng)
        for x in rng.sample(guidelines, 2):
            guidelines[guidelines.index(x)] = x.model_copy(update={"enabled": False})
        base = {x.id: x for x in guidelines}
        # A turn's synthetic guidelines: new ids, and ids already there (replaced), some
        # disabled, some always, some tagged.
        extra = {
            gid: g(
                gid,
                tags=rng.sample(["t1", "t2", "t3"], rng.randint(0, 2)),
                always=rng.random() < 0.3,
                enabled=rng.random() < 0.8,
            )
            for gid in rng.sample([*base, "journey:a", "journey:b"], rng.randint(0, 3))
        }
        ahead = Roster.of(base)
        merged = Roster.of({**base, **extra})
        assert _roster_fields(ahead.plus(extra)) == _roster_fields(merged)
        # The roster worked out ahead is left as it was.
        assert _roster_fields(ahead) == _roster_fields(Roster.of(base))
        expected = resolve(matched, {**base, **extra}, relationships)
        assert resolve(matched, ahead.plus(extra), relationships) == expected
