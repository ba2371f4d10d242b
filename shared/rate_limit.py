"""Per-account publish budgets in Redis, on the Redis clock: a GCRA rate, a daily quota, and
holds a platform asked for. A job over budget is deferred to when the budget frees, never
failed."""

from __future__ import annotations

from datetime import datetime

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

    async def hold(self, scope: str, until: datetime, now: datetime) -> None:
        """Hold back every job of `scope` until `until`: the platform said the account's (or
        the app's) allowance is spent, so the others need not each meet the 429 themselves. A
        later, longer hold replaces a shorter one; Redis forgets it when it ends."""
        ms = int((until - now).total_seconds() * 1000)
        if ms <= 0:
            return
        key = self._keys.budget(f"hold:{scope}")
        current = await self._redis.pttl(key)
        if current < ms:
            await self._redis.set(key, 1, px=ms)

    async def held_for(self, scopes: list[str]) -> float:
        """Seconds until the longest hold on any of `scopes` ends; 0 when none holds."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for scope in scopes:
                pipe.pttl(self._keys.budget(f"hold:{scope}"))
            remaining = await pipe.execute()
        return float(max([0, *remaining])) / 1000
