"""The scenario file format: what a conversation test says, as pydantic models.

A scenario file is YAML: the fixtures every scenario shares (the agent, the customer, context
variables, the time, tool stubs), then ``scenarios``, each a list of steps (a customer message
or a custom event, then what the agent must have done that turn) or a simulated customer's
brief. ``docs/testing.md`` shows the whole format; ``load_suite`` reads a file and names the
file and line of every problem.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml  # type: ignore[import-untyped]  # PyYAML is untyped
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails

from tactful.definitions.files import read_yaml
from tactful.domain import Json, ModerationMode, SessionStatus
from tactful.errors import ValidationError


class _Strict(BaseModel):
    # A misspelt key is an error, not a silently ignored expectation.
    model_config = ConfigDict(extra="forbid")


def _listed(value: Any) -> Any:
    """One item or a list of them: ``reply_contains: refund`` is ``[refund]``."""
    return [value] if isinstance(value, str | dict) else value


class CustomerFixture(_Strict):
    """Who talks to the agent: a named customer, created for each run, or the guest."""

    name: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)

    @property
    def guest(self) -> bool:
        return self.name is None


class ToolStub(_Strict):
    """What a tool gives instead of running: a result, an error or a timeout.

    ``tool`` is a tool's name or its ``service:name`` id; ``when`` picks calls by arguments
    (each given argument must be equal; none: every call). The first stub that fits a call
    answers it.
    """

    tool: str
    when: dict[str, Json] = Field(default_factory=dict)
    result: Json = None
    # Values canned responses may use (a tool result's ``fields``).
    fields: dict[str, Json] = Field(default_factory=dict)
    error: str | None = None
    timeout: bool = False
    # The result hands the session to a person.
    handoff: bool = False

    @model_validator(mode="after")
    def _one_outcome(self) -> ToolStub:
        given = [self.error is not None, self.timeout, self.result is not None or bool(self.fields)]
        if sum(given) > 1:
            raise ValueError("a stub gives one of result (with fields), error or timeout")
        return self

    def fits(self, tool_id: str, arguments: dict[str, Any]) -> bool:
        """Whether this stub answers a call of ``tool_id`` with ``arguments``."""
        if self.tool not in (tool_id, tool_id.partition(":")[2]):
            return False
        return all(arguments.get(k) == v for k, v in self.when.items())


class ToolCalled(_Strict):
    """A tool call the turn must have made: the tool, and arguments it must have had."""

    tool: str
    arguments: dict[str, Json] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _name_alone(cls, value: Any) -> Any:
        return {"tool": value} if isinstance(value, str) else value


class JourneyExpected(_Strict):
    """Where a journey must stand after the turn: its state (id) and run status."""

    id: str
    state: str | None = None
    status: Literal["active", "paused", "ended", "dropped", "waiting"] | None = None


class Expect(_Strict):
    """What the agent must have done in one turn. Every key is optional; all given must hold."""

    matched: list[str] = Field(default_factory=list)
    not_matched: list[str] = Field(default_factory=list)
    journey: JourneyExpected | None = None
    tools: list[ToolCalled] = Field(default_factory=list)
    # ``no_tools: true``: no call at all; or the tools that must not have been called.
    no_tools: bool | list[str] = False
    canned: list[str] = Field(default_factory=list)
    reply_contains: list[str] = Field(default_factory=list)
    reply_matches: list[str] = Field(default_factory=list)
    reply_not_contains: list[str] = Field(default_factory=list)
    no_reply: bool = False
    handoff: bool | None = None
    # The agent's capabilities offered to the model this turn (ids), and ones that must not be.
    offered: list[str] = Field(default_factory=list)
    not_offered: list[str] = Field(default_factory=list)
    # The last status the agent reported in the turn ("ready", "error", ...).
    status: SessionStatus | None = None
    # Judged by the model; skipped, with the reason, when none is configured.
    criteria: list[str] = Field(default_factory=list)

    _lists = field_validator(
        "matched",
        "not_matched",
        "tools",
        "canned",
        "reply_contains",
        "reply_matches",
        "reply_not_contains",
        "criteria",
        "offered",
        "not_offered",
        mode="before",
    )(_listed)

    @field_validator("no_tools", mode="before")
    @classmethod
    def _no_tools(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("reply_matches")
    @classmethod
    def _patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"{pattern!r} is not a regular expression: {e}") from e
        return patterns

    @model_validator(mode="after")
    def _reply_or_none(self) -> Expect:
        if self.no_reply and (self.reply_contains or self.reply_matches or self.canned):
            raise ValueError("no_reply cannot go with expectations on the reply")
        return self


class CustomEvent(_Strict):
    """A custom event the customer's client posts (it starts no turn)."""

    data: Json


