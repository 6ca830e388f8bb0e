"""The notification port: wake whoever waits on a session when its timeline grows."""

from __future__ import annotations

from abc import ABC, abstractmethod


class Listener(ABC):
    """A one-shot subscription, registered before the caller checks the store (no lost wake-ups)."""

    @abstractmethod
    async def wait(self, timeout: float) -> bool:
        """Wait until the session has news; False on timeout."""

    @abstractmethod
    def close(self) -> None:
        """Unsubscribe; safe to call twice."""


class Bus(ABC):
    """Pushes "session X has a new event" to listeners. No polling loops."""

    @abstractmethod
    def listen(self, session_id: str) -> Listener: ...

    @abstractmethod
    def publish(self, session_id: str, offset: int) -> None: ...
