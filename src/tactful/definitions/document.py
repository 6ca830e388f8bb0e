"""An agent's definitions as one document: what ``tactful export`` writes and ``plan`` and
``apply`` read (docs/definitions.md has the format).

``AgentDefinitions`` is the stored form: the agent, and everything carrying its tag (guidelines
and observations, canned responses, terms, capabilities, context variables, journeys), the
relationships with an end among them, and the tags and tool services they name. ``collect``
picks it out of what a store holds (now, or as of a revision); ``to_document`` writes it as
plain data (YAML-ready: no creation times, no defaults, the agent's tag implied);
``from_document`` reads it back, filling what a hand-written file may leave out.

Identity: every definition has an id. A file may leave ids out: one is then derived from the
natural key the SDK gives the same definition (``keys``: a guideline's condition and action and
the journeys it is scoped to, a canned response's template, a term's and a variable's names, a
capability's and a journey's titles; a relationship's kind and ends), so that applying the same
file again changes nothing.
Journey states need ids (transitions name them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import pydantic
from pydantic import BaseModel, Field

from tactful.definitions import keys
from tactful.domain import (
    Agent,
    CannedResponse,
    Capability,
    ContextVariable,
    Endpoint,
    EndpointKind,
    Entity,
    Guideline,
    Journey,
    Relationship,
    Tag,
    Term,
    ToolServiceConfig,
    agent_id_of_tag,
    agent_tag,
    journey_tag,
)
from tactful.errors import ValidationError

E = TypeVar("E", bound=Entity)

# Every kind of stored definition a document may hold, by collection.
KINDS: tuple[type[Entity], ...] = (
    Agent,
    Tag,
    ToolServiceConfig,
    CannedResponse,
    Guideline,
    Term,
    Capability,
    ContextVariable,
    Journey,
    Relationship,
)
# The kinds an agent owns through its tag (``agent:<id>``).
OWNED: tuple[type[Entity], ...] = (
    CannedResponse,
    Guideline,
    Term,
    Capability,
    ContextVariable,
    Journey,
)

# What a store holds, by kind (now, or rebuilt as of a revision).
Holdings = Mapping[type[Entity], Sequence[Entity]]

_JOURNEY_TAG = journey_tag("")
SECTIONS = (
    "agent",
    "tags",
    "services",
    "canned_responses",
    "guidelines",
    "terms",
    "capabilities",
    "variables",
    "journeys",
    "relationships",
    # Python files whose ``attach(server)`` registers the agent's tools and code (matchers,
    # branches, hooks): loaded by ``tactful serve --agent FILE.yaml``, not by a remote apply.
    "code",
)


class AgentDefinitions(BaseModel):
    """Everything that defines one agent, as stored (owned definitions carry its tag)."""

    agent: Agent
    tags: list[Tag] = Field(default_factory=list)
    services: list[ToolServiceConfig] = Field(default_factory=list)
    canned_responses: list[CannedResponse] = Field(default_factory=list)
    guidelines: list[Guideline] = Field(default_factory=list)
    terms: list[Term] = Field(default_factory=list)
    capabilities: list[Capability] = Field(default_factory=list)
    variables: list[ContextVariable] = Field(default_factory=list)
    journeys: list[Journey] = Field(default_factory=list)
    relationships: list[Relationship] = Field(default_factory=list)

    @property
    def tag(self) -> str:
        return agent_tag(self.agent.id)

    def ends(self) -> set[tuple[EndpointKind, str]]:
        """The relationship ends that are this agent's: its tag, guidelines and journeys."""
        ours = {(EndpointKind.TAG, self.tag)}
        ours |= {(EndpointKind.GUIDELINE, g.id) for g in self.guidelines}
        ours |= {(EndpointKind.TAG, journey_tag(j.id)) for j in self.journeys}
        return ours


def of_kind(holdings: Holdings, kind: type[E]) -> list[E]:
    return [e for e in holdings.get(kind, ()) if isinstance(e, kind)]


def tool_ids(definitions: AgentDefinitions) -> set[str]:
    """The tools (``service:name``) the definitions name."""
    used = {t for g in definitions.guidelines for t in g.tools}
    used |= {t for j in definitions.journeys for s in j.states for t in s.tools}
    used |= {v.tool_id for v in definitions.variables if v.tool_id}
    for r in definitions.relationships:
        used |= {e.id for e in (r.source, r.target) if e.kind is EndpointKind.TOOL}
    return used


def foreign(end: Endpoint, ours: set[tuple[EndpointKind, str]]) -> bool:
    """Whether ``end`` belongs to something else than the agent whose ends are ``ours``:
    another agent's (or an untagged) guideline or journey, or another agent's tag. Tools and
    plain tags belong to nobody."""
    if (end.kind, end.id) in ours or end.kind is EndpointKind.TOOL:
        return False
    if end.kind is EndpointKind.GUIDELINE:
        return True
    return end.id.startswith(_JOURNEY_TAG) or agent_id_of_tag(end.id) is not None


