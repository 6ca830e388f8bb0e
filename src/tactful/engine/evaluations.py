"""Evaluations as stored jobs: created, run in the background by the process that took the
request, read (and waited for) from the store by any process (``docs/evaluations.md``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from tactful.domain import Agent, Guideline
from tactful.domain.evaluations import Evaluation, EvaluationStatus, Finding, ProposedGuideline
from tactful.engine.context import SnapshotCache
from tactful.engine.evaluation import Evaluator
from tactful.store.base import Store

log = logging.getLogger("tactful.evaluations")

# How often a waiting reader looks at the store again.
POLL_S = 0.1


class Evaluations:
    """Start, run and wait for stored evaluations."""

    def __init__(self, store: Store, evaluator: Evaluator, snapshots: SnapshotCache) -> None:
        self.store = store
        self.evaluator = evaluator
        self.snapshots = snapshots
        self._running: set[asyncio.Task[None]] = set()

    async def findings(
        self, agent_id: str | None, proposed: Sequence[ProposedGuideline] = ()
    ) -> list[Finding]:
        """Evaluate at once (the SDK's way): ``proposed`` against the agent's guidelines (every
        stored guideline when ``agent_id`` is None), or those among themselves."""
        return await self.evaluator.evaluate(await self._existing(agent_id), proposed)

    async def start(self, evaluation: Evaluation) -> Evaluation:
        """Store ``evaluation`` (pending) and run it in the background."""
        if evaluation.agent_id is not None:
            await self.store.get(Agent, evaluation.agent_id)  # NotFoundError: a 404
        created = await self.store.create(evaluation)
        task = asyncio.create_task(self._run(created.id), name=f"evaluation:{created.id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return created

    async def wait(self, evaluation_id: str, timeout_s: float) -> Evaluation | None:
        """The evaluation once completed or failed; None when ``timeout_s`` passes first."""
        deadline = time.monotonic() + timeout_s
        while True:
            evaluation = await self.store.get(Evaluation, evaluation_id)
            if evaluation.status in (EvaluationStatus.COMPLETED, EvaluationStatus.FAILED):
                return evaluation
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))

    async def close(self) -> None:
        """Stop the evaluations still running (they stay ``running`` in the store)."""
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def _run(self, evaluation_id: str) -> None:
        evaluation = await self.store.get(Evaluation, evaluation_id)
        evaluation.status, evaluation.progress = EvaluationStatus.RUNNING, 0.0
        await self.store.update(evaluation)
        started = time.perf_counter()
        try:
            found = await self.findings(evaluation.agent_id, evaluation.proposed)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the evaluation says why; the server goes on
            log.warning("evaluation %s failed: %s: %s", evaluation_id, type(e).__name__, e)
            evaluation.status, evaluation.error = (
                EvaluationStatus.FAILED,
                f"{type(e).__name__}: {e}",
            )
        else:
            evaluation.status, evaluation.findings = EvaluationStatus.COMPLETED, found
            evaluation.progress = 100.0
            log.info(
                "evaluation %s: %d finding(s) in %.0f ms",
                evaluation_id,
                len(found),
                (time.perf_counter() - started) * 1e3,
            )
        await self.store.update(evaluation)

    async def _existing(self, agent_id: str | None) -> list[Guideline]:
        if agent_id is None:
            return [g for g in await self.store.list(Guideline) if g.enabled]
        return list((await self.snapshots.get(self.store, agent_id)).guidelines)
