"""Rate limits: fixed one-minute windows counted in the store, so every server process on one
database shares them (a library such as ``limits`` keeps its counters in memory, Redis or
Memcached, not in our SQL store).
"""

from __future__ import annotations

import time

from tactful.errors import RateLimitedError
from tactful.store.base import Store

WINDOW_S = 60


class RateLimiter:
    """Counts hits per bucket per minute and refuses those over a limit."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def hit(self, bucket: str, limit: int, what: str) -> None:
        """Count one hit; raise ``RateLimitedError`` when ``bucket`` is over ``limit`` this
        minute (``limit`` 0: no limit). ``what`` names the limit in the error message."""
        if limit <= 0:
            return
        now = time.time()
        window = int(now // WINDOW_S)
        if await self.store.count_hit(bucket, window) > limit:
            retry_after = max(1, int(WINDOW_S - now % WINDOW_S) + 1)
            raise RateLimitedError(
                f"too many {what}: the limit is {limit} a minute; try again in {retry_after} s",
                retry_after_s=retry_after,
            )
