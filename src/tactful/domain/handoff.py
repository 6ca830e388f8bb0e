"""Handoff: a session waiting for, or worked by, a person (manual mode).

While a session is in manual mode the agent stays silent and ``Session.handoff`` says why it
was handed over, since when, by whom, and which operator (a person behind an operator key)
took it. Each step is also an event on the timeline (``handoff_event``): a ``custom`` event
from ``system`` whose data names the step.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

# The key of a handoff step in a custom event's data: ``{"handoff": "requested", ...}``.
HANDOFF_KEY = "handoff"
REASON_MAX = 1000


class HandoffStep(StrEnum):
    """A step of a handoff, as its timeline event names it."""

    # The session went to manual mode: it waits for a person.
    REQUESTED = "requested"
    # An operator took it (or another operator took it over).
    TAKEN = "taken"
    # Its operator gave it back to the queue; it still waits for a person.
    RELEASED = "released"
    # Back to automatic mode: the agent answers again.
    RETURNED = "returned"


class Operator(BaseModel):
    """The person working a session: ``id`` as the operator's own system knows them."""

    id: str = Field(min_length=1, max_length=200)
    display_name: str = Field(min_length=1, max_length=200)


class Handoff(BaseModel):
    """Why and since when a session waits for a person, and who took it."""

    reason: str = Field(default="", max_length=REASON_MAX)
    since: datetime
    # Who handed it over: a principal ("key:<id> (<name>)", "development") or "tool:<id>".
    by: str = ""
    # The turn that handed it over, when one did.
    trace_id: str | None = None
    assignee: Operator | None = None
    assigned_utc: datetime | None = None


def handoff_event(step: HandoffStep, by: str, **data: Any) -> dict[str, Any]:
    """The data of the timeline event that records one handoff step."""
    return {HANDOFF_KEY: step.value, "by": by, **{k: v for k, v in data.items() if v is not None}}


def customer_view(data: dict[str, Any]) -> dict[str, Any]:
    """A handoff event as customers and guests see it: the step and the operator's display
    name; not the reason nor who (which key, which tool) did it."""
    view: dict[str, Any] = {HANDOFF_KEY: data.get(HANDOFF_KEY)}
    operator = data.get("operator")
    if isinstance(operator, dict) and "display_name" in operator:
        view["operator"] = {"display_name": operator["display_name"]}
    return view
