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
        self._in_flight: set[asyncio.Task[None]] = set()
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
        free = self._concurrency - len(self._in_flight)
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
        for job_id in popped.job_ids:
            self._start(self._publisher.run(job_id), job_id)
        for job_id in popped.generations:
            self._start(self._generator.run(job_id), job_id)
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

    def _start(self, work: Coroutine[Any, Any, None], job_id: str) -> None:
        task = asyncio.create_task(self._guarded(work, job_id), name=f"job {job_id}")
        self._in_flight.add(task)
        JOBS_IN_FLIGHT.set(len(self._in_flight))
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._freed_at is None:
            self._freed_at = asyncio.get_running_loop().time()
        JOBS_IN_FLIGHT.set(len(self._in_flight))
        self._wake.set()

    async def _guarded(self, work: Coroutine[Any, Any, None], job_id: str) -> None:
        """A failure here leaves the job to the lease expiry and the recovery sweep."""
        try:
            await work
        except PyMongoError as exc:
            self._store_suspect = True
            log.warning("job_interrupted", job_id=job_id, error=type(exc).__name__)
        except REDIS_ERRORS as exc:
            log.warning("job_interrupted", job_id=job_id, error=type(exc).__name__)
        except Exception:
            log.exception("job_crashed", job_id=job_id)

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
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=grace_seconds)
