"""The turn runner in one process: every turn ends with a terminal status, a newer message
supersedes a turn that has not replied, a burst of simultaneous messages leaves no message
unanswered and no turn answered twice, and a turn answers only up to its own message."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

import tactful
from fresh_databases import postgres_database
from tactful.domain import Event, EventKind, EventSource, Trace, new_id, utcnow
from tactful.domain.turns import TurnRecord, TurnStatus
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import MatchAnswer
from tactful.engine.runner import Turn, TurnRunner
from tactful.engine.timeline import wait_for_events
from tactful.llm.scripted import HashingEmbedder, ScriptedCall, ScriptedGenerator

TERMINAL = {"ready", "cancelled"}


def echo_model(latency_s: float = 0.0) -> ScriptedGenerator:
    """Matches nothing; replies with the latest customer message it was shown."""

    def compose(call: ScriptedCall) -> ReplyAnswer:
        shown = [line for line in call.prompt.user.splitlines() if line.startswith("customer:")]
        return ReplyAnswer(message=f"re: {shown[-1].removeprefix('customer:').strip()}")

    return ScriptedGenerator(
        {"match": lambda call: MatchAnswer(checks=[]), "compose": compose}, latency_s=latency_s
    )


@pytest_asyncio.fixture(params=["sqlite", "sqlite-file", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    if request.param == "sqlite-file":
        yield f"sqlite+aiosqlite:///{tmp_path}/tactful.db"
        return
    async with postgres_database() as url:
        yield url


def replies(events: list[Event]) -> list[Event]:
    return [
        e
        for e in events
        if e.kind is EventKind.MESSAGE
        and e.source is EventSource.AI_AGENT
        and not e.metadata.get("preamble")
    ]


def check_timeline(events: list[Event]) -> None:
    """Every turn ended (ready or cancelled), no turn replied twice, and every customer message
    was answered by its own turn or by a later one that covers it."""
    customer = [
        e for e in events if e.kind is EventKind.MESSAGE and e.source is EventSource.CUSTOMER
    ]
    ends: dict[str, list[str]] = {}
    for e in events:
        status = (e.data or {}).get("status") if e.kind is EventKind.STATUS else None
        if status in TERMINAL:
            ends.setdefault(e.trace_id, []).append(status)
    for message in customer:
        assert ends.get(message.trace_id) in (["ready"], ["cancelled"]), (message, ends)
    answered = replies(events)
    assert len({r.trace_id for r in answered}) == len(answered), "a turn replied twice"
    offsets = {m.trace_id: m.offset for m in customer}
    covered = max((offsets[r.trace_id] for r in answered), default=-1)
    assert covered == customer[-1].offset, "the last customer message was not answered"
    for r in answered:
        assert ends[r.trace_id] == ["ready"]


async def test_a_burst_of_simultaneous_messages_leaves_nothing_unanswered(
    database_url: str | None,
) -> None:
    options: dict[str, Any] = {"database_url": database_url} if database_url else {}
    async with tactful.Server(
        transient=database_url is None,
        embedder=HashingEmbedder(),
        generator=echo_model(latency_s=0.01),
        **options,
    ) as server:
        agent = await server.create_agent("Echo")
        sessions = [await server.create_session(agent) for _ in range(40)]
        engine = server.runtime.engine
        await asyncio.gather(
            *(
                engine.post_customer_message(s.id, text)
                for s in sessions
                for text in (f"first {s.id}", f"second {s.id}")
            )
        )
        await engine.wait_idle()
        for s in sessions:
            events = await server.runtime.store.list_events(s.id)
            check_timeline(events)
            # The reply that covers both answers the later message (whichever came second).
            last = [e for e in events if e.source is EventSource.CUSTOMER][-1]
            assert replies(events)[-1].data["message"] == f"re: {last.data['message']}"


async def test_a_turn_answers_up_to_its_own_message(server: tactful.Server) -> None:
    agent = await server.create_agent("Echo")
    session = await server.create_session(agent)
    engine = server.runtime.engine
    # Nothing runs while both messages are posted: the first turn is superseded before it runs.
    engine.runner.accepting = False
    await engine.post_customer_message(session.id, "one")
    await engine.post_customer_message(session.id, "two")
    first, second = [
        e.trace_id
        for e in await server.runtime.store.list_events(session.id)
        if e.kind is EventKind.MESSAGE
    ]
    assert (await engine.turns.get(first)).status is TurnStatus.SUPERSEDED  # type: ignore[union-attr]
    engine.runner.accepting = True
    record = await engine.turns.get(second)
    assert record is not None
    await engine.runner.submit(record, [])
    await engine.wait_idle(session.id)
    events = await server.runtime.store.list_events(session.id)
    check_timeline(events)
    assert [r.data["message"] for r in replies(events)] == ["re: two"]


async def test_a_turn_that_fails_while_a_newer_message_arrives_still_ends(
    server: tactful.Server,
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    model = server.runtime.engine.generator
    assert isinstance(model, ScriptedGenerator)
    original = model.generate
    calls = {"n": 0}

    async def generate(prompt: Any, schema: Any, *, stage: str) -> Any:
        if stage == "compose" and calls["n"] == 0:
            calls["n"] += 1
            entered.set()
            await release.wait()
            raise RuntimeError("the model broke")
        return await original(prompt, schema, stage=stage)

    model.generate = generate  # type: ignore[method-assign]
    agent = await server.create_agent("Echo")
    session = await server.create_session(agent)
    engine = server.runtime.engine
    await engine.post_customer_message(session.id, "one")
    await entered.wait()
    posting = asyncio.create_task(engine.post_customer_message(session.id, "two"))
    release.set()
    await posting
    await engine.wait_idle(session.id)
    events = await server.runtime.store.list_events(session.id)
    check_timeline(events)
    traces = {t.id: t for t in await server.runtime.store.list(Trace, session_id=session.id)}
    assert len(traces) == 2


async def test_a_closing_engine_hands_running_turns_back(tmp_path: Any) -> None:
    entered = asyncio.Event()
    model = echo_model()
    original = model.generate

    async def generate(prompt: Any, schema: Any, *, stage: str) -> Any:
        entered.set()
        await asyncio.sleep(3600)  # a model that does not answer before the deploy
        return await original(prompt, schema, stage=stage)

    model.generate = generate  # type: ignore[method-assign]
    async with tactful.Server(data_dir=tmp_path, embedder=HashingEmbedder(), generator=model) as s:
        agent = await s.create_agent("Echo")
        session = await s.create_session(agent)
        await s.runtime.engine.post_customer_message(session.id, "hello")
        await entered.wait()
        started = utcnow()
        await s.runtime.engine.close(grace_s=0.1)
        [pending] = await s.runtime.engine.turns.claimable(now=started)
        assert pending.status is TurnStatus.PENDING and pending.owner is None
        statuses = [
            (e.data or {}).get("status")
            for e in await s.runtime.store.list_events(session.id, kinds=[EventKind.STATUS])
        ]
        assert "cancelled" not in statuses and "ready" not in statuses
    # The next start of the same store runs it.
    async with tactful.Server(
        data_dir=tmp_path, embedder=HashingEmbedder(), generator=echo_model()
    ) as s:
        # Woken by the bus when the recovered turn replies.
        found = await wait_for_events(
            s.runtime.store,
            s.runtime.bus,
            session.id,
            kinds=[EventKind.MESSAGE],
            source=EventSource.AI_AGENT,
            timeout=30,
        )
        await s.runtime.engine.wait_idle()
        events = await s.runtime.store.list_events(session.id)
        check_timeline(events)
        trace = await s.runtime.store.get(Trace, found[0].trace_id)
        assert trace.attempt == 2


@pytest.fixture
def model() -> ScriptedGenerator:
    return echo_model()


class _SlowReads:
    """A turn queue whose reads of a turn hang until ``release`` is set (a stalled store)."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.queue, name)

    async def get(self, turn_id: str) -> Any:
        self.reading.set()
        await self.release.wait()
        return await self.queue.get(turn_id)


