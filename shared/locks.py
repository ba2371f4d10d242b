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
from shared.lua import Script
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

    @staticmethod
    async def acquire_all(redis: Redis, locks: list[RenewedLock], *,
                          renew: bool = True) -> list[bool]:
        """Take a batch of locks in one pipeline of `SET NX PX` (one round trip, not one per lock);
        each lock won starts renewing as `acquire` would, unless `renew` is False: then the
        caller keeps them alive with `renew_all`."""
        started = time.monotonic()
        async with redis.pipeline(transaction=False) as pipe:
            for lock in locks:
                pipe.set(lock.name, lock.token, nx=True, px=int(lock.ttl * 1000))
            answers = await pipe.execute()
        for lock, won in zip(locks, answers, strict=True):
            if won:
                lock._taken(started, renew=renew)
        return [bool(won) for won in answers]

    @staticmethod
    async def renew_all(redis: Redis, locks: list[RenewedLock], reacquire: Script) -> None:
        """Renew a batch of held locks in one pipeline of compare-and-pexpires (redis-py's own
        reacquire script), each given up as `acquire`'s renewal would: when its key is gone or
        another's, or when Redis does not answer before the earliest deadline. `reacquire`:
        redis-py's reacquire script, registered once (`Scripts.lock_reacquire`)."""
        live = [lock for lock in locks if lock.held]
        if not live:
            return
        started = time.monotonic()
        try:
            async with asyncio.timeout(max(0.001, min(lock._deadline for lock in live) - started)):
                async with redis.pipeline(transaction=False) as pipe:
                    for lock in live:
                        await reacquire(keys=[lock.name], args=[lock.token, int(lock.ttl * 1000)],
                                        client=pipe)
                    answers = await pipe.execute(raise_on_error=False)
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
    async def release_all(redis: Redis, locks: list[RenewedLock], release: Script) -> None:
        """Release a batch in one pipeline of compare-and-deletes (`release`: redis-py's own
        release script, registered once as a Herald `Script`, `Scripts.lock_release`, so it
        also goes through a Redis Cluster pipeline);
        a lock already lost or expired is fine, and a failed release leaves the keys to expire."""
        for lock in locks:
            await lock._stop_renewal()
        with contextlib.suppress(*REDIS_ERRORS):
            async with redis.pipeline(transaction=False) as pipe:
                for lock in locks:
                    await release(keys=[lock.name], args=[lock.token], client=pipe)
                await pipe.execute(raise_on_error=False)

