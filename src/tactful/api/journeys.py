"""``/journeys``: Parlant's journey resource, plus editing and drawing the journey's graph."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from tactful.api.auth import STAFF, Role, allow
from tactful.api.errors import SafeJSONResponse, error_item
from tactful.api.params import Int32, LabelsUpdate, Params, TagsUpdate, unique
from tactful.api.runtime import RuntimeDep
from tactful.definitions import deletion, journeys
from tactful.domain import CompositionMode, Journey
from tactful.domain.journeys import JourneyState, JourneyTransition, StateKind
from tactful.engine.journeys import mermaid
from tactful.errors import ValidationError

router = APIRouter(prefix="/journeys", tags=["journeys"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Journey not found"}}


class JourneyDTO(BaseModel):
    """A journey, as Parlant's ``Journey``; ``conditions`` are guideline ids."""

    id: str
    title: str
    description: str
    conditions: list[str]
    tags: list[str]
    composition_mode: CompositionMode | None
    labels: list[str]
    priority: int
    creation_utc: datetime


class JourneyCreationParams(Params):
    title: str = Field(min_length=1, max_length=500)
    description: str = Field(default="", max_length=4000)
    conditions: list[str] = Field(
        default_factory=list, description="Conditions; each becomes an observation"
    )
    id: str | None = Field(default=None, min_length=1, max_length=128, description="Custom id")
    tags: list[str] | None = Field(default=None, description="Tag ids or agent:<agent id>")
    composition_mode: CompositionMode | None = None
    labels: list[str] | None = None
    priority: Int32 | None = None


class ConditionsUpdate(Params):
    add: list[str] | None = Field(default=None, description="Guideline ids to add")
    remove: list[str] | None = Field(default=None, description="Guideline ids to remove")


class JourneyUpdateParams(Params):
    title: str | None = Field(default=None, min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=4000)
    conditions: ConditionsUpdate | None = None
    tags: TagsUpdate | None = None
    composition_mode: CompositionMode | None = None
    labels: LabelsUpdate | None = None
    priority: Int32 | None = None


class StateParams(Params):
    id: str = Field(min_length=1, max_length=128)
    kind: StateKind = StateKind.CHAT
    action: str | None = None
    tools: list[str] = Field(default_factory=list)
    composition_mode: CompositionMode | None = None
    sub_journey_id: str | None = Field(
        default=None, description="The journey a state of kind journey runs"
    )
    canned_responses: list[str] = Field(
        default_factory=list, description="Ids of canned responses this state prefers"
    )


class TransitionParams(Params):
    id: str | None = Field(default=None, min_length=1, max_length=128)
    source: str
    target: str = Field(description="A state of this journey, or of ``target_journey_id``'s")
    condition: str | None = None
    target_journey_id: str | None = Field(
        default=None, description="Another journey, to continue in at ``target``"
    )


class GraphParams(Params):
    """The whole graph: it replaces the journey's states, transitions and initial state."""

    initial_state_id: str
    states: list[StateParams]
    transitions: list[TransitionParams] = Field(default_factory=list)


class GraphDTO(BaseModel):
    initial_state_id: str
    states: list[JourneyState]
    transitions: list[JourneyTransition]


def journey_dto(j: Journey) -> JourneyDTO:
    return JourneyDTO(
        id=j.id,
        title=j.title,
        description=j.description,
        conditions=j.conditions,
        tags=j.tags,
        composition_mode=j.composition_mode,
        labels=j.labels,
        priority=j.priority,
        creation_utc=j.creation_utc,
    )


def graph_dto(j: Journey) -> GraphDTO:
    return GraphDTO(initial_state_id=j.initial_state_id, states=j.states, transitions=j.transitions)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={
        404: {"description": "A tag or agent was not found"},
        409: {"description": "Id taken"},
    },
)
async def create_journey(params: JourneyCreationParams, runtime: RuntimeDep) -> JourneyDTO:
    """Create a journey; each condition becomes an observation carrying the journey's tags
    (``agent:<id>`` among them for an agent's journey). An observation with that condition, no
    action and exactly those tags is reused rather than created again (a journey defined
    through the SDK does the same). It starts with an initial state only: set its graph with
    ``PUT /journeys/{id}/graph``."""
    journey = Journey(
        title=params.title,
        description=params.description,
        tags=params.tags or [],
        labels=params.labels or [],
        priority=params.priority or 0,
        composition_mode=params.composition_mode,
        **({"id": params.id} if params.id else {}),
    )
    created = await journeys.create_journey(runtime.store, journey, conditions=params.conditions)
    return journey_dto(created)