async def test_a_turn_cancelled_twice_while_it_ends_leaves_the_runner_idle(
    server: tactful.Server,
) -> None:
    """A second cancellation while the lease watcher finishes a read (a process stopping with
    a stalled store) once left the turn registered with its task done: waiting for the
    runner's turns then spun forever."""
    engine = server.runtime.engine
    agent = await server.create_agent("Echo")
    session = await server.create_session(agent)
    queue = _SlowReads(engine.turns)
    started = asyncio.Event()

    async def execute(turn: Turn) -> TurnStatus:
        started.set()
        await asyncio.sleep(3600)
        return TurnStatus.DONE

    runner, _ = await _submitted(engine, queue, session.id, execute)
    await started.wait()
    turn = runner.running_here(session.id)
    assert turn is not None and turn.task is not None
    # An event on the session wakes the watcher, which reads the turn's record (and hangs).
    engine.bus.publish(session.id, 1)
    await queue.reading.wait()
    turn.stop = "draining"
    turn.task.cancel()
    await asyncio.sleep(0.05)  # the turn now waits for the watcher to end its read
    turn.task.cancel()  # the second cancellation
    await asyncio.wait_for(runner.wait_idle(), timeout=5)
    assert runner.running_here(session.id) is None
    queue.release.set()
    with contextlib.suppress(asyncio.CancelledError):
        await turn.task


