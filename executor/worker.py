"""The claim loop: pop due jobs (high lane first, then due generations) into free slots, and
otherwise sleep until the earliest due time, woken early by a pub/sub message when something
earlier is staged."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import pymongo
from pymongo.errors import PyMongoError
from redis.asyncio.client import PubSub

from executor.generate import Generator
from executor.publish import Publisher
from shared.logging import get_logger
from shared.metrics import JOBS_IN_FLIGHT
from shared.redis_client import REDIS_ERRORS
from shared.runtime import Runtime

log = get_logger(__name__)

#: Longest sleep between polls: bounds the delay after a lost wake-up message or a flushed Redis.
MAX_SLEEP = 1.0
ERROR_BACKOFF = 1.0
#: A saturated executor refills its slots half its concurrency at a time, so the jobs
#: popped together share each claim, read and write (DESIGN §5) instead of trickling through
#: them one by one; a freed slot waits at most this long for company.
REFILL_WAIT = 0.02
PING_TIMEOUT_SECONDS = 5.0


class Worker:
    def __init__(self, rt: Runtime, publisher: Publisher, concurrency: int) -> None:
        self._rt = rt
        self._publisher = publisher
        self._generator = Generator(publisher)
        self._concurrency = concurrency
        #: Jobs are popped and claimed this long before they are due (`executor_lead_ms`), so
        #: that the claim and the reads are done when the due time comes and only the platform
        #: call remains.
        self._lead_ms = rt.settings.executor_lead_ms
        #: Each task in flight and the slots it holds: a popped batch's claim holds one per
        #: job popped, until it has started a task for each job it claimed.
        self._in_flight: dict[asyncio.Task[None], int] = {}
        self._refill_batch = max(1, concurrency // 2)
        #: When the first slot freed since the last pop was freed (loop time).
        self._freed_at: float | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._store_suspect = False

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="wake listener")
        try:
            while not self._stopping:
                await self._cycle()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _cycle(self) -> None:
        free = self._concurrency - self._busy()
        wait = self._refill_wait(free)
        if wait > 0:
            # A finished job sets the event again, so a wake-up message that came meanwhile
            # cannot keep this loop spinning while the slots are full.
            self._wake.clear()
            await self._sleep(wait)
            return
        if self._store_suspect and not await self._store_available():
            await asyncio.sleep(ERROR_BACKOFF)
            return
        self._wake.clear()
        self._freed_at = None
        try:
            popped = await self._rt.queue.pop(free, self._lead_ms)
        except REDIS_ERRORS as exc:
            log.warning("pop_failed", error=type(exc).__name__)
            await asyncio.sleep(ERROR_BACKOFF)
            return
        if popped.job_ids:
            self._start(self._claim(popped.job_ids), popped.job_ids)
        for job_id in popped.generations:
            self._start(self._generator.run(job_id), [job_id])
        if len(popped.job_ids) + len(popped.generations) == free:
            return
        if popped.next_due_ms is None:
            await self._sleep(MAX_SLEEP)
        else:
            await self._sleep(
                max(0.0, (popped.next_due_ms - self._lead_ms - popped.now_ms) / 1000))

    def _refill_wait(self, free: int) -> float:
        """How long to wait before popping into `free` slots: while none is free, until one
        is; while fewer than a refill batch are, until REFILL_WAIT after the first was freed."""
        if free <= 0:
            return MAX_SLEEP
        if free >= self._refill_batch or self._freed_at is None:
            return 0.0
        return REFILL_WAIT - (asyncio.get_running_loop().time() - self._freed_at)

    async def _store_available(self) -> bool:
        """After a MongoDB error, claiming waits for a ping: while MongoDB is unreachable the
        queue is left untouched instead of being drained into failed claims."""
        try:
            with pymongo.timeout(PING_TIMEOUT_SECONDS):  # a deadline, not a cancellation
                await self._rt.store.ping()
        except (PyMongoError, TimeoutError, OSError) as exc:
            log.warning("store_unavailable", error=type(exc).__name__)
            return False
        self._store_suspect = False
        return True

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), min(seconds, MAX_SLEEP))

    async def _claim(self, job_ids: list[str]) -> None:
        """Claim a popped batch together, then run each job it won on a task of its own."""
        for job_id, work in await self._publisher.claim(job_ids):
            self._start(work, [job_id])

    def _start(self, work: Coroutine[Any, Any, None], job_ids: list[str]) -> None:
        task = asyncio.create_task(self._guarded(work, job_ids), name=f"job {job_ids[0]}")
        self._in_flight[task] = len(job_ids)
        JOBS_IN_FLIGHT.set(self._busy())
        task.add_done_callback(self._finished)

    def _busy(self) -> int:
        return sum(self._in_flight.values())

    def _finished(self, task: asyncio.Task[None]) -> None:
        del self._in_flight[task]
        if self._freed_at is None:
            self._freed_at = asyncio.get_running_loop().time()
        JOBS_IN_FLIGHT.set(self._busy())
        self._wake.set()

    async def _guarded(self, work: Coroutine[Any, Any, None], job_ids: list[str]) -> None:
        """A failure here leaves the jobs to the lease expiry and the recovery sweep."""
        job_id = job_ids[0] if len(job_ids) == 1 else None
        try:
            await work
        except PyMongoError as exc:
            self._store_suspect = True
            log.warning("job_interrupted", job_id=job_id, jobs=len(job_ids),
                        error=type(exc).__name__)
        except REDIS_ERRORS as exc:
            log.warning("job_interrupted", job_id=job_id, jobs=len(job_ids),
                        error=type(exc).__name__)
        except Exception:
            log.exception("job_crashed", job_id=job_id, jobs=len(job_ids))

    async def _listen(self) -> None:
        """Wake the loop on every staging message; resubscribe after Redis comes back."""
        while True:
            pubsub: PubSub = self._rt.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._rt.keys.wake)
                async for _message in pubsub.listen():
                    self._wake.set()
            except REDIS_ERRORS:
                await asyncio.sleep(ERROR_BACKOFF)
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped upstream

    async def drain(self, grace_seconds: float) -> None:
        """Stop popping and give in-flight jobs up to `grace_seconds` to finish."""
        self._stopping = True
        self._wake.set()
        deadline = asyncio.get_running_loop().time() + grace_seconds
        # A claim finishing meanwhile starts its jobs' tasks: wait for those too.
        while self._in_flight:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            await asyncio.wait(set(self._in_flight), timeout=left)
