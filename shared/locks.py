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
from redis.exceptions import LockError, RedisError

from shared.logging import get_logger

log = get_logger(__name__)


class RenewedLock:
    def __init__(self, redis: Redis, name: str, ttl: float, token: str | None = None) -> None:
        self.name = name
        self.ttl = ttl
        self.token = token or uuid.uuid4().hex
        self.lost = asyncio.Event()
        self._lock = Lock(redis, name, timeout=ttl, blocking=False, thread_local=False,
                          raise_on_release_error=False)
        self._deadline = 0.0
        self._renewal: asyncio.Task[None] | None = None

    async def acquire(self) -> bool:
        started = time.monotonic()
        if not await self._lock.acquire(blocking=False, token=self.token):
            return False
        self._deadline = started + self.ttl
        self.lost.clear()
        self._renewal = asyncio.create_task(self._renew(), name=f"renew {self.name}")
        return True

    @property
    def held(self) -> bool:
        return self._renewal is not None and not self.lost.is_set() and (
            time.monotonic() < self._deadline
        )

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            started = time.monotonic()
            try:
                await asyncio.wait_for(self._lock.reacquire(),
                                       timeout=max(0.001, self._deadline - started))
            except (LockError, RedisError, OSError, TimeoutError) as exc:
                log.warning("lock_lost", lock=self.name, error=type(exc).__name__)
                self.lost.set()
                return
            self._deadline = started + self.ttl

    async def release(self) -> None:
        """Stop renewing and compare-and-delete; a lock already lost or expired is fine."""
        if self._renewal is not None:
            self._renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewal
            self._renewal = None
        with contextlib.suppress(LockError, RedisError, OSError):
            await self._lock.release()
