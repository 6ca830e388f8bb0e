"""The PostgreSQL bus: two instances are two processes. A publish in one wakes the other's
listeners on the same schema and no other; a lost connection degrades to re-reading, then
reconnects and sends what it queued meanwhile."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tactful.bus.postgres import CHANNEL_MAX_BYTES, PostgresBus, channel_name, connect_args
from tactful.errors import StoreError
from tcp_proxy import proxy_to

pytestmark = pytest.mark.postgres
WAIT_S = 10.0


@asynccontextmanager
async def bus(url: str, schema: str, **options: float) -> AsyncIterator[PostgresBus]:
    b = PostgresBus(url, pg_schema=schema, **options)
    await b.start()
    try:
        yield b
    finally:
        await b.close()


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """Wait (a deadline, not a measurement) until ``condition`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.01)


async def test_a_publish_wakes_the_other_process_on_its_schema_only(
    pg_url: str, new_schema: Callable[[], Awaitable[str]]
) -> None:
    one, other = await new_schema(), await new_schema()
    async with (
        bus(pg_url, one) as a,
        bus(pg_url, one) as b,
        bus(pg_url, other) as c,
        bus(pg_url, other) as d,
    ):
        assert a.channel == b.channel != c.channel == d.channel
        on_b, on_c = b.listen("s"), c.listen("s")
        a.publish("s", 7)
        assert await on_b.wait(WAIT_S) is True
        # d's notification comes after a's (commit order): once c has it, c would have had
        # a's too, had it been sent to c's channel.
        sentinel = c.listen("sentinel")
        d.publish("sentinel", 1)
        assert await sentinel.wait(WAIT_S) is True
        assert c.listener_count == 1  # on_c still waits
        on_c.close()


async def test_a_process_ignores_its_own_notifications(
    pg_url: str, new_schema: Callable[[], Awaitable[str]]
) -> None:
    schema = await new_schema()
    async with bus(pg_url, schema) as a, bus(pg_url, schema) as b:
        woken = a.listen("s")
        a.publish("s", 1)  # wakes a's own listener at once, without a round trip
        assert await woken.wait(0) is True
        echo = a.listen("s")  # a's NOTIFY, coming back, must not wake this one
        on_b = b.listen("s")
        assert await on_b.wait(WAIT_S) is True  # a's NOTIFY has been sent
        sentinel = a.listen("sentinel")
        b.publish("sentinel", 1)  # after a's NOTIFY: a has received its own by then
        assert await sentinel.wait(WAIT_S) is True
        assert a.listener_count == 1  # echo still waits
        echo.close()


async def test_watchers_hear_other_processes_and_their_own_process_once(
    pg_url: str, new_schema: Callable[[], Awaitable[str]]
) -> None:
    schema = await new_schema()
    async with bus(pg_url, schema) as a, bus(pg_url, schema) as b:
        heard: list[tuple[str | None, int]] = []
        a.watch(lambda session_id, offset: heard.append((session_id, offset)))
        a.publish("mine", 1)
        on_a = a.listen("theirs")
        b.publish("theirs", 2)  # sent after a's own NOTIFY: a has its echo by then
        assert await on_a.wait(WAIT_S) is True
        assert heard == [("mine", 1), ("theirs", 2)]


async def test_reconnects_after_its_connection_is_terminated(
    pg_url: str, new_schema: Callable[[], Awaitable[str]]
) -> None:
    schema = await new_schema()
    async with bus(pg_url, schema) as a, bus(pg_url, schema) as b:
        killed = b.backend_pid
        assert killed is not None
        admin = await asyncpg.connect(pg_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", killed)
        finally:
            await admin.close()
        await until(lambda: b.backend_pid not in (None, killed), "b listening again")
        on_b = b.listen("s")
        a.publish("s", 1)
        assert await on_b.wait(WAIT_S) is True


async def test_while_cut_off_waiters_are_woken_and_queued_news_goes_out_after(
    pg_url: str, new_schema: Callable[[], Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    schema = await new_schema()
    target = make_url(pg_url)
    async with proxy_to(target.host or "127.0.0.1", target.port or 5432) as proxy:
        behind = target.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        async with (
            bus(pg_url, schema) as a,
            bus(behind, schema, reconnect_max_s=0.2) as b,
        ):
            with caplog.at_level(logging.WARNING, logger="tactful.bus"):
                heard: list[tuple[str | None, int]] = []
                b.watch(lambda session_id, offset: heard.append((session_id, offset)))
                waiting = b.listen("s")
                proxy.sever()
                await until(lambda: not b.connected, "b notices the cut")
                # No notification can reach b now: its waiters are woken to read the store,
                # and its watchers told that any session may have changed.
                assert await waiting.wait(WAIT_S) is True
                assert (None, -1) in heard
                b.publish("queued", 3)  # cannot go out yet
                on_a = a.listen("queued")
                await asyncio.sleep(0.5)  # several reconnection attempts fail meanwhile
                assert a.listener_count == 1
                proxy.restore()
                assert await on_a.wait(WAIT_S) is True  # sent once b is back
                on_b = b.listen("s")
                a.publish("s", 4)
                assert await on_b.wait(WAIT_S) is True
            lost = [r for r in caplog.records if "lost the PostgreSQL connection" in r.message]
            back = [r for r in caplog.records if "listening for session events" in r.message]
            assert len(lost) == 1 and len(back) == 1


async def test_closing_sends_what_is_still_queued(
    pg_url: str, new_schema: Callable[[], Awaitable[str]]
) -> None:
    schema = await new_schema()
    async with bus(pg_url, schema) as b:
        a = PostgresBus(pg_url, pg_schema=schema)
        await a.start()
        on_b = b.listen("s")
        a.publish("s", 1)  # the last news of a process that is shutting down
        await a.close()
        assert not a.connected
        assert await on_b.wait(WAIT_S) is True


async def test_start_fails_clearly_when_postgresql_cannot_be_reached() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    b = PostgresBus(f"postgresql://someone:secret@127.0.0.1:{port}/db")
    with pytest.raises(StoreError, match="cannot listen for session events") as caught:
        await b.start()
    assert "secret" not in str(caught.value)
    await b.close()


def test_channel_names_fit_postgresql_identifiers() -> None:
    assert channel_name("public") == "tactful_events:public"
    long = channel_name("s" * 100)
    assert len(long.encode()) <= CHANNEL_MAX_BYTES
    assert long != channel_name("s" * 99)


def test_connect_args_keep_what_asyncpg_understands() -> None:
    args = connect_args(
        "postgresql+asyncpg://u:p@db.example:6432/app?prepared_statement_cache_size=0",
        pg_schema="tenant",
    )
    assert args["host"] == "db.example" and args["port"] == 6432
    assert args["user"] == "u" and args["password"] == "p" and args["database"] == "app"
    assert "prepared_statement_cache_size" not in args  # SQLAlchemy's, not asyncpg's
    assert args["server_settings"]["search_path"] == "tenant"
