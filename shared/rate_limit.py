"""Per-account publish budgets in Redis, on the Redis clock: a GCRA rate and a daily quota.
A job over budget is deferred to when the budget frees, never failed."""

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

    async def take_daily(self, scope: str, per_day: int) -> float:
        """Take one of today's (UTC) `per_day` units; 0 when admitted, else seconds until
        tomorrow. A unit taken by a job then deferred by the rate is not given back: the
        quota errs on the side of the platform's limit."""
        allowed, wait_s = await self._scripts.daily_quota(
            keys=[self._keys.budget(f"{scope}:day")], args=[per_day]
        )
        return 0.0 if int(allowed) else float(wait_s)
