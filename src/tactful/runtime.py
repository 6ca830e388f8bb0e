"""What a running tactful holds: settings, store, bus, engine, and which model tier it runs on."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from dataclasses import dataclass

from threadpoolctl import threadpool_limits

from tactful.bus.base import Bus
from tactful.bus.memory import MemoryBus
from tactful.bus.postgres import PostgresBus
from tactful.config import Settings
from tactful.definitions.services import known_tools
from tactful.domain import ToolServiceConfig
from tactful.domain.pricing import PriceTable
from tactful.engine.canned import TemplateLimits
from tactful.engine.options import EngineOptions, ModerationOptions
from tactful.engine.runner import RunnerOptions
from tactful.engine.turn import Engine
from tactful.errors import ConfigurationError
from tactful.llm.base import Embedder, Generator
from tactful.moderation.providers import build_moderators
from tactful.store.base import Store
from tactful.store.sql import SQLStore, open_store
from tactful.store.sqlite_lock import SQLiteProcessLock, lock_sqlite
from tactful.store.turns import SQLTurnQueue
from tactful.telemetry.metrics import TurnMetrics
from tactful.telemetry.tracing import Tracing
from tactful.tools.outbound import OutboundPolicy
from tactful.tools.services import reconnect_all


@dataclass
class Runtime:
    settings: Settings
    store: Store
    bus: Bus
    engine: Engine
    tier_reason: str
    # Reconnecting stored tool services, in the background so that start-up never waits.
    services_task: asyncio.Task[None] | None = None
    # A SQLite file serves one process: held until close (tactful.store.sqlite_lock).
    sqlite_lock: SQLiteProcessLock | None = None
    # Telemetry (docs/telemetry.md): the metrics of GET /metrics (None: metrics_enabled is
    # false), and the span exporter of otel_endpoint (None: not set).
    metrics: TurnMetrics | None = None
    tracing: Tracing | None = None

    @property
    def tier(self) -> str:
        return self.engine.tier

    async def known_tools(self) -> set[str]:
        """Ids of the tools registered in this process or stored: those a journey's tool states
        may name, whether the journey is defined through the SDK or REST."""
        return await known_tools(self.store, self.engine.tools)

    async def close(self) -> None:
        if self.services_task is not None:
            self.services_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.services_task
        try:
            await self.engine.close()
            self.engine.snapshots.close()
            if self.engine.generator is not None:
                await self.engine.generator.aclose()
            await self.engine.cache.embedder.aclose()
            await self.bus.close()
            await self.store.close()
        finally:
            if self.sqlite_lock is not None:
                self.sqlite_lock.release()
            if self.tracing is not None:
                # Sends the spans still queued (blocking, so in a thread).
                await asyncio.to_thread(self.tracing.close)


def choose_generator(settings: Settings) -> tuple[Generator | None, str]:
    """The generator the settings ask for (a router over their models), and a sentence saying
    why."""
    if settings.model_provider == "offline" and not settings.stage_models:
        return None, "offline tier: TACTFUL_MODEL_PROVIDER=offline"
    from tactful.llm.providers import describe, model_router

    router = model_router(settings)
    if router is None:
        return None, (
            "offline tier: no model provider configured (set TACTFUL_OPENAI_API_KEY, "
            "TACTFUL_ANTHROPIC_API_KEY or TACTFUL_OPENAI_BASE_URL to use a model)"
        )
    return router, f"model tier: {describe(router)}"


def default_embedder(settings: Settings | None = None) -> Embedder:
    """The embedder the settings ask for: the offline MiniLM, or a provider's embeddings."""
    if settings is None or settings.embedding_provider == "offline":
        from tactful.llm.minilm import MiniLMEmbedder

        if settings is None:
            return MiniLMEmbedder()
        return MiniLMEmbedder(
            process=settings.embedder_process,
            runtime=settings.embedder_runtime,
            threads=settings.embedder_threads,
        )
    from tactful.llm.providers import build_embedder

    return build_embedder(settings)


async def open_bus(store: SQLStore) -> Bus:
    """PostgreSQL: LISTEN/NOTIFY, so that every process sharing the database wakes its waiters.
    SQLite: in memory (one process per file)."""
    if store.backend != "postgresql":
        return MemoryBus()
    bus = PostgresBus(store.url, pg_schema=store.pg_schema)
    await bus.start()
    return bus


