"""In-process bus on asyncio futures: one process, any number of waiting clients."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from tactful.bus.base import Bus, Listener, Watcher


class _FutureListener(Listener):
    def __init__(self, bus: MemoryBus, session_id: str) -> None:
        self._bus = bus
        self._session_id = session_id
        self.future: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(asyncio.shield(self.future), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self.close()

    def close(self) -> None:
        self._bus._remove(self._session_id, self)


class MemoryBus(Bus):
    """Listeners per session; ``publish`` resolves all of them at once."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[_FutureListener]] = defaultdict(set)
        self._watchers: list[Watcher] = []

    def listen(self, session_id: str) -> Listener:
        listener = _FutureListener(self, session_id)
        self._listeners[session_id].add(listener)
        return listener

    def publish(self, session_id: str, offset: int) -> None:
        for watcher in self._watchers:
            watcher(session_id, offset)
        self._wake(session_id, offset)

    def watch(self, watcher: Watcher) -> None:
        self._watchers.append(watcher)

    async def close(self) -> None:
        """Nothing to release: listeners go with their requests."""

    def wake_everyone(self) -> None:
        """Wake every listener of every session (each reads the store again), and tell the
        watchers that any session may have changed."""
        for watcher in self._watchers:
            watcher(None, -1)
        for session_id in list(self._listeners):
            self._wake(session_id, -1)

    def _wake(self, session_id: str, offset: int) -> None:
        for listener in self._listeners.pop(session_id, set()):
            if not listener.future.done():
                listener.future.set_result(offset)

    def _remove(self, session_id: str, listener: _FutureListener) -> None:
        waiting = self._listeners.get(session_id)
        if waiting is not None:
            waiting.discard(listener)
            if not waiting:
                del self._listeners[session_id]

    @property
    def listener_count(self) -> int:
        return sum(len(v) for v in self._listeners.values())
