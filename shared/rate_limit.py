"""Per-account and per-platform publish budgets (GCRA in Redis): over budget defers, never fails."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.keys import Keys
from shared.lua import Scripts


class Budgets:
    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts

    async def take(self, scope: str, per_minute: float, burst: int = 1) -> float:
        """Take one slot; returns 0 when admitted, else the seconds until a slot frees."""
        interval_ms = max(1, int(60_000 / per_minute))
        allowed, wait_ms = await self._scripts.gcra(
            keys=[self._keys.budget(scope)], args=[interval_ms, burst]
        )
        return 0.0 if int(allowed) else int(wait_ms) / 1000