def engine_options(settings: Settings, store: SQLStore) -> EngineOptions:
    """What the settings say of how the engine runs, on this store."""
    return EngineOptions(
        offline_threshold=settings.offline_match_threshold,
        journey_condition_threshold=settings.journey_condition_threshold,
        max_message_chars=settings.max_message_chars,
        tool_timeout_s=settings.tool_timeout_s,
        hook_timeout_s=settings.hook_timeout_s,
        retriever_timeout_s=settings.retriever_timeout_s,
        turn_deadline_s=settings.turn_deadline_s,
        outbound=OutboundPolicy(settings.outbound_hosts),
        template_limits=TemplateLimits(
            max_chars=settings.template_max_chars,
            max_steps=settings.template_max_steps,
            timeout_s=settings.template_timeout_s,
        ),
        runner=RunnerOptions(
            lease_s=settings.turn_lease_s,
            recovery_interval_s=settings.turn_recovery_interval_s,
            # An in-memory store ends with the process: nothing to hand over.
            drain_grace_s=0.0 if store.in_memory else settings.drain_grace_s,
            # A SQLite file has one process: its running turns at start are orphans.
            take_over_at_start=store.backend == "sqlite",
        ),
        prices=PriceTable(settings.model_prices),
        moderation=ModerationOptions(
            action=settings.moderation_action,
            refusal=settings.moderation_refusal,
            timeout_s=settings.moderation_timeout_s,
        ),
    )


async def start_runtime(
    settings: Settings,
    *,
    generator: Generator | None = None,
    embedder: Embedder | None = None,
    offline: bool = False,
) -> Runtime:
    """Open the store, pick the model tier, and build the engine."""
    if settings.blas_threads:
        # For the whole process, from now on (the limit is not undone).
        threadpool_limits(limits=settings.blas_threads, user_api="blas")
    if settings.gc_threshold:
        # Also for the whole process: the older generations keep their thresholds.
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(settings.gc_threshold, older, oldest)
    if generator is not None:
        reason = f"model tier: {generator.model_name} (given by the program)"
    elif offline:
        reason = "offline tier: requested by the program"
    elif settings.model_cassette is not None and settings.model_cassette_mode == "replay":
        from tactful.llm.cassette import with_cassette

        generator = with_cassette(None, settings.model_cassette, "replay")
        reason = f"model tier: replaying the cassette {settings.model_cassette}"
    else:
        generator, reason = choose_generator(settings)
        if settings.model_cassette is not None:
            from tactful.llm.cassette import with_cassette

            generator = with_cassette(generator, settings.model_cassette, "record")
            reason += f", recorded to the cassette {settings.model_cassette}"
    # Before anything opens: a moderation provider set up wrong stops start-up here.
    moderators = build_moderators(settings)
    if settings.database_url == "" and not settings.transient:
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigurationError(
                f"cannot create the data folder {settings.data_dir}: {e}"
            ) from e
    # -- telemetry: spans to otel_endpoint (its SDK missing stops start-up here) --------------
    tracing = Tracing(settings.otel_endpoint) if settings.otel_endpoint else None
    url = settings.resolved_database_url()
    async with contextlib.AsyncExitStack() as undo:  # what opened so far, closed if a step fails
        if tracing is not None:
            undo.callback(tracing.close)
        sqlite_lock = lock_sqlite(url)
        if sqlite_lock is not None:
            undo.callback(sqlite_lock.release)
        store = await open_store(
            url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )
        undo.push_async_callback(store.close)
        bus = await open_bus(store)
        undo.pop_all()
    options = engine_options(settings, store)
    if tracing is not None:
        options.tracer = tracing.tracer
    embedder = embedder or default_embedder(settings)
    # The offline embedder's process loads the model while the server starts, not on the first
    # customer's turn.
    embedder.prepare()
    engine = Engine(
        store,
        bus,
        embedder,
        generator,
        options,
        turns=SQLTurnQueue(store),
        moderators=moderators,
    )
    # -- telemetry: metrics of every turn this process ends ------------------------------------
    metrics = TurnMetrics() if settings.metrics_enabled else None
    if metrics is not None:
        engine.observe(metrics)
    engine.start()
    runtime = Runtime(
        settings=settings,
        store=store,
        bus=bus,
        engine=engine,
        tier_reason=reason,
        sqlite_lock=sqlite_lock,
        metrics=metrics,
        tracing=tracing,
    )
    # Read now: cancelling the background task in the middle of a read (a quick stop) would
    # cost the store its connection, and an in-memory store its data.
    services = await store.list(ToolServiceConfig)
    if services:
        runtime.services_task = asyncio.create_task(reconnect_all(engine.tools, store, services))
    return runtime
