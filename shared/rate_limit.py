"""Per-account publish budgets in Redis, on the Redis clock: a GCRA rate, a daily quota, and
holds a platform asked for. A job over budget is deferred to when the budget frees, never
failed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from shared.keys import Keys
from shared.lua import Scripts


@dataclass(frozen=True)
class Rate:
    """A GCRA budget: `per_minute` slots for `scope`, up to `burst` at once."""

    scope: str
    per_minute: float
    burst: int = 1


class Budgets:
    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts

    async def take(self, scope: str, per_minute: float, burst: int = 1) -> float:
        """Take one slot; returns 0 when admitted, else the seconds until a slot frees."""
        return (await self.take_many([Rate(scope, per_minute, burst)]))[0]

    async def take_many(self, rates: list[Rate]) -> list[float]:
        """`take` for each rate, in one pipeline: the scripts still run one after another on
        the server, so two slots of one scope in a batch are taken as two calls would."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for rate in rates:
                interval_ms = max(1, int(60_000 / rate.per_minute))
                await self._scripts.gcra(keys=[self._keys.budget(rate.scope)],
                                         args=[interval_ms, rate.burst], client=pipe)
            answers = await pipe.execute()
        return [0.0 if int(allowed) else int(wait_ms) / 1000 for allowed, wait_ms in answers]

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

    async def held_for_many(self, batch: list[list[str]]) -> list[float]:
        """For each list of scopes, the seconds until the longest hold on any of them ends (0
        when none holds), all in one pipeline that asks once per scope (a batch's jobs often
        share their account's and their platform's)."""
        unique = list(dict.fromkeys(scope for scopes in batch for scope in scopes))
        async with self._redis.pipeline(transaction=False) as pipe:
            for scope in unique:
                pipe.pttl(self._keys.budget(f"hold:{scope}"))
            left = dict(zip(unique, await pipe.execute(), strict=True))
        return [float(max([0, *(left[scope] for scope in scopes)])) / 1000 for scopes in batch]
