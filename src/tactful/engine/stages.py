"""What each stage of a turn hands the next (``engine.pipeline``): typed results, one per
stage from ``retrieve`` to ``compose``. Lifecycle hooks read them too (``engine.stage_hooks``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tactful.domain import Clarification, MatchVerdict, ToolSpec
from tactful.engine import capabilities, glossary, variables
from tactful.engine.candidates import CandidateSet
from tactful.engine.compose import Reply
from tactful.engine.emit import ReplyStream
from tactful.engine.journeys import JourneyOutcome, JourneyPlan
from tactful.engine.match import Match
from tactful.engine.retrieve import Ranked
from tactful.engine.retrievers import RetrievedSet
from tactful.engine.tools import ToolFindings


@dataclass
class Retrieval:
    """Stage 3: what may apply, ranked, and what each candidate gets."""

    ranked: list[Ranked]
    chosen: CandidateSet
    journeys: JourneyPlan
    values: list[variables.VariableValue]
    terms: list[glossary.RelevantTerm]
    specs: dict[str, ToolSpec]
    # Guidelines decided by their code matchers, not by the model.
    coded: list[str]
    # What the agent can do that bears on the turn.
    offered: list[capabilities.RelevantCapability] = field(default_factory=list)

    @property
    def glossary(self) -> str:
        return glossary.for_prompt(self.terms)

    @property
    def capabilities(self) -> str:
        return capabilities.for_prompt(self.offered)


@dataclass
class Matching:
    """Stage 4: every verdict, and where the journeys went."""

    verdicts: list[MatchVerdict]
    journeys: JourneyOutcome


@dataclass
class Decision:
    """Stage 5: the active guidelines and followed journeys, as matches."""

    matched: list[Match]
    clarification: Clarification | None


@dataclass
class Action:
    """Stage 6: what the tools and retrievers found, and the guidelines the reply follows."""

    matched: list[Match]
    findings: ToolFindings
    retrieved: RetrievedSet = field(default_factory=RetrievedSet)


@dataclass
class Composed:
    """Stage 7: the reply, and the stream it went out through (if it streamed)."""

    reply: Reply
    data: dict[str, Any]
    stream: ReplyStream | None
