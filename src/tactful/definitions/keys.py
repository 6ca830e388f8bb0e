"""Natural keys: how the SDK recognises a definition it made before when no id is given, so
that running the same definitions again updates them instead of adding copies.

A key names the kind, the agent (empty for a definition shared by all agents), the journeys
the definition is scoped to, and a digest of what identifies it (a guideline's condition and
action, a canned response's template, a term's name, a capability's title, a tag's name).

Definition files use the same keys: an entry a file gives no id gets one derived from its key
(``document.derived_id``), so a definition has one identity however it is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from tactful.domain import journey_tag

_JOURNEY_TAG_PREFIX = journey_tag("")


def digest(*parts: str | None) -> str:
    """A short stable digest of ``parts`` (None counts as empty)."""
    return hashlib.sha256("\x00".join(p or "" for p in parts).encode()).hexdigest()[:32]


def journey_scope(tags: Iterable[str]) -> str:
    """The journeys a definition is scoped to, as part of its identity: the same guideline or
    canned response scoped to another journey (or to none) is another one."""
    return "".join(f":{t}" for t in sorted(set(tags)) if t.startswith(_JOURNEY_TAG_PREFIX))


def guideline_key(agent_id: str, tags: Iterable[str], condition: str, action: str | None) -> str:
    """A guideline's (or, without an action, an observation's) key within an agent."""
    return f"guideline:{agent_id}{journey_scope(tags)}:{digest(condition, action)}"


def canned_response_key(agent_id: str, tags: Iterable[str], template: str) -> str:
    """A canned response's key within an agent (``agent_id`` empty: one shared by all)."""
    return f"canned:{agent_id}{journey_scope(tags)}:{digest(template)}"


def term_key(agent_id: str, name: str) -> str:
    """A glossary term's key: its name within the agent, whatever its case."""
    return f"term:{agent_id}:{name.lower()}"


def capability_key(agent_id: str, title: str) -> str:
    """A capability's key: its title within the agent, whatever its case and outer spaces."""
    return f"capability:{agent_id}:{digest(title.strip().lower())}"


def tag_name_key(name: str) -> str:
    """A tag's key: its name."""
    return f"tag:{name}"


def observation_key(agent_id: str, tags: Iterable[str], condition: str) -> str:
    """The key of the observation a journey with ``tags`` starts on for ``condition``: a
    guideline's key, plus the tags beyond the agent's and journeys' (the observation of a journey
    tagged otherwise is another one)."""
    key = guideline_key(agent_id, tags, condition, None)
    own = f"agent:{agent_id}"
    others = {t for t in tags if t != own and not t.startswith(_JOURNEY_TAG_PREFIX)}
    return key + (f":{digest(*sorted(others))}" if others else "")


def journey_key(agent_id: str, title: str) -> str:
    """A journey's key: its title within the agent, whatever its case and outer spaces."""
    return f"journey:{agent_id}:{digest(title.strip().lower())}"


def variable_key(agent_id: str, name: str) -> str:
    """A context variable's key: its name within the agent, whatever its case."""
    return f"variable:{agent_id}:{name.lower()}"


def agent_key(name: str) -> str:
    """An agent's key: its name."""
    return f"agent:{name}"