class Step(_Strict):
    """One step: a customer message (the agent's turn follows), a custom event, or the agent
    asked to speak first (``agent_speaks``: a greeting when empty, else the actions its message
    follows, as ``POST /sessions?allow_greeting=true`` and ``Server.utter`` do)."""

    customer: str | None = None
    # How the customer message is moderated (Parlant's moderation=auto|paranoid|none).
    moderation: ModerationMode = ModerationMode.NONE
    event: CustomEvent | None = None
    agent_speaks: list[str] | None = None
    expect: Expect = Field(default_factory=Expect)
    # The file's line, for failures.
    line: int | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [self.customer is not None, self.event is not None, self.agent_speaks is not None]
        if sum(kinds) != 1:
            raise ValueError(
                "a step is one of `customer: <message>`, `event: {data: ...}` or "
                "`agent_speaks: [actions]` ([] for a greeting)"
            )
        if self.customer is not None and not self.customer.strip():
            raise ValueError("a customer message cannot be empty")
        if self.moderation is not ModerationMode.NONE and self.customer is None:
            raise ValueError("`moderation` applies to a customer message")
        return self


class Brief(_Strict):
    """A simulated customer: a model plays them until the goal is reached or ``max_turns``."""

    goal: str
    persona: str = ""
    facts: list[str] = Field(default_factory=list)
    # The customer's first message; without one the model writes it.
    opening: str | None = None
    max_turns: int = Field(default=8, ge=1, le=50)

    _facts = field_validator("facts", mode="before")(_listed)


class EndState(_Strict):
    """What must hold when a simulated conversation ends."""

    tools: list[ToolCalled] = Field(default_factory=list)
    no_tools: list[str] = Field(default_factory=list)
    journeys_completed: list[str] = Field(default_factory=list)
    # Text no agent reply may contain.
    never_says: list[str] = Field(default_factory=list)
    goal_reached: bool = True

    _lists = field_validator(
        "tools", "no_tools", "journeys_completed", "never_says", mode="before"
    )(_listed)


class Fixtures(_Strict):
    """What a run starts from; a scenario's own override the file's."""

    customer: CustomerFixture | None = None
    # Context variables by name (or id): their value for this customer.
    variables: dict[str, Json] = Field(default_factory=dict)
    # The time the run starts at (ISO 8601; without a zone, UTC).
    time: datetime | None = None
    tools: list[ToolStub] = Field(default_factory=list)
    # Tool services whose tools may really run when no stub answers a call (by default a call
    # nothing stubs fails, so a test never touches a real system by accident).
    real_tools: list[str] | None = None


class Scenario(Fixtures):
    """One conversation test."""

    name: str = Field(min_length=1)
    description: str = ""
    # Run it k times: pass^k needs every run to pass.
    repeat: int | None = Field(default=None, ge=1, le=100)
    steps: list[Step] = Field(default_factory=list)
    simulate: Brief | None = None
    end: EndState | None = None
    line: int | None = None

    @model_validator(mode="after")
    def _steps_or_brief(self) -> Scenario:
        if bool(self.steps) == (self.simulate is not None):
            raise ValueError("a scenario has either steps or a simulated customer (simulate)")
        if self.end is not None and self.simulate is None:
            raise ValueError("`end` checks a simulated conversation; steps carry `expect`")
        return self


