"""Cluster time: the Redis server's clock, read through the local monotonic clock.

Nodes' wall clocks may disagree; every due comparison, lease expiry and lateness figure uses
this clock instead, so only Redis's clock matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime

from redis.asyncio import Redis

from shared.logging import get_logger

log = get_logger(__name__)


class ClusterClock:
    def __init__(self, redis: Redis, refresh_seconds: float = 30.0) -> None:
        self._redis = redis
        self._refresh_seconds = refresh_seconds
        self._offset: float | None = None

    async def sync(self) -> None:
        """Take the offset from the fastest of a few round trips, at the round trip's midpoint."""
        best: tuple[float, float] | None = None
        for _ in range(3):
            before = time.monotonic()
            seconds, micros = await self._redis.time()
            after = time.monotonic()
            rtt = after - before
            offset = seconds + micros / 1e6 - (before + rtt / 2)
            if best is None or rtt < best[0]:
                best = (rtt, offset)
        assert best is not None
        self._offset = best[1]

    def now(self) -> float:
        """Cluster time in Unix seconds; sync() must have run once."""
        if self._offset is None:
            raise RuntimeError("ClusterClock.now() before the first sync()")
        return time.monotonic() + self._offset

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def now_dt(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    async def run(self) -> None:
        """Refresh the offset until cancelled; a failed refresh keeps the last good offset."""
        while True:
            await asyncio.sleep(self._refresh_seconds)
            with contextlib.suppress(Exception):
                await self.sync()