@router.get("", dependencies=[Depends(allow(*STAFF))])
async def list_journeys(
    runtime: RuntimeDep,
    tag_id: Annotated[str | None, Query(description="Only journeys with this tag")] = None,
) -> list[JourneyDTO]:
    """Every journey (or those carrying ``tag_id``), in creation order."""
    stored = await runtime.store.list(Journey)
    return [journey_dto(j) for j in stored if tag_id is None or tag_id in j.tags]


@router.get("/{journey_id}", dependencies=[Depends(allow(*STAFF))], responses=NOT_FOUND)
async def read_journey(journey_id: str, runtime: RuntimeDep) -> JourneyDTO:
    """One journey."""
    return journey_dto(await runtime.store.get(Journey, journey_id))


@router.patch(
    "/{journey_id}",
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Journey, guideline or tag not found"}},
)
async def update_journey(
    journey_id: str, params: JourneyUpdateParams, runtime: RuntimeDep
) -> JourneyDTO:
    """Change the given attributes; conditions (guideline ids), tags and labels are added and
    removed."""
    journey = await runtime.store.get(Journey, journey_id)
    changes = params.model_dump(
        exclude_none=True, exclude={"conditions", "tags", "labels", "composition_mode"}
    )
    if "composition_mode" in params.model_fields_set:
        changes["composition_mode"] = params.composition_mode
    if params.conditions is not None:
        dropped = set(params.conditions.remove or [])
        changes["conditions"] = [
            c
            for c in unique([*journey.conditions, *(params.conditions.add or [])])
            if c not in dropped
        ]
    if params.tags is not None:
        changes["tags"] = params.tags.apply(journey.tags)
    if params.labels is not None:
        changes["labels"] = params.labels.apply(journey.labels)
    return journey_dto(await journeys.update_journey(runtime.store, journey_id, changes))


@router.delete(
    "/{journey_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={
        **NOT_FOUND,
        409: {"description": "Another journey runs it as a sub-journey or leads into it"},
    },
)
async def delete_journey(journey_id: str, runtime: RuntimeDep) -> Response:
    """Delete a journey. Refused (409) while another journey runs it as a sub-journey or has
    a transition into it: change those journeys' graphs first.

    Its condition observations are deleted with it unless something else needs them (another
    journey starts on them, they have an action, or a relationship names them).
    Relationships with the journey's tag as an end are dropped. Guidelines and canned
    responses scoped to it are kept, without the journey's tag: nothing written by hand is
    lost, but they then apply wherever their other tags say (usually agent-wide); delete
    them too if they only made sense inside the journey.
    """
    store = runtime.store
    async with store.transaction():
        await store.get(Journey, journey_id)
        await deletion.delete_journey(store, journey_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{journey_id}/graph", dependencies=[Depends(allow(*STAFF))], responses=NOT_FOUND)
async def read_graph(journey_id: str, runtime: RuntimeDep) -> GraphDTO:
    """The journey's states, transitions and initial state."""
    return graph_dto(await runtime.store.get(Journey, journey_id))


@router.put(
    "/{journey_id}/graph",
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={**NOT_FOUND, 422: {"description": "Invalid graph: one item per problem"}},
    response_model=GraphDTO,
)
async def replace_graph(
    journey_id: str, params: GraphParams, runtime: RuntimeDep
) -> GraphDTO | JSONResponse:
    """Replace the journey's graph. It is validated first (reachability, dangling or
    out-of-end transitions, tools, forks, actions, canned responses, sub-journeys and
    transitions into other journeys); any problem answers 422 with all of them in
    ``detail`` (one item each) and writes nothing."""
    try:
        updated = await journeys.replace_graph(
            runtime.store,
            runtime.engine.tools,
            journey_id,
            initial_state_id=params.initial_state_id,
            states=[JourneyState(**s.model_dump()) for s in params.states],
            transitions=[
                JourneyTransition(**t.model_dump(exclude_none=True)) for t in params.transitions
            ],
        )
    except ValidationError as refused:
        if not refused.problems:
            raise
        detail = [error_item(p, ("body",)) for p in refused.problems]
        return SafeJSONResponse({"detail": detail}, status_code=422)
    return graph_dto(updated)


@router.get(
    "/{journey_id}/mermaid",
    dependencies=[Depends(allow(*STAFF))],
    responses={**NOT_FOUND, 200: {"content": {"text/plain": {}}}},
    response_class=PlainTextResponse,
)
async def read_mermaid(journey_id: str, runtime: RuntimeDep) -> PlainTextResponse:
    """The journey's graph as a Mermaid ``stateDiagram-v2``; sub-journeys and journeys it
    leads into are named by their titles."""
    journey = await runtime.store.get(Journey, journey_id)
    others = {j.id: j for j in await runtime.store.list(Journey) if j.id != journey_id}
    return PlainTextResponse(mermaid(journey, journeys=others))