def collect(holdings: Holdings, agent_id: str) -> AgentDefinitions | None:
    """The definitions of agent ``agent_id`` among ``holdings`` (None: no such agent)."""
    agent = next((a for a in of_kind(holdings, Agent) if a.id == agent_id), None)
    if agent is None:
        return None
    tag = agent_tag(agent_id)

    def owned(kind: type[E]) -> list[E]:
        return [e for e in of_kind(holdings, kind) if tag in getattr(e, "tags", ())]

    found = AgentDefinitions(
        agent=agent,
        canned_responses=owned(CannedResponse),
        guidelines=owned(Guideline),
        terms=owned(Term),
        capabilities=owned(Capability),
        variables=owned(ContextVariable),
        journeys=owned(Journey),
    )
    ours = found.ends()
    found.relationships = [
        r
        for r in of_kind(holdings, Relationship)
        if {(r.source.kind, r.source.id), (r.target.kind, r.target.id)} & ours
    ]
    named: set[str] = set()
    for kind in OWNED:
        for e in getattr(found, section_of(kind)):
            named.update(e.tags)
    for r in found.relationships:
        named.update(e.id for e in (r.source, r.target) if e.kind is EndpointKind.TAG)
    found.tags = [t for t in of_kind(holdings, Tag) if t.id in named]
    services = {t.partition(":")[0] for t in tool_ids(found)}
    found.services = [s for s in of_kind(holdings, ToolServiceConfig) if s.name in services]
    return found


def section_of(kind: type[Entity]) -> str:
    """The section of a document (and field of ``AgentDefinitions``) holding ``kind``."""
    return {
        Agent: "agent",
        Tag: "tags",
        ToolServiceConfig: "services",
        CannedResponse: "canned_responses",
        Guideline: "guidelines",
        Term: "terms",
        Capability: "capabilities",
        ContextVariable: "variables",
        Journey: "journeys",
        Relationship: "relationships",
    }[kind]


# -- writing ----------------------------------------------------------------------------------


def _plain(entity: Entity, *, drop: Iterable[str] = ()) -> dict[str, Any]:
    return entity.model_dump(mode="json", exclude={"creation_utc", *drop}, exclude_defaults=True)


def to_document(definitions: AgentDefinitions) -> dict[str, Any]:
    """The definitions as plain data, in the file format: no creation times, no values left
    at their defaults, and the agent's tag left out of every ``tags`` (it is implied)."""
    tag = definitions.tag
    document: dict[str, Any] = {"agent": _plain(definitions.agent)}
    document["agent"].setdefault("id", definitions.agent.id)
    document["agent"]["name"] = definitions.agent.name
    if definitions.tags:
        document["tags"] = [{"id": t.id, "name": t.name} for t in definitions.tags]
    if definitions.services:
        document["services"] = [_plain(s, drop=["id"]) for s in definitions.services]
    for kind in OWNED:
        entries = []
        for e in getattr(definitions, section_of(kind)):
            entry = _plain(e)
            tags = [t for t in entry.pop("tags", []) if t != tag]
            if tags:
                entry["tags"] = tags
            entries.append(entry)
        if entries:
            document[section_of(kind)] = entries
    if definitions.relationships:
        document["relationships"] = [_plain(r) for r in definitions.relationships]
    return document


# -- reading ----------------------------------------------------------------------------------


def invalid(problems: Sequence[str]) -> ValidationError:
    """One error for every problem of a document."""
    listed = "".join(f"\n- {p}" for p in problems)
    return ValidationError(
        f"the definitions have {len(problems)} problem(s):{listed}", problems=tuple(problems)
    )


def derived_id(prefix: str, *parts: str | None) -> str:
    """A stable id for a definition a file gives no id, from its natural key (``keys``): the
    same content, the same id."""
    return f"{prefix}-{keys.digest(*parts)[:12]}"


