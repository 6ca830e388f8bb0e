"""Messages that are not the customer's: the agent asked to speak (Parlant's ``ai_agent``
message with ``guidelines``) and a person's (``human_agent``), for ``POST .../events``."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from tactful.api.params import Params
from tactful.domain import (
    Event,
    EventKind,
    ProactiveKind,
    ProactiveRequest,
    RequestedAction,
    Session,
    SessionStatus,
    UtteranceRationale,
)
from tactful.engine.timeline import wait_for_events
from tactful.errors import ValidationError
from tactful.runtime import Runtime


class ParticipantDTO(Params):
    id: str | None = None
    display_name: str = Field(min_length=1)


class AgentMessageGuidelineDTO(Params):
    """Parlant's ``AgentMessageGuideline``: what the agent's message must do."""

    action: str = Field(min_length=1, max_length=2000)
    rationale: UtteranceRationale | None = UtteranceRationale.UNSPECIFIED


async def human_participant(
    runtime: Runtime, session_id: str, participant: ParticipantDTO | None
) -> dict[str, Any]:
    """Who a human_agent message is from: the participant given, else the operator who took
    the session."""
    if participant is not None:
        return participant.model_dump(exclude_none=True)
    handoff = (await runtime.store.get(Session, session_id)).handoff
    if handoff is None or handoff.assignee is None:
        raise ValidationError(
            "a human_agent message needs a 'participant' with a 'display_name' (or a session "
            "an operator took: PUT /sessions/{id}/handoff/assignee)",
            loc=("body", "participant"),
        )
    return handoff.assignee.model_dump()


async def ask_agent(
    runtime: Runtime, session_id: str, guidelines: list[AgentMessageGuidelineDTO]
) -> Event:
    """Parlant's agent message on demand: a turn without a customer message. With
    ``guidelines`` (actions to follow) the answer is the agent's message once written, as
    Parlant's; the turn's last status when it stayed silent or was superseded, or the
    ``acknowledged`` one when it takes longer than a long poll may wait. Without, the
    ``acknowledged`` status at once (follow the turn by its trace id)."""
    actions = [
        RequestedAction(action=g.action, rationale=g.rationale or UtteranceRationale.UNSPECIFIED)
        for g in guidelines
    ]
    request = ProactiveRequest(kind=ProactiveKind.UTTERANCE, actions=actions)
    opened = await runtime.engine.speak(session_id, request)
    if not actions:
        return opened
    wait = runtime.settings.long_poll_max_s
    offset = opened.offset + 1
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while (remaining := deadline - loop.time()) > 0:
        try:
            found = await wait_for_events(
                runtime.store,
                runtime.bus,
                session_id,
                min_offset=offset,
                kinds=[EventKind.MESSAGE, EventKind.STATUS],
                trace_id=opened.trace_id,
                timeout=remaining,
                recent=runtime.engine.timeline.recent,
            )
        except TimeoutError:
            break
        for event in found:
            if event.kind is EventKind.MESSAGE and _complete(event):
                return event
            if event.kind is EventKind.STATUS and _ends_turn(event):
                return event
        offset = found[-1].offset + 1
    return opened


def _ends_turn(event: Event) -> bool:
    data = event.data if isinstance(event.data, dict) else {}
    return data.get("status") in (SessionStatus.READY, SessionStatus.CANCELLED)


def _complete(event: Event) -> bool:
    """Not a message still being streamed (its chunks end with None once complete)."""
    chunks = event.data.get("chunks") if isinstance(event.data, dict) else None
    return not isinstance(chunks, list) or (bool(chunks) and chunks[-1] is None)
