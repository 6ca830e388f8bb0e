"""What a runtime opens for its database: the bus that matches it, and on a SQLite file the lock
that keeps a second server off it; and the engine it builds, running as the settings say."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

import tactful
from tactful.bus.memory import MemoryBus
from tactful.bus.postgres import PostgresBus
from tactful.config import Settings
from tactful.domain import ToolSpec, Trace
from tactful.engine.options import EngineOptions
from tactful.errors import StoreError
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import engine_options, start_runtime
from tactful.store.sql import SQLStore
from tactful.tools import register_python

POSTGRES_ENV = "TACTFUL_TEST_POSTGRES_URL"


async def test_sqlite_runs_on_the_in_process_bus() -> None:
    rt = await start_runtime(Settings(transient=True), embedder=HashingEmbedder(), offline=True)
    try:
        assert isinstance(rt.bus, MemoryBus)
        assert rt.sqlite_lock is None  # nothing to lock in memory
    finally:
        await rt.close()


async def test_a_sqlite_file_takes_one_runtime_at_a_time(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = await start_runtime(settings, embedder=HashingEmbedder(), offline=True)
    try:
        with pytest.raises(StoreError, match=r"in use by another tactful process \(pid \d+\)"):
            await start_runtime(settings, embedder=HashingEmbedder(), offline=True)
        # The same file named by URL is the same database.
        by_url = Settings(database_url=f"sqlite:///{tmp_path / 'tactful.db'}")
        with pytest.raises(StoreError, match="SQLite serves one process at a time"):
            await start_runtime(by_url, embedder=HashingEmbedder(), offline=True)
    finally:
        await first.close()
    again = await start_runtime(settings, embedder=HashingEmbedder(), offline=True)
    await again.close()


@pytest.mark.postgres
async def test_postgresql_runs_on_listen_notify_and_closes_it() -> None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(
            f"no PostgreSQL server given: set {POSTGRES_ENV}, e.g. "
            "postgresql://postgres@127.0.0.1:5432/test"
        )
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(make_url(url).set(drivername="postgresql+asyncpg"))
    admin = admin.execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        database_url = make_url(url).set(database=name).render_as_string(hide_password=False)
        rt = await start_runtime(
            Settings(database_url=database_url), embedder=HashingEmbedder(), offline=True
        )
        bus = rt.bus
        assert isinstance(bus, PostgresBus)
        assert bus.connected and bus.channel == "tactful_events:public"
        await rt.close()
        assert not bus.connected
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def test_the_engine_takes_its_thresholds_and_timeouts_from_the_settings() -> None:
    settings = Settings(
        transient=True,
        offline_match_threshold=0.3,
        journey_condition_threshold=0.6,
        tool_timeout_s=7,
        hook_timeout_s=2,
        retriever_timeout_s=3,
    )
    rt = await start_runtime(settings, embedder=HashingEmbedder(), offline=True)
    try:
        options = rt.engine.options
        assert (options.offline_threshold, options.journey_condition_threshold) == (0.3, 0.6)
        assert (options.tool_timeout_s, options.hook_timeout_s, options.retriever_timeout_s) == (
            7,
            2,
            3,
        )
        # Each stage runs with its own: the journey threshold is not the matching one.
        assert rt.engine.pipeline.offline_matcher.threshold == 0.3
        assert rt.engine.pipeline.follower.walker.threshold == 0.6
        assert rt.engine.tool_stage.timeout_s == 7
        assert (rt.engine.hooks.timeout, rt.engine.retrievers.timeout) == (2, 3)
    finally:
        await rt.close()


async def test_the_settings_defaults_are_the_engines() -> None:
    rt = await start_runtime(Settings(transient=True), embedder=HashingEmbedder(), offline=True)
    try:
        assert isinstance(rt.store, SQLStore)
        given, own = engine_options(rt.settings, rt.store), EngineOptions()
        for name in (
            "offline_threshold",
            "journey_condition_threshold",
            "tool_timeout_s",
            "hook_timeout_s",
            "retriever_timeout_s",
            "max_message_chars",
        ):
            assert getattr(given, name) == getattr(own, name), name
    finally:
        await rt.close()


async def test_code_is_cut_at_the_timeouts_the_settings_give() -> None:
    async def never(*_: object) -> bool:
        await asyncio.Event().wait()  # only a timeout ends it
        return True

    settings = Settings(hook_timeout_s=0.05, retriever_timeout_s=0.06)
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), offline=True, settings=settings
    ) as server:
        agent = await server.create_agent("Shop")
        greet = await agent.create_guideline("the customer says hello", "greet them")
        agent.match_with(greet, never)
        agent.attach_retriever(never, id="stock")
        reply = await server.send(await server.create_session(agent), "hello")
        trace = await server.runtime.store.get(Trace, reply.trace_id)
    [matcher_error] = trace.composition.matcher_errors
    assert matcher_error.endswith(f"of guideline {greet.id}: timed out after 0.05s")
    [retriever] = trace.composition.retrievers
    assert (retriever.name, retriever.error) == ("stock", "timed out after 0.06s")


async def test_the_blas_threads_setting_limits_numpys_threads() -> None:
    from threadpoolctl import threadpool_info

    def blas_threads() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    for wanted in (2, 1):
        settings = Settings(transient=True, blas_threads=wanted)
        rt = await start_runtime(settings, embedder=HashingEmbedder(), offline=True)
        try:
            assert blas_threads() == {wanted}
        finally:
            await rt.close()


async def test_the_gc_threshold_setting_sets_the_young_generations_threshold() -> None:
    import gc

    before = gc.get_threshold()
    try:
        for wanted in (12_345, 20_000):
            rt = await start_runtime(
                Settings(transient=True, gc_threshold=wanted),
                embedder=HashingEmbedder(),
                offline=True,
            )
            await rt.close()
            # The older generations keep theirs.
            assert gc.get_threshold() == (wanted, *before[1:])
        gc.set_threshold(700, *before[1:])
        # 0 leaves the process's threshold as it is.
        rt = await start_runtime(
            Settings(transient=True, gc_threshold=0), embedder=HashingEmbedder(), offline=True
        )
        await rt.close()
        assert gc.get_threshold() == (700, *before[1:])
    finally:
        gc.set_threshold(*before)


@tactful.tool
async def find_order(context: tactful.ToolContext, order_id: str) -> dict[str, str]:
    """Look an order up."""
    return {"order_id": order_id}


async def test_known_tools_are_those_served_here_and_those_stored() -> None:
    rt = await start_runtime(Settings(transient=True), embedder=HashingEmbedder(), offline=True)
    try:
        assert await rt.known_tools() == set()
        register_python(rt.engine.tools, find_order)  # served in this process, not stored
        stored = ToolSpec(id="orders:lookup", service_name="orders", name="lookup")
        await rt.store.create(stored)  # e.g. an MCP service's, connected by another process
        assert await rt.known_tools() == {find_order.tool_id, "orders:lookup"}
    finally:
        await rt.close()
