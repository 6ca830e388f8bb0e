"""Turns as records: what a customer message calls for, who runs it, and how it ended.

A customer message writes its turn in the same transaction. A worker claims the turn with a
lease it renews while the turn runs; a turn whose lease expired (its worker died) is claimed
again and run again from its inputs. At most one turn of a session runs at a time, whichever
process runs it (the database enforces it), and a turn's reply is written at most once
(``emitted`` flips once, in the reply's own transaction).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel


class TurnStatus(StrEnum):
    PENDING = "pending"  # waiting for a worker (or for the session's running turn to end)
    RUNNING = "running"  # claimed; its lease says until when
    DONE = "done"  # replied (or decided to stay silent) and wrote ready
    FAILED = "failed"  # wrote error and ready
    SUPERSEDED = "superseded"  # a newer customer message took over before it replied
    DROPPED = "dropped"  # its session was deleted while it waited or ran

    @property
    def finished(self) -> bool:
        return self not in (TurnStatus.PENDING, TurnStatus.RUNNING)


class TurnRecord(BaseModel):
    """One turn: the customer message at ``customer_offset`` calls for an agent reply."""

    id: str  # the turn's trace id, which its events carry
    session_id: str
    customer_offset: int
    status: TurnStatus = TurnStatus.PENDING
    # The worker holding the lease, and until when; None when nobody holds it.
    owner: str | None = None
    lease_expires: datetime | None = None
    # How many times a worker claimed it (more than 1: run again after a worker died).
    attempts: int = 0
    # The reply started going out: a newer message no longer supersedes it.
    emitted: bool = False
    # A newer message asked the running turn to stop (it has not emitted).
    cancel_requested: bool = False
    creation_utc: datetime
