"""Leader election on a Redis key (DESIGN §4), with the epoch kept in MongoDB.

The winner's leadership lasts only while its renewed lock holds. The leader's work receives its
`Term` and returns when the term no longer holds, between steps: it is never cancelled, because
cancelling an `AsyncMongoClient` call that waits in server selection can leave pymongo's
topology lock held for good (docs/decisions.md). Everything the leader writes is idempotent, so
the last step of a deposed leader is harmless; its staging records the epoch it ran under.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import PyMongoError

from shared.locks import RenewedLock
from shared.logging import get_logger
from shared.metrics import LEADER, LEADER_TRANSITIONS
from shared.redis_client import REDIS_ERRORS
from shared.runtime import Runtime

log = get_logger(__name__)

LEADER_DOC = "leader"


class Term:
    """One leadership term: its epoch, and whether it still holds."""

    def __init__(self, epoch: int, lock: RenewedLock) -> None:
        self.epoch = epoch
        self._lock = lock

    @property
    def held(self) -> bool:
        return self._lock.held

    async def pause(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early when the term ends; True while it holds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._lock.lost.wait(), seconds)
        return self.held


LeaderWork = Callable[[Term], Coroutine[Any, Any, None]]


class Election:
    def __init__(self, rt: Runtime, lead: LeaderWork) -> None:
        self._rt = rt
        self._lead = lead
        self._ttl = rt.settings.leader_ttl_seconds
        self._lock: RenewedLock | None = None
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def run(self) -> None:
        while not self._stopping:
            lock = RenewedLock(self._rt.redis, self._rt.keys.leader, self._ttl,
                               token=f"{self._rt.settings.node_id}:{uuid.uuid4().hex}")
            try:
                won = await lock.acquire()
            except REDIS_ERRORS as exc:
                log.warning("election_redis_error", error=type(exc).__name__)
                won = False
            if won:
                self._lock = lock
                self._idle.clear()
                try:
                    await self._hold(lock)
                finally:
                    self._lock = None
                    self._idle.set()
            if not self._stopping:
                await asyncio.sleep(self._ttl / 5 if not won else 0)

    async def _hold(self, lock: RenewedLock) -> None:
        try:
            epoch = await self._raise_epoch()
        except PyMongoError as exc:
            log.warning("epoch_not_raised", error=type(exc).__name__)
            await lock.release()
            await asyncio.sleep(self._ttl / 3)
            return
        LEADER.set(1)
        LEADER_TRANSITIONS.labels(direction="up").inc()
        log.info("leader_elected", epoch=epoch)
        work = asyncio.create_task(self._lead(Term(epoch, lock)), name="leader work")
        lost = asyncio.create_task(lock.lost.wait())
        await asyncio.wait([work, lost], return_when=asyncio.FIRST_COMPLETED)
        lost.cancel()
        await lock.release()
        LEADER.set(0)
        LEADER_TRANSITIONS.labels(direction="down").inc()
        log.info("leader_stepped_down", epoch=epoch)
        while not work.done():
            await asyncio.wait([work], timeout=self._ttl)
            if not work.done():
                log.warning("leader_work_still_running", epoch=epoch)
        if not work.cancelled() and work.exception() is not None:
            log.error("leader_work_crashed", exc_info=work.exception())
            # Let another node lead rather than re-run a failing term at once, epoch after epoch.
            await asyncio.sleep(self._ttl)

    async def _raise_epoch(self) -> int:
        now: datetime = self._rt.clock.now_dt()
        doc = await self._rt.store.cluster.find_one_and_update(
            {"_id": LEADER_DOC},
            {"$inc": {"epoch": 1}, "$set": {"node_id": self._rt.settings.node_id, "since": now}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None
        return int(doc["epoch"])

    async def stop(self) -> None:
        """Step down and delete the key, so a successor takes over without waiting for the ttl."""
        self._stopping = True
        if self._lock is not None:
            self._lock.lost.set()
        await self._idle.wait()
