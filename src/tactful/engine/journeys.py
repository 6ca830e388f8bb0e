"""Journey graphs: structural validation and a Mermaid rendering. No turn logic here."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection

from tactful.domain.journeys import Journey, JourneyState, StateKind

__all__ = ["mermaid", "validate"]


def _describe(state: JourneyState) -> str:
    if state.action:
        return f"{state.id!r} ({state.action!r})"
    return repr(state.id)


def validate(
    journey: Journey,
    *,
    known_tools: Collection[str] | None = None,
    complete: bool = True,
) -> list[str]:
    """The problems of ``journey``'s graph, one sentence each; empty when it is valid.

    ``known_tools``: the tool ids tool states may name (unchecked when None). With
    ``complete=False`` (a graph under construction) fork states may still lack their branches.
    The initial state may have no action: it only marks where the journey starts.
    """
    problems: list[str] = []
    counts = Counter(s.id for s in journey.states)
    for state_id, n in counts.items():
        if n > 1:
            problems.append(f"state id {state_id!r} is used by {n} states")
    states = {s.id: s for s in journey.states}

    if not journey.initial_state_id:
        problems.append("the journey has no initial state")
    elif journey.initial_state_id not in states:
        problems.append(f"the initial state {journey.initial_state_id!r} is not a state")

    outgoing: dict[str, list[str]] = defaultdict(list)
    conditional: Counter[str] = Counter()
    for t in journey.transitions:
        missing = [
            f"{end} {ref!r}"
            for end, ref in (("source", t.source), ("target", t.target))
            if ref not in states
        ]
        if missing:
            problems.append(
                f"transition {t.id!r} is dangling: its {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not a state"
            )
        source = states.get(t.source)
        if source is not None and source.kind is StateKind.END:
            problems.append(f"transition {t.id!r} leaves the end state {t.source!r}")
        if not missing:
            outgoing[t.source].append(t.target)
            if t.condition:
                conditional[t.source] += 1

    if journey.initial_state_id in states:
        seen = {journey.initial_state_id}
        todo = [journey.initial_state_id]
        while todo:
            for target in outgoing[todo.pop()]:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        for state_id in states:
            if state_id not in seen:
                problems.append(
                    f"state {_describe(states[state_id])} is unreachable from the initial state"
                )

    known = None if known_tools is None else set(known_tools)
    for state in states.values():
        if state.kind is StateKind.TOOL:
            if not state.tools:
                problems.append(f"tool state {state.id!r} names no tools")
            elif known is not None:
                for tool in state.tools:
                    if tool not in known:
                        problems.append(f"tool state {state.id!r} names unknown tool {tool!r}")
        elif state.kind is StateKind.FORK:
            if complete and conditional[state.id] < 2:
                problems.append(
                    f"fork state {state.id!r} needs at least two outgoing conditional "
                    f"transitions (it has {conditional[state.id]})"
                )
        elif (
            state.kind is StateKind.CHAT
            and not (state.action or "").strip()
            and state.id != journey.initial_state_id
        ):
            problems.append(f"chat state {state.id!r} has no action")
    return problems


def _escape(text: str) -> str:
    """Text safe inside a Mermaid label: one line, quotes and colons as entity codes."""
    flat = " ".join(text.split())
    return flat.replace("#", "#35;").replace('"', "#quot;").replace(":", "#58;")


def _label(state: JourneyState) -> str | None:
    parts = []
    if state.kind is StateKind.TOOL and state.tools:
        parts.append("tool " + ", ".join(state.tools))
    elif state.kind is StateKind.FORK:
        parts.append("fork")
    if state.action:
        parts.append(state.action)
    if state.sub_journey_id:
        parts.append(f"journey {state.sub_journey_id}")
    return _escape(" - ".join(parts)) if parts else None


def mermaid(journey: Journey) -> str:
    """``journey`` as a Mermaid ``stateDiagram-v2``.

    States are named ``s0``, ``s1``… in the journey's order (ids may hold characters Mermaid
    refuses); labels come from actions and tools; END states lead to ``[*]``. Transitions whose
    ends are not states are left out.
    """
    names: dict[str, str] = {}
    for state in journey.states:
        names.setdefault(state.id, f"s{len(names)}")
    lines = ["stateDiagram-v2"]
    if journey.initial_state_id in names:
        lines.append(f"    [*] --> {names[journey.initial_state_id]}")
    seen: set[str] = set()
    for state in journey.states:
        if state.id in seen:
            continue
        seen.add(state.id)
        label = _label(state)
        if label:
            lines.append(f"    {names[state.id]} : {label}")
    for t in journey.transitions:
        if t.source in names and t.target in names:
            line = f"    {names[t.source]} --> {names[t.target]}"
            if t.condition:
                line += f" : {_escape(t.condition)}"
            lines.append(line)
    ends = dict.fromkeys(s.id for s in journey.states if s.kind is StateKind.END)
    lines.extend(f"    {names[state_id]} --> [*]" for state_id in ends)
    return "\n".join(lines) + "\n"
