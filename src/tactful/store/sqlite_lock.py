"""One serving process per SQLite file: an exclusive lock next to the database, held for life.

A SQLite file serves one process: its bus is in memory, so a second process would never wake the
first one's waiters, and turns of one session could run in both. The lock is ``flock`` on
``<database>.lock``: the kernel drops it when the process ends, however it ends (``kill -9``
included), so there is no stale lock to clean up. It is taken by each runtime (a server), not by
the store, so commands that only read or write a few rows (``tactful keys``) still work beside a
running server. A second runtime in the same process is refused too (each has its own bus).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from tactful.errors import StoreError


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for memory, or for another backend."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    if parsed.query.get("mode") == "memory":
        return None
    return Path(database.removeprefix("file:"))


class SQLiteProcessLock:
    """The lock of one SQLite database; ``release`` (or the end of the process) frees it."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise ``StoreError`` saying which process holds it and what to do."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(
                f"cannot open the database at {self.database}: cannot create its lock file "
                f"{self.path}: {e.strerror or e}"
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            by = f"another tactful process (pid {holder})" if holder else "another tactful process"
            raise StoreError(
                f"the SQLite database {self.database} is in use by {by}: SQLite serves one "
                "process at a time. Stop that process, give this one its own data folder "
                "(--data-dir), or run several processes on PostgreSQL "
                "(TACTFUL_DATABASE_URL=postgresql://...)"
            ) from None
        except OSError as e:
            os.close(fd)
            raise StoreError(f"cannot lock {self.path}: {e.strerror or e}") from e
        # Who holds it, for the message the next process prints.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up; safe to call twice. The file stays (deleting it would race)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def lock_sqlite(url: str) -> SQLiteProcessLock | None:
    """Lock the SQLite file of ``url`` for this process; None when there is no file to lock."""
    database = sqlite_file(url)
    if database is None:
        return None
    lock = SQLiteProcessLock(database)
    lock.acquire()
    return lock


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text.isdigit() else None
    except (OSError, UnicodeDecodeError):
        return None
