"""The scheduler role: every node serves the admin API and publishes queue gauges; the elected
leader runs the window check at once and then every interval."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiohttp import web

from scheduler.api import add_api_routes
from scheduler.console import add_console_routes
from scheduler.election import Election, Term
from scheduler.window import window_check
from shared.logging import get_logger
from shared.metrics import OLDEST_PENDING_AGE, OVERDUE, QUEUE_DEPTH, REDIS_RESETS
from shared.redis_client import REDIS_ERRORS
from shared.runtime import OUTAGES, Runtime

log = get_logger(__name__)

GAUGE_SECONDS = 5.0
RETRY_SECONDS = 5.0
#: How often the leader checks the Redis generation marker: the bound on noticing lost data.
GENERATION_POLL_SECONDS = 1.0


class SchedulerRole:
    name = "scheduler"

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._election = Election(rt, self._lead)
        #: The Redis generation this node last saw, kept across leadership terms: a flush also
        #: deletes the leader key, so the term that notices it is usually a new one.
        self._generation: str | None = None

    def add_routes(self, app: web.Application) -> None:
        add_api_routes(app)
        add_console_routes(app)

    async def run(self) -> None:
        self._rt.spawn(self._publish_gauges(), "queue gauges")
        await self._election.run()

    async def stop(self) -> None:
        await self._election.stop()

    async def _lead(self, term: Term) -> None:
        """The leader's work: a window check now, then every interval (a fixed cadence: the
        horizon assumes one check per interval, however long a check takes), and at once when
        Redis lost its data. A failed check is retried soon rather than an interval later."""
        interval = self._rt.settings.window_interval_seconds
        next_check = time.monotonic()
        while term.held:
            try:
                current = await self._read_generation()
                if self._generation is not None and current != self._generation:
                    REDIS_RESETS.inc()
                    log.warning("redis_data_lost", action="window check now")
                    next_check = time.monotonic()
                self._generation = current
                if time.monotonic() >= next_check:
                    started = time.monotonic()
                    await window_check(self._rt, term.epoch, active=lambda: term.held)
                    next_check = started + interval
            except OUTAGES as exc:
                log.warning("window_check_failed", error=type(exc).__name__)
                next_check = time.monotonic() + min(RETRY_SECONDS, interval)
            await term.pause(min(GENERATION_POLL_SECONDS, max(0.0, next_check - time.monotonic())))

    async def _read_generation(self) -> str:
        """The token marking this Redis dataset; a flushed or restarted Redis has none, so a
        new one is set and the change tells the leader to rebuild the queue."""
        key = self._rt.keys.generation
        async with self._rt.redis.pipeline(transaction=False) as pipe:
            pipe.set(key, uuid.uuid4().hex, nx=True)
            pipe.get(key)
            _, value = await pipe.execute()
        return value.decode() if isinstance(value, bytes) else str(value)

    async def _publish_gauges(self) -> None:
        while True:
            try:
                depth = await self._rt.queue.depth()
                now_ms = self._rt.clock.now_ms()
                overdue, oldest = await self._rt.queue.overdue(now_ms)
                for lane, count in depth.items():
                    QUEUE_DEPTH.labels(lane=lane).set(count)
                OVERDUE.set(overdue)
                OLDEST_PENDING_AGE.set(0 if oldest is None else (now_ms - oldest) / 1000)
            except REDIS_ERRORS as exc:
                log.debug("gauges_not_updated", error=type(exc).__name__)
            await asyncio.sleep(GAUGE_SECONDS)
