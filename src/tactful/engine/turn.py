"""The engine: the turn pipeline over the ports, and the way a customer message comes in.

A customer message is appended, acknowledged and its turn recorded in one transaction (stage 1,
ingest); the turn runner (``engine.runner``) claims the turn (writing ``processing`` with the
claim), ``engine.lifecycle`` opens its trace and writes its terminal status, and
``engine.pipeline`` runs its stages. A newer customer message supersedes a turn that has not
emitted its reply yet, wherever it runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from tactful.bus.base import Bus
from tactful.domain import (
    Event,
    EventKind,
    EventSource,
    ModerationMode,
    ProactiveRequest,
    Session,
    SessionMode,
    SessionStatus,
    new_id,
    utcnow,
)
from tactful.domain.turns import TurnRecord, TurnStatus
from tactful.engine.capabilities import capability_rows
from tactful.engine.context import SnapshotCache
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.evaluation import Evaluator
from tactful.engine.evaluations import Evaluations
from tactful.engine.glossary import term_text
from tactful.engine.handoff import Handoffs
from tactful.engine.hooks import Hooks
from tactful.engine.lifecycle import TurnLifecycle
from tactful.engine.match import ModelMatcher
from tactful.engine.moderation import Moderators, message_data
from tactful.engine.moderation import check as moderate
from tactful.engine.options import EngineOptions
from tactful.engine.pipeline import Pipeline
from tactful.engine.retrieve import sentences
from tactful.engine.retrievers import Retrievers
from tactful.engine.runner import TurnRunner
from tactful.engine.templates import template_text
from tactful.engine.timeline import Timeline, status_event
from tactful.engine.tool_stage import ToolStage
from tactful.engine.tool_updates import ToolUpdates
from tactful.errors import ConflictError, PayloadTooLargeError, ValidationError
from tactful.llm.base import Embedder, Generator
from tactful.store.base import NewEvent, Store, TurnQueue
from tactful.telemetry.base import TurnObserver
from tactful.tools.registry import ToolRegistry

log = logging.getLogger("tactful.engine")

__all__ = ["Engine", "EngineOptions"]

CUSTOMER_SOURCES = (EventSource.CUSTOMER, EventSource.CUSTOMER_UI)


class Engine:
    """The turn pipeline over the ports: store, bus, embedder and an optional generator."""

    # Sessions last seen in automatic mode (their messages are embedded before the session is
    # read; a session switched to manual since costs one embedding, nothing else).
    AUTO_SESSIONS = 4096

    def __init__(
        self,
        store: Store,
        bus: Bus,
        embedder: Embedder,
        generator: Generator | None = None,
        options: EngineOptions | None = None,
        *,
        turns: TurnQueue,
        moderators: Moderators | None = None,
    ) -> None:
        self.store = store
        self.turns = turns
        self.bus = bus
        self.generator = generator
        self.options = options or EngineOptions()
        # The checks ``moderation=auto|paranoid`` runs on a posted customer message.
        self.moderators = moderators or Moderators()
        self.timeline = Timeline(store, bus)
        self.cache = EmbeddingCache(embedder, store)
        # Handing sessions to a person and back.
        self.handoffs = Handoffs(self.timeline)
        self._auto_sessions: OrderedDict[str, None] = OrderedDict()
        self._warming: set[asyncio.Task[None]] = set()
        # Code matchers and hooks registered through the SDK (in memory, per process).
        self.hooks = Hooks(timeout=self.options.hook_timeout_s)
        # Retrievers attached through the SDK (in memory, per process).
        self.retrievers = Retrievers(timeout=self.options.retriever_timeout_s)
        # Tools that can run in this process: Python functions and connected services.
        self.tools = ToolRegistry(self.options.outbound)
        self.tool_stage = ToolStage(
            self.tools,
            store,
            self.timeline.append,
            timeout_s=self.options.tool_timeout_s,
            model_matcher=ModelMatcher(generator) if generator else None,
            handoffs=self.handoffs,
            updates=ToolUpdates(self.timeline),
        )
        self.pipeline = Pipeline(
            self.timeline,
            self.cache,
            generator,
            self.options,
            hooks=self.hooks,
            retrievers=self.retrievers,
            tool_stage=self.tool_stage,
            handoffs=self.handoffs,
        )
        # Guidelines checked against each other at definition time (docs/evaluations.md).
        self.evaluations = Evaluations(
            store,
            Evaluator(self.cache, generator, timeout_s=self.options.turn_deadline_s),
            self.pipeline.snapshots,
        )
        self.lifecycle = TurnLifecycle(
            self.timeline,
            self.pipeline.run,
            lambda: self.tier,
            deadline_s=self.options.turn_deadline_s,
            prices=self.options.prices,
            tracer=self.options.tracer,
        )
        self.runner = TurnRunner(
            turns,
            bus,
            execute=self.lifecycle.execute,
            supersede=self.lifecycle.superseded,
            recover_emitted=self.lifecycle.recover_emitted,
            options=self.options.runner,
            start=self.lifecycle.start,
            transaction=store.transaction,
            publish=self.timeline.publish,
        )

    @property
    def tier(self) -> str:
        return f"model:{self.generator.model_name}" if self.generator else "offline"

    @property
    def snapshots(self) -> SnapshotCache:
        """Agent definitions in memory, read again when the store's revision moves."""
        return self.pipeline.snapshots

    def prepare_agents_later(self, agent_ids: Sequence[str]) -> None:
        """Work out in the background what each agent's first turn would (``_prepare_agent``),
        so that the first customer does not wait for it. A failure is logged and left to that
        turn."""
        task = asyncio.create_task(self._prepare_agents(list(agent_ids)), name="prepare agents")
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    async def _prepare_agents(self, agent_ids: list[str]) -> None:
        for agent_id in agent_ids:
            started = time.perf_counter()
            try:
                await self._prepare_agent(agent_id)
            except Exception as e:  # the turn that needs it will try again, and say why
                log.warning("agent %s not prepared ahead: %s: %s", agent_id, type(e).__name__, e)
            else:
                log.info(
                    "agent %s prepared in %.0f ms", agent_id, (time.perf_counter() - started) * 1e3
                )

    async def _prepare_agent(self, agent_id: str) -> None:
        """What the first turn over the agent would work out before anything else: its
        snapshot, the snapshot's constants, its guidelines' embedded rows, its terms',
        capabilities' and canned responses' embeddings (on a fresh data folder, embedding them
        was most of the first turn)."""
        pipeline = self.pipeline
        snapshot = await pipeline.snapshots.get(self.store, agent_id)
        prepared = pipeline.prepared.of(snapshot)
        coded = sorted(gid for gid in self.hooks.matchers if gid in prepared.by_id)
        await pipeline.retriever.prepare(prepared.checkable(coded))
        # The glossary and the canned responses, as the turn embeds them.
        await self.cache.embed([term_text(t) for t in snapshot.terms])
        await self.cache.embed(capability_rows(snapshot.capabilities))
        await self.cache.embed([template_text(c) for c in snapshot.canned_responses])

    # -- 1. ingest ------------------------------------------------------------------------------

    async def post_customer_message(
        self,
        session_id: str,
        message: str,
        *,
        source: EventSource = EventSource.CUSTOMER,
        participant: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        moderation: ModerationMode = ModerationMode.NONE,
    ) -> Event:
        """Append a customer message, acknowledge it, and start the agent's turn.
        ``moderation``: how the message is checked first (``engine.moderation``); the check
        never refuses the message itself, its turn acts on what it found."""
        if source not in CUSTOMER_SOURCES:
            raise ValidationError(f"a customer message cannot have source {source.value!r}")
        if not message.strip():
            raise ValidationError("the message is empty")
        if len(message) > self.options.max_message_chars:
            raise PayloadTooLargeError(
                f"the message has {len(message)} characters; the limit is "
                f"{self.options.max_message_chars}"
            )
        # The texts the turn embeds first (retrieve.sentences) are embedded from now on, in the
        # embedder's thread, while the message is stored and the turn starts: at once when the
        # session was in automatic mode last time (its read is not waited for), else once read.
        warmed = session_id in self._auto_sessions
        if warmed:
            await self._warm(message)
        session = await self.store.get(Session, session_id)
        checked = await moderate(
            self.moderators, message, moderation, timeout_s=self.options.moderation.timeout_s
        )
        data: dict[str, Any] = {"message": message}
        if participant:
            data["participant"] = participant
        data.update(message_data(checked))
        # The customer message carries the trace id of the turn it starts, as Parlant's do.
        trace_id = new_id()
        auto = session.mode is SessionMode.AUTO
        self._remember_mode(session_id, auto=auto)
        if auto and not warmed:
            await self._warm(message)
        # The message, its acknowledgement and its turn are written together, and the turns
        # it supersedes are told in the same transaction: nothing answers it half-way.
        async with self.store.transaction():
            posted = NewEvent(EventKind.MESSAGE, source, data, trace_id, metadata)
            acknowledged = status_event(SessionStatus.ACKNOWLEDGED, trace_id)
            written = await self.store.append_events(
                session_id, [posted, acknowledged] if auto else [posted]
            )
            event = written[0]
            superseded: list[TurnRecord] = []
            record: TurnRecord | None = None
            claimed: TurnRecord | None = None
            if auto:
                record = TurnRecord(
                    id=trace_id,
                    session_id=session_id,
                    customer_offset=event.offset,
                    creation_utc=utcnow(),
                )
                await self.turns.create(record)
                superseded = await self.turns.supersede(session_id, newer=trace_id, now=utcnow())
                # Those that never ran end here.
                ended = [o.id for o in superseded if o.status is TurnStatus.SUPERSEDED]
                cancelled = [status_event(SessionStatus.CANCELLED, old) for old in ended]
                written += await self.store.append_events(session_id, cancelled)
                # Claimed here too when it can start at once: its ``processing`` goes in with
                # the message, and the turn starts without a transaction of its own.
                if (here := await self.runner.claim_posted(record)) is not None:
                    claimed, started = here
                    written += started
        self.timeline.publish(written)
        if record is not None:
            await self.runner.submit(record, superseded, claimed=claimed)
        return event

    async def speak(self, session_id: str, request: ProactiveRequest) -> Event:
        """Start a turn without a customer message: a greeting, or a request to utter (with
        actions its message follows). Its ``acknowledged`` status carries the request and opens
        the turn, which queues behind a running one; a newer customer message supersedes it
        as any other. Returns that status. Refused in manual mode (a person answers)."""
        session = await self.store.get(Session, session_id)
        if session.mode is not SessionMode.AUTO:
            raise ConflictError(
                "the session is in manual mode: a person answers, not the agent (return it to "
                "automatic mode first)"
            )
        trace_id = new_id()
        opened = status_event(SessionStatus.ACKNOWLEDGED, trace_id, **request.status_data())
        claimed: TurnRecord | None = None
        async with self.store.transaction():
            written = await self.store.append_events(session_id, [opened])
            record = TurnRecord(
                id=trace_id,
                session_id=session_id,
                customer_offset=written[0].offset,
                creation_utc=utcnow(),
            )
            await self.turns.create(record)
            if (here := await self.runner.claim_posted(record)) is not None:
                claimed, started = here
                written += started
        self.timeline.publish(written)
        await self.runner.submit(record, [], claimed=claimed)
        return written[0]

    async def _warm(self, message: str) -> None:
        self.cache.warm_later([message, *sentences(message)])
        # One pass of the event loop, so that the embedding starts now, not when the ingest
        # transaction first waits (its statements run inline; only the commit waits).
        await asyncio.sleep(0)

    def _remember_mode(self, session_id: str, *, auto: bool) -> None:
        if not auto:
            self._auto_sessions.pop(session_id, None)
            return
        self._auto_sessions[session_id] = None
        self._auto_sessions.move_to_end(session_id)
        while len(self._auto_sessions) > self.AUTO_SESSIONS:
            self._auto_sessions.popitem(last=False)

    # -- turns ----------------------------------------------------------------------------------

    def observe(self, observer: TurnObserver) -> None:
        """Tell ``observer`` of every turn that ends in this process (e.g. metrics)."""
        self.lifecycle.observers.append(observer)

    def start(self) -> None:
        """Start running turns: those posted from now on, and those nobody runs."""
        self.runner.start()

    async def wait_idle(self, session_id: str | None = None) -> None:
        """Wait for this process's turns (of one session, or all) to finish."""
        await self.runner.wait_idle(session_id)

    async def close(self, grace_s: float | None = None) -> None:
        """Stop running turns: the running ones get ``grace_s`` (default: the runner's drain
        grace) to finish; the rest are given back for another worker or the next start."""
        grace = self.options.runner.drain_grace_s if grace_s is None else grace_s
        for task in list(self._warming):
            task.cancel()
        await asyncio.gather(*self._warming, return_exceptions=True)
        await self.evaluations.close()
        await self.runner.drain(grace)
        await self.cache.close()
        await self.tools.close()
        await self.moderators.aclose()
