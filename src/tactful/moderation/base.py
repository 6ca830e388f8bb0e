"""The moderation port: a check of one customer message, answering what it flagged and why.

Adapters (``moderation.rules``, ``moderation.jailbreak``, ``moderation.openai``) implement this
small ABC; the engine depends only on it (``engine.moderation``) and is given its moderators.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from tactful.errors import TactfulError


@dataclass(frozen=True)
class ModerationCheck:
    """What one moderator found: the categories it flagged (``domain.moderation``'s tags) and
    what fired, in words."""

    flagged: bool
    tags: tuple[str, ...] = ()
    reason: str = ""


NOT_FLAGGED = ModerationCheck(flagged=False)


class ModerationFailed(TactfulError):
    """A moderation provider failed or answered something unusable."""


class Moderator(ABC):
    """Checks a customer message. ``name`` says which check ran, in traces."""

    name: str

    @abstractmethod
    async def check(self, text: str) -> ModerationCheck:
        """The categories ``text`` falls in. Raises ``ModerationFailed`` when the provider
        fails (the engine then lets the message through, and the trace says so)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most moderators hold nothing
        """Release connections the moderator opened (called when the server stops)."""
