"""The recovery role: a light sweep every HERALD_LIGHT_SWEEP_SECONDS and a full sweep on
HERALD_FULL_SWEEP_CRON (UTC), each under a cluster-wide lock so only one node sweeps at once."""

from __future__ import annotations

import asyncio
from datetime import datetime

from aiohttp import web
from croniter import croniter
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from executor.publish import Publisher
from recovery.sweeps import Sweeper
from shared.locks import RenewedLock
from shared.logging import get_logger
from shared.notify import Notifier
from shared.runtime import Runtime

log = get_logger(__name__)

#: The sweep lock's ttl; it is renewed while a sweep runs, however long that takes.
SWEEP_LOCK_TTL = 30.0


class RecoveryRole:
    name = "recovery"

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        notifier = Notifier(rt.http, rt.settings.notify_webhook_url)
        self._sweeper = Sweeper(rt, Publisher(rt, notifier))

    def add_routes(self, app: web.Application) -> None:
        """Sweeps are requested through the admin API of scheduler nodes."""

    async def run(self) -> None:
        settings = self._rt.settings
        next_full = self._next_full()
        while True:
            await asyncio.sleep(settings.light_sweep_seconds)
            kind = "full" if self._rt.clock.now_dt() >= next_full else "light"
            if await self.sweep_once(kind) and kind == "full":
                next_full = self._next_full()

    def _next_full(self) -> datetime:
        nxt: datetime = croniter(self._rt.settings.full_sweep_cron,
                                 self._rt.clock.now_dt()).get_next(datetime)
        return nxt

    async def sweep_once(self, kind: str) -> bool:
        """Run one sweep unless another node is sweeping; True when this node swept."""
        lock = RenewedLock(self._rt.redis, self._rt.keys.sweep_lock, SWEEP_LOCK_TTL)
        try:
            if not await lock.acquire():
                return False
            try:
                await self._sweeper.sweep(kind)
            finally:
                await lock.release()
        except (PyMongoError, RedisError, OSError) as exc:
            log.warning("sweep_failed", kind=kind, error=type(exc).__name__)
            return False
        return True

    async def stop(self) -> None:
        """A sweep interrupted by the stop is repeated by the next one; nothing to drain."""
