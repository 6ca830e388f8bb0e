"""``/agents``: the unit of conversational configuration (Parlant 3.3 shapes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel, Field

from tactful.api.auth import STAFF, Role, allow, session_changed
from tactful.api.params import JSON_INTEGER, Flag, Params, TagsUpdate
from tactful.api.runtime import RuntimeDep
from tactful.definitions import agents
from tactful.domain import Agent, CompositionMode, MessageOutputMode, ModerationAction, Session

router = APIRouter(prefix="/agents", tags=["agents"])

GUEST_SESSIONS = (
    "Anonymous browsers may start a session with this agent and use only that session "
    "(production mode; ours)"
)
MODERATION_ACTION = (
    "What a customer message moderation flagged leads to: refuse, handoff or warn (null: the "
    "server's moderation_action setting; ours)"
)
MODERATION_REFUSAL = "The refusal of a flagged message (null: the server's setting; ours)"


class AgentDTO(BaseModel):
    """An agent, as Parlant's ``Agent``; ``no_match_reply`` and ``creation_utc`` are ours."""

    id: str
    name: str
    description: str | None = None
    max_engine_iterations: int
    composition_mode: CompositionMode
    message_output_mode: MessageOutputMode
    tags: list[str]
    no_match_reply: str
    reply_in_customer_language: bool = True
    preambles: list[str] = Field(default_factory=list)
    preamble_after_ms: int = 2000
    guest_sessions: bool = False
    moderation_action: ModerationAction | None = None
    moderation_refusal: str | None = None
    creation_utc: datetime


class AgentCreationParams(Params):
    name: str = Field(min_length=1, max_length=200, description="Display name")
    id: str | None = Field(default=None, min_length=1, max_length=128, description="Custom id")
    description: str | None = None
    max_engine_iterations: Annotated[int, Field(ge=1, le=10), JSON_INTEGER] | None = None
    composition_mode: CompositionMode | None = None
    message_output_mode: MessageOutputMode | None = None
    tags: list[str] | None = Field(default=None, description="Tag ids")
    no_match_reply: str | None = Field(
        default=None, min_length=1, description="What the agent says when nothing applies (ours)"
    )
    reply_in_customer_language: Flag | None = Field(
        default=None, description="Written replies follow the customer's language (ours)"
    )
    preambles: list[str] | None = Field(
        default=None, description="Acknowledgements sent before a slow reply (ours)"
    )
    preamble_after_ms: Annotated[int, Field(ge=0, le=60000), JSON_INTEGER] | None = None
    guest_sessions: Flag | None = Field(default=None, description=GUEST_SESSIONS)
    moderation_action: ModerationAction | None = Field(default=None, description=MODERATION_ACTION)
    moderation_refusal: str | None = Field(
        default=None, min_length=1, max_length=2000, description=MODERATION_REFUSAL
    )


class AgentUpdateParams(Params):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = None
    max_engine_iterations: Annotated[int, Field(ge=1, le=10), JSON_INTEGER] | None = None
    composition_mode: CompositionMode | None = None
    message_output_mode: MessageOutputMode | None = None
    tags: TagsUpdate | None = None
    no_match_reply: str | None = Field(default=None, min_length=1)
    reply_in_customer_language: Flag | None = Field(
        default=None, description="Written replies follow the customer's language (ours)"
    )
    preambles: list[str] | None = Field(
        default=None, description="Acknowledgements sent before a slow reply (ours)"
    )
    preamble_after_ms: Annotated[int, Field(ge=0, le=60000), JSON_INTEGER] | None = None
    guest_sessions: Flag | None = Field(default=None, description=GUEST_SESSIONS)
    moderation_action: ModerationAction | None = Field(default=None, description=MODERATION_ACTION)
    moderation_refusal: str | None = Field(
        default=None, min_length=1, max_length=2000, description=MODERATION_REFUSAL
    )


def agent_dto(agent: Agent) -> AgentDTO:
    return AgentDTO(
        id=agent.id,
        name=agent.name,
        description=agent.description,
        max_engine_iterations=agent.max_engine_iterations,
        composition_mode=agent.composition_mode,
        message_output_mode=agent.message_output_mode,
        tags=agent.tags,
        no_match_reply=agent.no_match_reply,
        reply_in_customer_language=agent.reply_in_customer_language,
        preambles=agent.preambles,
        preamble_after_ms=agent.preamble_after_ms,
        guest_sessions=agent.guest_sessions,
        moderation_action=agent.moderation_action,
        moderation_refusal=agent.moderation_refusal,
        creation_utc=agent.creation_utc,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "A tag was not found"}, 409: {"description": "Id taken"}},
)
async def create_agent(params: AgentCreationParams, runtime: RuntimeDep) -> AgentDTO:
    """Create an agent. Tags must exist; a custom ``id`` must be free."""
    agent = Agent(**params.model_dump(exclude_none=True))
    return agent_dto(await agents.create_agent(runtime.store, agent))


@router.get("", dependencies=[Depends(allow(*STAFF))])
async def list_agents(runtime: RuntimeDep) -> list[AgentDTO]:
    """Every agent, in creation order."""
    return [agent_dto(a) for a in await runtime.store.list(Agent)]


@router.get(
    "/{agent_id}",
    dependencies=[Depends(allow(*STAFF))],
    responses={404: {"description": "Agent not found"}},
)
async def read_agent(agent_id: str, runtime: RuntimeDep) -> AgentDTO:
    """One agent."""
    return agent_dto(await runtime.store.get(Agent, agent_id))


@router.patch(
    "/{agent_id}",
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Agent or tag not found"}},
)
async def update_agent(agent_id: str, params: AgentUpdateParams, runtime: RuntimeDep) -> AgentDTO:
    """Change the given attributes; the others stay. Tags are added and removed by id."""
    changes = params.model_dump(exclude_none=True, exclude={"tags"})
    tags = params.tags or TagsUpdate()
    updated = await agents.update_agent(
        runtime.store, agent_id, changes, add_tags=tags.add or [], remove_tags=tags.remove or []
    )
    return agent_dto(updated)


@router.delete(
    "/{agent_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Agent not found"}},
)
async def delete_agent(agent_id: str, runtime: RuntimeDep) -> Response:
    """Delete an agent **and its sessions** (with their events and traces).

    Definitions tagged ``agent:<id>`` stay in the store, unused, in case the agent is re-created
    with the same id.
    """
    # Its sessions, as they are now: one started meanwhile goes too, unannounced (it was
    # never used, or SessionOwners forgets it in time).
    sessions = await runtime.store.list(Session, agent_id=agent_id)
    await agents.delete_agent(runtime.store, agent_id)
    for s in sessions:
        session_changed(runtime, s.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
