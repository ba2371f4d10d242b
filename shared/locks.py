"""A Redis TTL lock kept alive by a renewal task, and given up the moment renewal fails.

redis-py's asyncio `Lock` supplies SET NX PX, compare-and-pexpire and compare-and-delete; this
adds what it lacks: renewal every ttl/3, and a deadline on the local monotonic clock so a
holder that cannot reach Redis stops believing it holds the lock before the key can expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError

from shared.logging import get_logger
from shared.lua import Scripts
from shared.redis_client import REDIS_ERRORS

log = get_logger(__name__)

#: What ends a renewal: the lock is gone, Redis did not answer in time, or Redis is out.
RENEWAL_ERRORS: tuple[type[Exception], ...] = (LockError, TimeoutError, *REDIS_ERRORS)


class RenewedLock:
    def __init__(self, redis: Redis, name: str, ttl: float, token: str | None = None) -> None:
        self.name = name
        self.ttl = ttl
        self.token = token or uuid.uuid4().hex
        self.lost = asyncio.Event()
        self._lock = Lock(redis, name, timeout=ttl, blocking=False, thread_local=False,
                          raise_on_release_error=False)
        self._deadline = 0.0
        self._taken_now = False
        self._renewal: asyncio.Task[None] | None = None

    async def acquire(self) -> bool:
        started = time.monotonic()
        if not await self._lock.acquire(blocking=False, token=self.token):
            return False
        self._taken(started)
        return True

    def _taken(self, started: float, *, renew: bool = True) -> None:
        self._deadline = started + self.ttl
        self._taken_now = True
        self.lost.clear()
        if renew:
            self._renewal = asyncio.create_task(self._renew(), name=f"renew {self.name}")

    @property
    def held(self) -> bool:
        return self._taken_now and not self.lost.is_set() and (
            time.monotonic() < self._deadline
        )

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            started = time.monotonic()
            try:
                await asyncio.wait_for(self._lock.reacquire(),
                                       timeout=max(0.001, self._deadline - started))
            except RENEWAL_ERRORS as exc:
                log.warning("lock_lost", lock=self.name, error=type(exc).__name__)
                self.lost.set()
                return
            self._deadline = started + self.ttl

    async def release(self) -> None:
        """Stop renewing and compare-and-delete; a lock already lost or expired is fine."""
        await self._stop_renewal()
        with contextlib.suppress(LockError, *REDIS_ERRORS):
            await self._lock.release()

    async def _stop_renewal(self) -> None:
        """Cancel the renewal and wait for it to end. `asyncio.wait` rather than awaiting the
        task under `suppress(CancelledError)`, which would also swallow a cancellation of the
        caller arriving meanwhile (and let a stopping node run on)."""
        self._taken_now = False
        if self._renewal is not None:
            self._renewal.cancel()
            await asyncio.wait([self._renewal])
            self._renewal = None

    # A batch's locks are one script call (`shared/lua/locks_*.lua`), not one command per lock:
    # the keys of a Herald cluster share one hash slot, so on a Redis Cluster too.

    @staticmethod
    async def acquire_all(scripts: Scripts, locks: list[RenewedLock]) -> list[bool]:
        """Take each free lock of a batch with `SET NX PX`; the caller keeps the locks it won
        alive with `renew_all` (no renewal task per lock)."""
        started = time.monotonic()
        answers = await scripts.locks_acquire(
            keys=[lock.name for lock in locks],
            args=[arg for lock in locks for arg in (lock.token, int(lock.ttl * 1000))])
        for lock, won in zip(locks, answers, strict=True):
            if won:
                lock._taken(started, renew=False)
        return [bool(won) for won in answers]

    @staticmethod
    async def renew_all(scripts: Scripts, locks: list[RenewedLock]) -> None:
        """Renew a batch of held locks with compare-and-pexpires, each given up as `acquire`'s
        renewal would: when its key is gone or another's, or when Redis does not answer before
        the earliest deadline."""
        live = [lock for lock in locks if lock.held]
        if not live:
            return
        started = time.monotonic()
        try:
            async with asyncio.timeout(max(0.001, min(lock._deadline for lock in live) - started)):
                answers = await scripts.locks_renew(
                    keys=[lock.name for lock in live],
                    args=[arg for lock in live for arg in (lock.token, int(lock.ttl * 1000))])
        except RENEWAL_ERRORS as exc:
            answers = [exc] * len(live)
        for lock, answer in zip(live, answers, strict=True):
            if answer == 1:
                lock._deadline = started + lock.ttl
                continue
            error = type(answer).__name__ if isinstance(answer, Exception) else "LockError"
            log.warning("lock_lost", lock=lock.name, error=error)
            lock.lost.set()

    @staticmethod
    async def release_all(scripts: Scripts, locks: list[RenewedLock]) -> None:
        """Compare-and-delete a batch; a lock already lost or expired is fine, and a failed
        release leaves the keys to expire."""
        for lock in locks:
            await lock._stop_renewal()
        with contextlib.suppress(*REDIS_ERRORS):
            await scripts.locks_release(keys=[lock.name for lock in locks],
                                        args=[lock.token for lock in locks])

