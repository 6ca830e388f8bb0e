"""The notification port: wake whoever waits on a session when its timeline grows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

# Told of each change a bus hears of: (session id, offset), or (None, -1) for "any session".
Watcher = Callable[[str | None, int], None]


class Listener(ABC):
    """A one-shot subscription, registered before the caller checks the store (no lost wake-ups)."""

    @abstractmethod
    async def wait(self, timeout: float) -> bool:
        """Wait until the session has news; False on timeout."""

    @abstractmethod
    def close(self) -> None:
        """Unsubscribe; safe to call twice."""


class Bus(ABC):
    """Pushes "session X has a new event" to listeners. No polling loops.

    A wake-up means "read the store again", never "here is the event": a listener may be woken
    with nothing new (and must then listen again), and a caller whose wait timed out reads the
    store once more before giving up, so a lost notification delays an answer, never loses it.
    """

    @abstractmethod
    def listen(self, session_id: str) -> Listener:
        """Subscribe to the session's next change; wait on the listener, then close it."""

    @abstractmethod
    def publish(self, session_id: str, offset: int) -> None:
        """Say that the session changed at ``offset``; call it after the write committed."""

    @abstractmethod
    def watch(self, watcher: Watcher) -> None:
        """Also tell ``watcher`` of every change this process hears of (its own publishes and
        other processes' notifications), before waking the listeners: ``(session_id, offset)``,
        or ``(None, -1)`` when notifications may have been lost (any session may have changed).
        A watcher is kept as long as the bus."""

    @abstractmethod
    async def close(self) -> None:
        """Release what the bus holds (connections, tasks)."""
