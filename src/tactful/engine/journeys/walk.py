"""Walking a journey's graph by rules, where the model does not choose the step: on the
offline tier, when a journey starts, and after a tool state (code conditions, or the results).

The rules: a code condition decides its transition; a transition into a tool state holds once
the tool can run (arguments from patterns, or the customer's answer to the step); another
conditional transition holds when its condition is close enough to the latest message (after
a tool state: the closest one to the results wins); an unconditional one once the customer
answered the step. ``Walker.towards`` follows a route the model chose, stopping at a tool or
sub-journey state on the way.

Offline, a chat step counts as answered (``Walker.unanswered``) unless the latest message asks a
question of its own that is neither like the step (its action, the conditions of its ways on)
nor carries an argument of a tool ahead: an unrelated question must not move a journey on into a
consequential tool (issue 18). A step whose only way on is an end needs no answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tactful.domain import (
    ArgumentSource,
    Guideline,
    JourneyTransition,
    MatchMethod,
    MatchVerdict,
    ProposedArgument,
    ProposedToolCall,
    StateKind,
    ToolSpec,
    TransitionConsidered,
)
from tactful.engine.context import TurnContext
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.hooks import BranchContext, Hooks
from tactful.engine.journeys.graph import JourneyGraph, blank
from tactful.engine.match import Match
from tactful.engine.options import JOURNEY_CONDITION_THRESHOLD
from tactful.engine.retrieve import Ranked
from tactful.engine.tools import HIDDEN, from_patterns, plan_tool_calls

# Longest walk through states in one decision (guards against cycles of unconditional edges).
MAX_WALK = 25

Handoff = tuple[str, str]  # (journey id, state id) a cross-journey transition leads to


@dataclass
class Walk:
    """Where a decision leads: the states entered, skipped and considered on the way."""

    entered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    considered: list[TransitionConsidered] = field(default_factory=list)
    handoff: Handoff | None = None
    # Offline: why the latest message did not answer the step walked from (None: it did).
    unanswered: str | None = None


def choice_ahead(graph: JourneyGraph, source: str) -> list[JourneyTransition]:
    """The conditional transitions met on the way on from ``source`` (through forks)."""
    found: list[JourneyTransition] = []
    todo, seen = [source], {source}
    while todo:
        for t in graph.out.get(todo.pop(), []):
            if t.condition:
                found.append(t)
            target = graph.states.get(t.target)
            if target is not None and target.kind is StateKind.FORK and t.target not in seen:
                seen.add(t.target)
                todo.append(t.target)
    return found


class Walker:
    """The rules above, over the embedding cache (similarity) and the code conditions."""

    def __init__(
        self,
        cache: EmbeddingCache,
        threshold: float = JOURNEY_CONDITION_THRESHOLD,
        hooks: Hooks | None = None,
    ) -> None:
        self.cache = cache
        self.threshold = threshold
        self.hooks = hooks or Hooks()

    def towards(
        self,
        graph: JourneyGraph,
        source: str,
        target: str,
        *,
        exit_: JourneyTransition | None = None,
    ) -> Walk:
        """Follow the shortest route to ``target``, stopping early at a tool or sub-journey
        state on the way (it must run first); then take ``exit_`` into another journey."""
        walk = Walk()
        route = graph.route(source, target) or []
        for i, t in enumerate(route):
            state = graph.states[t.target]
            walk.entered.append(t.target)
            walk.considered.append(
                TransitionConsidered(
                    transition_id=t.id,
                    target=t.target,
                    condition=t.condition,
                    taken=True,
                    why="on the way to the step chosen",
                )
            )
            if i < len(route) - 1:
                if state.kind in (StateKind.TOOL, StateKind.JOURNEY):
                    return walk  # it runs first: the exit is not reached this time
                if state.kind is StateKind.CHAT:
                    walk.skipped.append(t.target)
        if exit_ is not None:
            walk.handoff = (exit_.target_journey_id or "", exit_.target)
            walk.considered.append(
                TransitionConsidered(
                    transition_id=exit_.id,
                    target=exit_.target,
                    condition=exit_.condition,
                    taken=True,
                    why=f"continues in the journey {exit_.target_journey_id}",
                )
            )
        return walk

    async def forward(
        self,
        ctx: TurnContext,
        graph: JourneyGraph,
        source: str,
        *,
        fresh: bool,
        specs: Mapping[str, ToolSpec],
        found: dict[str, list[ProposedToolCall]] | None = None,
        fill: bool = False,
    ) -> Walk:
        """Follow the transitions that hold, from ``source``: a state whose question was
        asked (``fresh=False``: the customer's reply may take an unconditional transition)
        or one just entered (``fresh=True``: only conditions already met lead on). Stops at a
        step that needs the customer, a tool or sub-journey state (it must run) or an end."""
        walk = Walk()
        at, answered = source, not fresh
        if answered:
            walk.unanswered = await self.unanswered(ctx, graph, source, specs)
        for _ in range(MAX_WALK):
            state = graph.states.get(at)
            if state is None or not graph.out.get(at):
                break
            held = at == source and walk.unanswered is not None
            if held:
                # Only a code condition may still lead on: the message answered nothing.
                moves = self.held_back(graph, at, walk)
                if not moves:
                    break
            elif (
                at != source
                and state.kind is not StateKind.CHAT
                and state.kind is not StateKind.FORK
            ):
                break
            else:
                moves = graph.out[at]
            free = not held and (answered or blank(state) or state.kind is StateKind.FORK)
            chosen, considered = await self.choose(
                ctx,
                graph,
                moves,
                unconditional=free,
                specs=specs,
                answered=answered and fill and not held,
                found=None if held else found,
            )
            walk.considered += considered
            if chosen is None:
                break
            if chosen.target_journey_id:
                walk.handoff = (chosen.target_journey_id, chosen.target)
                break
            if at != source and state.kind is StateKind.CHAT and not blank(state):
                walk.skipped.append(at)
            walk.entered.append(chosen.target)
            at, answered = chosen.target, False
        # Never rest at a fork: without a branch that holds, stay before it.
        while walk.entered and graph.states[walk.entered[-1]].kind is StateKind.FORK:
            walk.entered.pop()
            if walk.skipped and walk.skipped[-1] == (walk.entered[-1] if walk.entered else source):
                walk.skipped.pop()
        return walk

    def held_back(self, graph: JourneyGraph, at: str, walk: Walk) -> list[JourneyTransition]:
        """The ways on from an unanswered step: those code decides (the others are recorded
        as not taken)."""
        walk.considered += [
            TransitionConsidered(
                transition_id=t.id,
                target=t.target,
                condition=t.condition,
                why="not taken: the step is not answered",
            )
            for t in graph.out[at]
            if t.id not in self.hooks.branches
        ]
        return [t for t in graph.out[at] if t.id in self.hooks.branches]

    async def unanswered(
        self,
        ctx: TurnContext,
        graph: JourneyGraph,
        source: str,
        specs: Mapping[str, ToolSpec],
    ) -> str | None:
        """Offline: why the latest message does not answer the chat step ``source`` (None: it
        does). A statement answers; so does a question that carries an argument of a tool the
        step leads to (by the parameter's pattern, as the offline tier fills arguments) or is
        like the step (its action or a condition of its ways on, at the journey threshold).

        Why not similarity alone: with the offline embedder, answers to a question are rarely
        like the question. At Voltmart's "Ask why the customer is returning it", "they're too
        small" scores 0.02 and "the left earcup crackles" 0.11, no more than "Do you sell gift
        cards?" (0.09) or "how long do refunds take?" (0.24): no threshold tells them apart. What
        does is the question mark the offline tier already reads as "asks one itself" (an
        answer in a question's form, "is VM12345678 returnable?", still fills its argument).
        A statement unrelated to the step still answers it offline; the model tier judges it.
        """
        state = graph.states.get(source)
        if state is None or state.kind is not StateKind.CHAT or blank(state):
            return None
        moves = graph.out.get(source, [])
        ahead = [
            t
            for t in moves
            if t.target_journey_id
            or (target := graph.states.get(t.target)) is None
            or target.kind is not StateKind.END
        ]
        message = ctx.last_customer_message.strip()
        if not ahead or "?" not in message:
            return None
        if self.fills_argument(ctx, graph, ahead, specs):
            return None
        texts = [state.action or "", *(t.condition or "" for t in moves)]
        texts = [t for t in dict.fromkeys(texts) if t.strip()]
        best = 0.0
        if texts:
            # The message's vector is the one the conditions are compared with in ``choose``
            # (the cache keeps it): one embedding of the message a turn.
            query = (await self.cache.embed_messages([message]))[0]
            best = float(np.max(await self.cache.embed(texts) @ query))
        if best >= self.threshold:
            return None
        return (
            "the message does not answer the step: it asks a question of its own "
            f"(similarity {best:.2f} < {self.threshold:.2f}) and gives no argument of a tool ahead"
        )

    @staticmethod
    def fills_argument(
        ctx: TurnContext,
        graph: JourneyGraph,
        moves: Sequence[JourneyTransition],
        specs: Mapping[str, ToolSpec],
    ) -> bool:
        """Whether the latest message alone gives a patterned argument of a tool state one of
        ``moves`` leads into."""
        latest = [u for u in ctx.messages if u.role == "customer"][-1:]
        alone = replace(ctx, messages=latest)
        for t in moves:
            target = graph.states.get(t.target)
            if t.target_journey_id or target is None or target.kind is not StateKind.TOOL:
                continue
            for tid in target.tools:
                spec = specs.get(tid)
                if spec is not None and from_patterns(spec, alone):
                    return True
        return False

    async def choose(
        self,
        ctx: TurnContext,
        graph: JourneyGraph,
        moves: Sequence[JourneyTransition],
        *,
        unconditional: bool,
        specs: Mapping[str, ToolSpec],
        evidence: str | None = None,
        forced: bool = False,
        results: Sequence[tuple[str, Any]] = (),
        answered: bool = False,
        found: dict[str, list[ProposedToolCall]] | None = None,
    ) -> tuple[JourneyTransition | None, list[TransitionConsidered]]:
        """The transition that holds: a code condition decides its transition; then, by the
        offline rules, a tool state with its arguments, a condition close to the latest
        message (``forced``, after a tool state: the closest condition wins), an
        unconditional transition. None when none holds."""
        considered = [
            TransitionConsidered(transition_id=t.id, target=t.target, condition=t.condition)
            for t in moves
        ]
        coded = [i for i, t in enumerate(moves) if t.id in self.hooks.branches]
        if coded:
            view = BranchContext.with_results(ctx, results)
            for i in coded:
                holds, error = await self.hooks.run_branch(moves[i].id, view)
                considered[i].why = error or f"code condition: {'holds' if holds else 'not met'}"
                if holds:
                    considered[i].taken = True
                    return moves[i], considered
        # Offline, a step into a tool state is taken when the tool can run, never on wording.
        into_tool = {
            i
            for i, t in enumerate(moves)
            if not t.target_journey_id
            and (target := graph.states.get(t.target)) is not None
            and target.kind is StateKind.TOOL
        }
        conditional = [
            i
            for i, t in enumerate(moves)
            if t.condition and t.id not in self.hooks.branches and i not in into_tool
        ]
        for i in sorted(into_tool):
            if not moves[i].condition or moves[i].id in self.hooks.branches:
                continue
            calls = self.tool_ready(ctx, graph, moves[i], specs, answered)
            if calls is not None:
                if found is not None:
                    found[moves[i].target] = calls
                considered[i].taken = True
                considered[i].why = "the tool step it leads to has every argument it needs"
                return moves[i], considered
        if conditional:
            text = evidence if evidence is not None else ctx.last_customer_message
            query = (await self.cache.embed_messages([text or " "]))[0]
            fit = await self.cache.embed([moves[i].condition or "" for i in conditional]) @ query
            for k, i in enumerate(conditional):
                considered[i].why = f"similarity {float(fit[k]):.3f}"
            best = int(np.argmax(fit))
            if forced or float(fit[best]) >= self.threshold:
                i = conditional[best]
                considered[i].taken = True
                considered[i].why += (
                    ": the closest condition" if forced else f" >= {self.threshold:.2f}"
                )
                return moves[i], considered
        plain = [
            i for i, t in enumerate(moves) if not t.condition and t.id not in self.hooks.branches
        ]
        if plain and (unconditional or forced):
            i = plain[0]
            considered[i].taken = True
            considered[i].why = "unconditional"
            return moves[i], considered
        return None, considered

    @staticmethod
    def tool_ready(
        ctx: TurnContext,
        graph: JourneyGraph,
        t: JourneyTransition,
        specs: Mapping[str, ToolSpec],
        answered: bool,
    ) -> list[ProposedToolCall] | None:
        """Offline: a transition into a tool state holds once its tools' arguments are given;
        returns their calls (None: not ready). Arguments come from parameter patterns in the
        customer's messages and, when the customer just answered a step, the answer itself
        fills the one required argument still missing (the step asked for it)."""
        state = graph.states.get(t.target)
        if t.target_journey_id or state is None or state.kind is not StateKind.TOOL:
            return None
        calls: list[ProposedToolCall] = []
        answer = ctx.last_customer_message.strip()
        for tid in state.tools:
            spec = specs.get(tid)
            if spec is None:
                return None
            given = dict(from_patterns(spec, ctx))
            properties = spec.parameters.get("properties", {})
            missing = [
                n for n in spec.required if n not in given and not properties.get(n, {}).get(HIDDEN)
            ]
            if answered and answer and len(missing) == 1:
                name = missing[0]
                schema = properties.get(name, {})
                fits = (
                    schema.get("type", "string") == "string"
                    and "pattern" not in schema
                    and "enum" not in schema
                    and schema.get("minLength", 0) <= len(answer) <= schema.get("maxLength", 2000)
                )
                if fits:
                    given[name] = ProposedArgument(
                        name=name, value=answer, source=ArgumentSource.CUSTOMER
                    )
            calls.append(ProposedToolCall(tool=spec.name, arguments=list(given.values())))
        probe = Match(
            Ranked(Guideline(id="probe", condition="probe", tools=list(state.tools)), 1.0, 1.0),
            MatchVerdict(
                guideline_id="probe",
                condition="",
                applies=True,
                method=MatchMethod.OFFLINE,
                tool_calls=calls,
            ),
        )
        planned = plan_tool_calls([probe], specs, ctx)
        ready = bool(planned) and all(p.blocked is None for p in planned)
        return calls if ready else None

    async def after_tool(
        self,
        ctx: TurnContext,
        graph: JourneyGraph,
        source: str,
        results: Sequence[tuple[str, Any]],
        specs: Mapping[str, ToolSpec],
    ) -> Walk:
        """Without the model: the way on from a tool state that ran, through forks."""
        shown = "\n".join(f"{tool}: {data}" for tool, data in results)
        walk = Walk()
        at = source
        for _ in range(MAX_WALK):
            moves = graph.out.get(at, [])
            if not moves:
                break
            chosen, considered = await self.choose(
                ctx,
                graph,
                moves,
                unconditional=True,
                specs=specs,
                evidence=f"{shown}\n{ctx.last_customer_message}",
                forced=True,
                results=results,
            )
            walk.considered += considered
            if chosen is None:
                break
            if chosen.target_journey_id:
                walk.handoff = (chosen.target_journey_id, chosen.target)
                break
            walk.entered.append(chosen.target)
            at = chosen.target
            if graph.states[at].kind is not StateKind.FORK:
                break
        return walk
