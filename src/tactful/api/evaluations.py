"""``/evaluations``: guidelines checked against each other before (or after) they are stored.

Parlant's shape (``parlant-client`` 3.3.1: ``evaluations.create(payloads=...)`` and
``evaluations.retrieve(id, wait_for_completion=...)``), with what tactful finds: every invoice
(one per payload) is ``approved`` (an evaluation reports, it never blocks) and lists its
``findings``; the evaluation lists them all. Our additions: ``agent_id`` (compare with that
agent's guidelines, not every stored one) and an empty ``payloads`` with an ``agent_id``
(check the agent's guidelines among themselves, as ``tactful evaluate`` does).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tactful.api.auth import STAFF, Role, allow
from tactful.api.params import Flag, seconds_query
from tactful.api.runtime import RuntimeDep
from tactful.domain.evaluations import (
    Evaluation,
    EvaluationStatus,
    Finding,
    ProposedGuideline,
)

router = APIRouter(prefix="/evaluations", tags=["evaluations"])

# Payloads per evaluation: each is compared with every guideline of the agent.
MAX_PAYLOADS = 100


class _Open(BaseModel):
    # Parlant's clients send fields tactful does not use (propositions): taken and ignored.
    model_config = ConfigDict(extra="ignore")


class GuidelineContentDTO(_Open):
    condition: str = Field(min_length=1, max_length=4000)
    action: str | None = Field(default=None, max_length=4000)


class ToolIdDTO(_Open):
    service_name: str = Field(max_length=200)
    tool_name: str = Field(max_length=200)


class GuidelinePayloadDTO(_Open):
    content: GuidelineContentDTO
    tool_ids: list[ToolIdDTO] = Field(default_factory=list, max_length=100)
    operation: Literal["add", "update"] = "add"
    updated_id: str | None = Field(default=None, max_length=128)
    # Strict, as every flag of the API (``0`` is not ``false``): accepted and ignored.
    action_proposition: Flag | None = None
    properties_proposition: Flag | None = None
    journey_node_proposition: Flag | None = None


class PayloadDTO(_Open):
    """A guideline to evaluate: ``kind`` "guideline" (Parlant 3.3) or "rule" (later Parlant)."""

    kind: Literal["guideline", "rule"] = "guideline"
    guideline: GuidelinePayloadDTO | None = None
    rule: GuidelinePayloadDTO | None = None

    @model_validator(mode="after")
    def _has_its_guideline(self) -> PayloadDTO:
        if self.body is None:
            raise ValueError(f"a {self.kind!r} payload needs its {self.kind!r} field")
        if self.body.operation == "update" and not self.body.updated_id:
            raise ValueError("an update payload needs updated_id")
        return self

    @property
    def body(self) -> GuidelinePayloadDTO | None:
        return self.guideline if self.kind == "guideline" else self.rule


class EvaluationCreationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payloads: list[PayloadDTO] = Field(default_factory=list, max_length=MAX_PAYLOADS)
    agent_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Compare with this agent's guidelines (default: every stored guideline)",
    )

    @model_validator(mode="after")
    def _something_to_evaluate(self) -> EvaluationCreationParams:
        if not self.payloads and self.agent_id is None:
            raise ValueError("give payloads, or an agent_id to check its guidelines")
        return self


class InvoiceDTO(BaseModel):
    """One payload's result, as Parlant's invoice, with its ``findings``."""

    payload: dict[str, Any]
    checksum: str
    approved: bool
    data: dict[str, Any] | None = None
    error: str | None = None
    findings: list[Finding]


class EvaluationDTO(BaseModel):
    id: str
    status: EvaluationStatus
    progress: float
    creation_utc: datetime
    error: str | None = None
    invoices: list[InvoiceDTO]
    agent_id: str | None = None
    findings: list[Finding]


def _checksum(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def evaluation_dto(e: Evaluation) -> EvaluationDTO:
    def about(index: int) -> list[Finding]:
        return [f for f in e.findings if index in (f.first.payload, f.second.payload)]

    return EvaluationDTO(
        id=e.id,
        status=e.status,
        progress=e.progress,
        creation_utc=e.creation_utc,
        error=e.error,
        invoices=[
            InvoiceDTO(
                payload=p,
                checksum=_checksum(p),
                approved=e.status is EvaluationStatus.COMPLETED,
                error=e.error,
                findings=about(i),
            )
            for i, p in enumerate(e.payloads)
        ],
        agent_id=e.agent_id,
        findings=e.findings,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(allow(Role.ADMIN))],
    responses={404: {"description": "Agent not found"}},
)
async def create_evaluation(params: EvaluationCreationParams, runtime: RuntimeDep) -> EvaluationDTO:
    """Start an evaluation of the payloads (against each other and the stored guidelines), or
    of an agent's guidelines among themselves; it runs in the background: read it with
    ``GET /evaluations/{id}``."""
    proposed = []
    for p in params.payloads:
        body = p.body
        assert body is not None  # validated
        proposed.append(
            ProposedGuideline(
                condition=body.content.condition,
                action=body.content.action or None,
                updated_id=body.updated_id if body.operation == "update" else None,
            )
        )
    evaluation = Evaluation(
        agent_id=params.agent_id,
        payloads=[p.model_dump(mode="json", exclude_none=True) for p in params.payloads],
        proposed=proposed,
    )
    return evaluation_dto(await runtime.engine.evaluations.start(evaluation))


@router.get(
    "/{evaluation_id}",
    dependencies=[Depends(allow(*STAFF))],
    responses={
        404: {"description": "Evaluation not found"},
        504: {"description": "Not completed within wait_for_completion seconds"},
    },
)
async def read_evaluation(
    evaluation_id: Annotated[str, Path(max_length=128)],
    runtime: RuntimeDep,
    wait_for_completion: Annotated[
        float, seconds_query("Seconds to wait for it to complete (0: its state now)")
    ] = 60,
) -> EvaluationDTO:
    """The evaluation; with ``wait_for_completion`` (default 60 s, as Parlant), once it has
    completed or failed (504 if it has not by then)."""
    evaluations = runtime.engine.evaluations
    if wait_for_completion > 0:
        done = await evaluations.wait(evaluation_id, wait_for_completion)
        if done is None:
            raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT, "the evaluation is still running")
        return evaluation_dto(done)
    return evaluation_dto(await runtime.store.get(Evaluation, evaluation_id))
