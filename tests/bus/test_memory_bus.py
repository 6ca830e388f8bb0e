"""The in-process bus: wake-ups are pushed, not polled, and none is lost."""

from __future__ import annotations

import asyncio

from tactful.bus.memory import MemoryBus


async def test_publish_wakes_every_listener_of_the_session_only() -> None:
    bus = MemoryBus()
    a1, a2, b = bus.listen("a"), bus.listen("a"), bus.listen("b")
    waits = [asyncio.create_task(x.wait(5)) for x in (a1, a2)]
    other = asyncio.create_task(b.wait(0.05))
    await asyncio.sleep(0)
    bus.publish("a", 3)
    assert await asyncio.gather(*waits) == [True, True]
    assert await other is False
    assert bus.listener_count == 0


async def test_publish_before_wait_is_not_lost() -> None:
    bus = MemoryBus()
    listener = bus.listen("s")
    bus.publish("s", 0)
    assert await listener.wait(0.01) is True


async def test_timeout_unsubscribes() -> None:
    bus = MemoryBus()
    listener = bus.listen("s")
    assert await listener.wait(0.01) is False
    assert bus.listener_count == 0
    listener.close()  # twice is fine


async def test_watchers_hear_every_change_before_listeners_wake() -> None:
    bus = MemoryBus()
    heard: list[tuple[str | None, int]] = []
    listener = bus.listen("s")
    bus.watch(lambda session_id, offset: heard.append((session_id, offset)))
    bus.publish("s", 3)
    bus.publish("t", 0)  # nobody listens on t: watchers still hear of it
    bus.wake_everyone()
    assert heard == [("s", 3), ("t", 0), (None, -1)]
    assert await listener.wait(0) is True
