"""The telemetry port: what the engine tells observers when a turn ends in this process."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from tactful.domain import Trace

# A turn stopped before it ended (draining, or its lease was lost): it runs again elsewhere.
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class TurnEnded:
    """A turn this process ran, as it ended."""

    trace: Trace
    # The turn's terminal status ("done", "failed", "superseded", "dropped"), or "interrupted".
    outcome: str
    # From its claim to its terminal status.
    duration_s: float


class TurnObserver(ABC):
    """Told of every turn that ends in this process, after its terminal status is written.

    Called on the event loop: it must be quick and must not block. An exception it raises is
    logged, never a reason for the turn to fail.
    """

    @abstractmethod
    def turn_ended(self, turn: TurnEnded) -> None: ...
