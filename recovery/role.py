"""The recovery role: a light sweep every HERALD_LIGHT_SWEEP_SECONDS and a full sweep on
HERALD_FULL_SWEEP_CRON (UTC), each under a cluster-wide lock so only one node sweeps at once."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from aiohttp import web
from croniter import croniter
from pymongo import ReturnDocument
from pymongo.errors import PyMongoError

from executor.publish import Publisher
from recovery.sweeps import Sweeper
from shared.locks import RenewedLock
from shared.logging import get_logger
from shared.notify import Notifier
from shared.runtime import OUTAGES, Runtime
from shared.store import Doc

log = get_logger(__name__)

#: How often a recovery node looks for sweeps requested through the API.
REQUEST_POLL_SECONDS = 1.0
#: How many times a sweep waits for another node's sweep to end before giving up.
LOCK_TRIES = 3


class RecoveryRole:
    name = "recovery"

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        notifier = Notifier(rt.http, rt.settings.notify_webhook_url,
                            console_url=rt.settings.console_url)
        self._sweeper = Sweeper(rt, Publisher(rt, notifier))

    def add_routes(self, app: web.Application) -> None:
        """Sweeps are requested through the admin API of scheduler nodes."""

    async def run(self) -> None:
        """A light sweep every interval (full when the full-sweep schedule says so), and
        between them the sweeps requested through the API."""
        settings = self._rt.settings
        next_full = self._next_full()
        next_light = time.monotonic() + settings.light_sweep_seconds
        while True:
            await asyncio.sleep(min(REQUEST_POLL_SECONDS,
                                    max(0.0, next_light - time.monotonic())))
            await self._requested()
            if time.monotonic() < next_light:
                continue
            next_light = time.monotonic() + settings.light_sweep_seconds
            kind = "full" if self._rt.clock.now_dt() >= next_full else "light"
            if await self.sweep_once(kind) and kind == "full":
                next_full = self._next_full()

    async def _requested(self) -> None:
        """Claim and run one requested sweep; the claim is atomic, so one node runs it."""
        try:
            report = await self._rt.store.sweeps.find_one_and_update(
                {"status": "requested"},
                {"$set": {"status": "claimed", "node_id": self._rt.settings.node_id}},
                sort=[("_id", 1)], return_document=ReturnDocument.AFTER,
            )
        except PyMongoError as exc:
            log.warning("sweep_requests_unreadable", error=type(exc).__name__)
            return
        if report is not None:
            await self.sweep_once(report["kind"], report)

    def _next_full(self) -> datetime:
        nxt: datetime = croniter(self._rt.settings.full_sweep_cron,
                                 self._rt.clock.now_dt()).get_next(datetime)
        return nxt

    async def sweep_once(self, kind: str, report: Doc | None = None) -> bool:
        """Run one sweep, waiting briefly for another node's sweep to end; True when this node
        swept."""
        # Renewed while the sweep runs; its ttl is the job lease's, so a node killed mid-sweep
        # holds back the next sweep no longer than its leases hold back their jobs.
        lock = RenewedLock(self._rt.redis, self._rt.keys.sweep_lock,
                           self._rt.settings.lease_ttl_seconds)
        try:
            if not await self._acquire(lock):
                if report is not None:
                    await self._rt.store.sweeps.update_one(
                        {"_id": report["_id"]}, {"$set": {"status": "requested"}})
                return False
            try:
                await self._sweeper.sweep(kind, report)
            finally:
                await lock.release()
        except OUTAGES as exc:
            log.warning("sweep_failed", kind=kind, error=type(exc).__name__)
            return False
        return True

    async def _acquire(self, lock: RenewedLock) -> bool:
        for _ in range(LOCK_TRIES):
            if await lock.acquire():
                return True
            await asyncio.sleep(REQUEST_POLL_SECONDS)
        return False

    async def stop(self) -> None:
        """A sweep interrupted by the stop is repeated by the next one; nothing to drain."""