class _HeldReads(_SlowReads):
    """Reads of a turn start, wait for ``release``, then read the store; ``read`` says when
    one returned."""

    def __init__(self, queue: Any) -> None:
        super().__init__(queue)
        self.read = asyncio.Event()

    async def get(self, turn_id: str) -> Any:
        record = await super().get(turn_id)
        self.read.set()
        return record


async def test_a_turn_ending_its_own_record_is_not_taken_for_a_lost_one(
    server: tactful.Server,
) -> None:
    """A turn ends its record in the transaction that writes its terminal status, while its
    lease watcher still runs: a watcher that read the ended record once took it for a lost
    lease and cut the turn's end short (the session's next turn was never taken)."""
    engine = server.runtime.engine
    agent = await server.create_agent("Echo")
    session = await server.create_session(agent)
    queue = _HeldReads(engine.turns)
    ended: list[Turn] = []

    async def execute(turn: Turn) -> TurnStatus:
        while not queue.reading.is_set():  # wakes the watcher (once it listens): it reads
            engine.bus.publish(session.id, 1)
            await asyncio.sleep(0.01)
        turn.ending = True
        await queue.finish(turn.trace_id, turn.owner, TurnStatus.DONE)
        turn.finished = True
        queue.release.set()  # the read finds the record ended
        await queue.read.wait()
        ended.append(turn)
        return TurnStatus.DONE

    runner, record = await _submitted(engine, queue, session.id, execute)
    await asyncio.wait_for(runner.wait_idle(), timeout=5)
    assert [t.stop for t in ended] == [None]
    assert (await engine.turns.get(record.id)).status is TurnStatus.DONE  # type: ignore[union-attr]


async def _submitted(
    engine: Any, queue: Any, session_id: str, execute: Any
) -> tuple[TurnRunner, TurnRecord]:
    """A runner over ``queue`` that runs ``execute`` (nothing to supersede or recover), with
    one new turn of the session submitted to it."""

    async def nothing(turn: Turn) -> None:
        return None

    runner = TurnRunner(
        queue, engine.bus, execute=execute, supersede=nothing, recover_emitted=nothing
    )
    record = TurnRecord(
        id=new_id(), session_id=session_id, customer_offset=0, creation_utc=utcnow()
    )
    await engine.turns.create(record)
    await runner.submit(record, [])
    return runner, record
