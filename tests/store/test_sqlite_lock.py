"""The lock that keeps a SQLite file to one serving process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tactful.errors import StoreError
from tactful.store.sqlite_lock import SQLiteProcessLock, lock_sqlite, sqlite_file


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite+aiosqlite:///data/tactful.db", Path("data/tactful.db")),
        ("sqlite:////abs/t.db", Path("/abs/t.db")),
        ("sqlite+aiosqlite:///:memory:", None),
        ("sqlite+aiosqlite://", None),
        ("postgresql://u@h/db", None),
    ],
)
def test_which_file_a_url_names(url: str, expected: Path | None) -> None:
    assert sqlite_file(url) == expected


def test_one_holder_at_a_time_and_the_holder_is_named(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 't.db'}"
    held = lock_sqlite(url)
    assert held is not None
    assert held.path == tmp_path / "t.db.lock"
    assert held.path.read_text().strip() == str(os.getpid())
    with pytest.raises(StoreError, match=rf"\(pid {os.getpid()}\)"):
        lock_sqlite(url)
    held.release()
    held.release()  # twice is fine
    again = lock_sqlite(url)
    assert again is not None
    again.release()


def test_a_folder_that_cannot_hold_the_lock_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"cannot open the database at .*cannot create its lock"):
        SQLiteProcessLock(tmp_path / "missing" / "t.db").acquire()