class _Reader:
    """Reads one document into ``AgentDefinitions``, gathering every problem on the way."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        self.tag = agent_tag(agent_id)
        self.problems: list[str] = []

    def entries(self, document: Mapping[str, Any], section: str) -> list[dict[str, Any]]:
        value = document.get(section) or []
        if not isinstance(value, list):
            self.problems.append(f"{section}: a list is expected, not {type(value).__name__}")
            return []
        entries = []
        for i, entry in enumerate(value):
            if isinstance(entry, dict):
                entries.append(dict(entry))
            else:
                self.problems.append(f"{section}[{i}]: a mapping is expected")
        return entries

    def model(self, kind: type[E], data: dict[str, Any], where: str) -> E | None:
        try:
            return kind.model_validate(data)
        except pydantic.ValidationError as e:
            for error in e.errors():
                loc = ".".join(str(p) for p in error["loc"])
                self.problems.append(f"{where}{'.' + loc if loc else ''}: {error['msg']}")
            return None

    def owned(self, data: dict[str, Any]) -> dict[str, Any]:
        tags = data.get("tags") or []
        if isinstance(tags, list):
            data["tags"] = list(dict.fromkeys([self.tag, *tags]))
        return data

    def journeys(self, document: Mapping[str, Any], guidelines: list[Guideline]) -> list[Journey]:
        """Journeys; a condition that is not the id of a guideline of the document is the text
        of an observation, added to ``guidelines`` (scoped like the journey)."""
        journeys = []
        known = {g.id for g in guidelines}
        for i, data in enumerate(self.entries(document, "journeys")):
            data = self.owned(data)
            title = str(data.get("title", ""))
            data.setdefault("id", derived_id("journey", keys.journey_key(self.agent_id, title)))
            conditions = []
            for condition in data.get("conditions") or []:
                if not isinstance(condition, str) or condition in known:
                    conditions.append(condition)
                    continue
                key = keys.guideline_key(self.agent_id, data["tags"], condition.strip(), None)
                observation = Guideline(
                    id=derived_id("observation", key),
                    condition=condition.strip(),
                    tags=data["tags"],
                )
                if observation.id not in known:
                    guidelines.append(observation)
                    known.add(observation.id)
                conditions.append(observation.id)
            data["conditions"] = conditions
            states = data.get("states") or []
            if isinstance(states, list) and states:
                if not all(isinstance(s, dict) and s.get("id") for s in states):
                    self.problems.append(f"journeys[{i}].states: every state needs an id")
                    continue
                data.setdefault("initial_state_id", states[0]["id"])
            for t in data.get("transitions") or []:
                if isinstance(t, dict):
                    t.setdefault(
                        "id",
                        derived_id(
                            "transition",
                            str(t.get("source")),
                            str(t.get("target")),
                            t.get("condition"),
                            t.get("target_journey_id"),
                        ),
                    )
            journey = self.model(Journey, data, f"journeys[{i}]")
            if journey is not None:
                journeys.append(journey)
        return journeys


def from_document(document: Mapping[str, Any], agent_id: str) -> AgentDefinitions:
    """Read a document (the file format) as the definitions of agent ``agent_id``.

    Raises ``ValidationError`` listing every problem (``guidelines[3].condition: Field
    required``); nothing is checked against a store here (``plan`` does that).
    """
    unknown = sorted(set(document) - set(SECTIONS))
    reader = _Reader(agent_id)
    if unknown:
        reader.problems.append(
            f"unknown section(s) {', '.join(map(repr, unknown))}: the sections are "
            + ", ".join(SECTIONS)
        )
    agent_data = document.get("agent")
    if not isinstance(agent_data, dict):
        raise ValidationError("a definitions document needs an `agent` mapping with its name")
    agent = reader.model(Agent, {**agent_data, "id": agent_id}, "agent")

    def read(kind: type[E], section: str, identify: Any) -> list[E]:
        found = []
        for i, data in enumerate(reader.entries(document, section)):
            if kind in OWNED:
                data = reader.owned(data)
            if not data.get("id"):
                data["id"] = identify(data)
            entity = reader.model(kind, data, f"{section}[{i}]")
            if entity is not None:
                found.append(entity)
        return found

    def text(data: dict[str, Any], key: str) -> str:
        value = data.get(key)
        return value.strip() if isinstance(value, str) else ""

    tags = read(Tag, "tags", lambda d: text(d, "name"))
    services = []
    for i, data in enumerate(reader.entries(document, "services")):
        name = text(data, "name")
        service = reader.model(
            ToolServiceConfig, {**data, "id": f"service-{name}"}, f"services[{i}]"
        )
        if service is not None:
            services.append(service)
    canned = read(
        CannedResponse,
        "canned_responses",
        lambda d: derived_id(
            "canned", keys.canned_response_key(agent_id, d["tags"], text(d, "value"))
        ),
    )
    guidelines = read(
        Guideline,
        "guidelines",
        lambda d: derived_id(
            "guideline" if d.get("action") else "observation",
            keys.guideline_key(
                agent_id, d["tags"], text(d, "condition"), text(d, "action") or None
            ),
        ),
    )
    terms = read(
        Term, "terms", lambda d: derived_id("term", keys.term_key(agent_id, text(d, "name")))
    )
    capabilities = read(
        Capability,
        "capabilities",
        lambda d: derived_id("capability", keys.capability_key(agent_id, text(d, "title"))),
    )
    variables = read(
        ContextVariable,
        "variables",
        lambda d: derived_id("variable", keys.variable_key(agent_id, text(d, "name"))),
    )
    journeys = reader.journeys(document, guidelines)
    relationships = []
    for i, data in enumerate(reader.entries(document, "relationships")):
        relationship = reader.model(Relationship, {"id": "-", **data}, f"relationships[{i}]")
        if relationship is not None:
            if not data.get("id"):
                relationship.id = derived_id("relationship", relationship.natural_key)
            relationships.append(relationship)
    if reader.problems or agent is None:
        raise invalid(reader.problems)
    return AgentDefinitions(
        agent=agent,
        tags=tags,
        services=services,
        canned_responses=canned,
        guidelines=guidelines,
        terms=terms,
        capabilities=capabilities,
        variables=variables,
        journeys=journeys,
        relationships=relationships,
    )