class Suite(Fixtures):
    """A scenario file: the agent, shared fixtures, and its scenarios."""

    # A definitions file or folder, or a Python agent file; relative to the scenario file.
    agent: str
    # Which agent, when the file defines several.
    agent_id: str | None = None
    repeat: int = Field(default=1, ge=1, le=100)
    scenarios: list[Scenario] = Field(min_length=1)
    path: Path = Path()

    def agent_path(self) -> Path:
        given = Path(self.agent).expanduser()
        return given if given.is_absolute() else (self.path.parent / given).resolve()

    def fixtures_of(self, scenario: Scenario) -> Fixtures:
        """The scenario's fixtures over the file's: its own stubs first."""
        return Fixtures(
            customer=scenario.customer or self.customer,
            variables={**self.variables, **scenario.variables},
            time=scenario.time or self.time,
            tools=[*scenario.tools, *self.tools],
            real_tools=scenario.real_tools if scenario.real_tools is not None else self.real_tools,
        )

    def runs_of(self, scenario: Scenario) -> int:
        return scenario.repeat or self.repeat


def _problem(path: Path, lines: dict[str, list[int]], error: ErrorDetails) -> str:
    loc = [str(part) for part in error["loc"]]
    where = str(path)
    if len(loc) > 1 and loc[0] == "scenarios" and loc[1].isdigit():
        index = int(loc[1])
        found = lines.get("scenarios", [])
        if index < len(found):
            where = f"{path}:{found[index]}"
    dotted = ".".join(loc)
    return f"{where}: {dotted}: {error['msg']}" if dotted else f"{where}: {error['msg']}"


def load_suite(path: Path | str) -> Suite:
    """Read a scenario file; raises ``ValidationError`` listing each problem with file:line."""
    path = Path(path)
    data, lines = read_yaml(path)
    if not isinstance(data, dict):
        raise ValidationError(
            f"{path}: a scenario file is a mapping with `agent` and `scenarios`",
            problems=(f"{path}: not a mapping",),
        )
    try:
        suite = Suite.model_validate({**data, "path": path})
    except PydanticValidationError as e:
        problems = tuple(_problem(path, lines, err) for err in e.errors())
        raise ValidationError("\n".join(problems), problems=problems) from e
    for scenario, line in zip(suite.scenarios, lines.get("scenarios", []), strict=False):
        scenario.line = line
    _number_steps(path, suite)
    names = [s.name for s in suite.scenarios]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValidationError(
            f"{path}: scenario names must be unique: {', '.join(twice)}",
            problems=tuple(f"{path}: scenario {n!r} is given twice" for n in twice),
        )
    return suite


def _number_steps(path: Path, suite: Suite) -> None:
    """The line of each step, from the YAML's nodes (for failures that point at the file)."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return
    scenarios = _value(root, "scenarios")
    if not isinstance(scenarios, yaml.SequenceNode):
        return
    for scenario, node in zip(suite.scenarios, scenarios.value, strict=False):
        steps = _value(node, "steps")
        if isinstance(steps, yaml.SequenceNode):
            for step, item in zip(scenario.steps, steps.value, strict=False):
                step.line = item.start_mark.line + 1


def _value(node: Any, key: str) -> Any:
    """The value node under ``key`` of a mapping node (None for anything else)."""
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if getattr(k, "value", None) == key), None)


def scenario_files(paths: list[Path]) -> list[Path]:
    """The scenario files under ``paths``: files as given, folders searched for
    ``*.scenarios.yaml`` / ``*.scenarios.yml`` (and ``scenarios.yaml``)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p
                for pattern in ("*scenarios.yaml", "*scenarios.yml")
                for p in path.rglob(pattern)
                if not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            found.append(path)
    return list(dict.fromkeys(found))
