"""Journey graphs as the engine walks them (``JourneyGraph``), and a Mermaid rendering. No turn
logic here; what makes a graph valid is a rule of the model (``domain.journeys.validate``)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from tactful.domain.journeys import Journey, JourneyState, JourneyTransition, StateKind

__all__ = ["JourneyGraph", "blank", "mermaid"]


def _escape(text: str) -> str:
    """Text safe inside a Mermaid label: one line, quotes and colons as entity codes."""
    flat = " ".join(text.split())
    return flat.replace("#", "#35;").replace('"', "#quot;").replace(":", "#58;")


def _label(state: JourneyState, titles: Mapping[str, str]) -> str | None:
    parts = []
    if state.kind is StateKind.TOOL and state.tools:
        parts.append("tool " + ", ".join(state.tools))
    elif state.kind is StateKind.FORK:
        parts.append("fork")
    elif state.kind is StateKind.JOURNEY:
        sub = state.sub_journey_id or "?"
        parts.append(f"journey {titles.get(sub, sub)}")
    if state.action:
        parts.append(state.action)
    return _escape(" - ".join(parts)) if parts else None


def _exit_label(t: JourneyTransition, journeys: Mapping[str, Journey]) -> str:
    """Where a cross-journey transition continues: the journey, and its state unless it is
    that journey's start."""
    other = journeys.get(t.target_journey_id or "")
    if other is None:
        return _escape(f'continue in "{t.target_journey_id}" at {t.target}')
    label = f'continue in "{other.title}"'
    if t.target != other.initial_state_id:
        state = next((s for s in other.states if s.id == t.target), None)
        label += f" at {state.action if state is not None and state.action else t.target}"
    return _escape(label)


def mermaid(journey: Journey, *, journeys: Mapping[str, Journey] | None = None) -> str:
    """``journey`` as a Mermaid ``stateDiagram-v2``.

    States are named ``s0``, ``s1``… in the journey's order (ids may hold characters Mermaid
    refuses); labels come from actions and tools; END states lead to ``[*]``. A transition into
    another journey leads to a node ``x0``, ``x1``… per target (journey and state), labelled
    "continue in" that journey; ``journeys`` (the other journeys by id) gives their titles.
    Transitions whose ends are not states are left out.
    """
    others = journeys or {}
    titles = {j.id: j.title for j in others.values()}
    names: dict[str, str] = {}
    for state in journey.states:
        names.setdefault(state.id, f"s{len(names)}")
    exits: dict[tuple[str, str], str] = {}
    for t in journey.transitions:
        if t.target_journey_id and t.target_journey_id != journey.id and t.source in names:
            exits.setdefault((t.target_journey_id, t.target), f"x{len(exits)}")
    lines = ["stateDiagram-v2"]
    if journey.initial_state_id in names:
        lines.append(f"    [*] --> {names[journey.initial_state_id]}")
    seen: set[str] = set()
    for state in journey.states:
        if state.id in seen:
            continue
        seen.add(state.id)
        label = _label(state, titles)
        if label:
            lines.append(f"    {names[state.id]} : {label}")
    labelled: set[str] = set()
    for t in journey.transitions:
        node = exits.get((t.target_journey_id or "", t.target))
        if node is not None and node not in labelled:
            labelled.add(node)
            lines.append(f"    {node} : {_exit_label(t, others)}")
    for t in journey.transitions:
        if t.source not in names:
            continue
        if t.target_journey_id and t.target_journey_id != journey.id:
            target = exits[(t.target_journey_id, t.target)]
        elif t.target in names:
            target = names[t.target]
        else:
            continue
        line = f"    {names[t.source]} --> {target}"
        if t.condition:
            line += f" : {_escape(t.condition)}"
        lines.append(line)
    ends = dict.fromkeys(s.id for s in journey.states if s.kind is StateKind.END)
    lines.extend(f"    {names[state_id]} --> [*]" for state_id in ends)
    return "\n".join(lines) + "\n"


@dataclass
class JourneyGraph:
    """A journey's states and transitions, indexed, with prompt numbers for its steps.

    Steps are numbered in the journey's order (an action-less initial state gets none); each
    transition into another journey gets a number after them (an "exit").
    """

    journey: Journey
    states: dict[str, JourneyState] = field(init=False)
    out: dict[str, list[JourneyTransition]] = field(init=False)
    numbers: dict[str, int] = field(init=False)
    exits: dict[int, JourneyTransition] = field(init=False)

    def __post_init__(self) -> None:
        self.states = {s.id: s for s in self.journey.states}
        self.out = {}
        for t in self.journey.transitions:
            if t.source in self.states:
                self.out.setdefault(t.source, []).append(t)
        self.numbers = {}
        for s in self.journey.states:
            if s.id == self.journey.initial_state_id and blank(s):
                continue  # an action-less initial state only marks where the journey begins
            self.numbers.setdefault(s.id, len(self.numbers) + 1)
        self.exits = {}
        for t in self.journey.transitions:
            if t.target_journey_id and t.source in self.states:
                self.exits[len(self.numbers) + len(self.exits) + 1] = t

    @property
    def id(self) -> str:
        return self.journey.id

    @property
    def initial(self) -> str:
        return self.journey.initial_state_id

    def state(self, state_id: str | None) -> JourneyState | None:
        return self.states.get(state_id) if state_id else None

    def by_number(self, number: int | None) -> str | None:
        for sid, n in self.numbers.items():
            if n == number:
                return sid
        return None

    def exit_number(self, t: JourneyTransition) -> int | None:
        for n, e in self.exits.items():
            if e.id == t.id:
                return n
        return None

    def naming(self, state_id: str | None) -> tuple[str, str] | None:
        """A state's number ("start" for an unnumbered one) and what it does; None for an
        unknown state."""
        state = self.state(state_id)
        if state is None:
            return None
        n = self.numbers.get(state.id)
        what = state.action or (", ".join(state.tools) if state.tools else state.kind.value)
        return (str(n) if n is not None else "start", what)

    def label(self, state_id: str | None) -> str:
        """A state as traces name it: "2 (Ask for the order number)"."""
        named = self.naming(state_id)
        return str(state_id) if named is None else f"{named[0]} ({named[1]})"

    def local_out(self, state_id: str) -> list[JourneyTransition]:
        return [t for t in self.out.get(state_id, []) if not t.target_journey_id]

    def route(self, source: str, target: str) -> list[JourneyTransition] | None:
        """The shortest chain of local transitions from ``source`` to ``target`` (None: none)."""
        if source == target:
            return []
        previous: dict[str, JourneyTransition] = {}
        todo = deque([source])
        seen = {source}
        while todo:
            sid = todo.popleft()
            for t in self.local_out(sid):
                if t.target in seen:
                    continue
                seen.add(t.target)
                previous[t.target] = t
                if t.target == target:
                    chain = [t]
                    while chain[0].source != source:
                        chain.insert(0, previous[chain[0].source])
                    return chain
                todo.append(t.target)
        return None

    def actionable(self, state_id: str | None) -> bool:
        """Whether being at this state means doing something in this turn's reply."""
        state = self.state(state_id)
        if state is None:
            return False
        if state.kind is StateKind.TOOL:
            return True
        return state.kind in (StateKind.CHAT, StateKind.END) and not blank(state)


def blank(state: JourneyState) -> bool:
    """A chat state without an action (an initial state may be one)."""
    return state.kind is StateKind.CHAT and not (state.action or "").strip()
