"""The job locks and leases an executor holds, kept alive together.

A run holds two things that expire: its job's Redis lock and its claim's MongoDB lease. Each
was renewed by a task of its own, two tasks and their timers per job; under a burst those were
a large share of an executor's work. One task per executor renews them all every ttl/3 instead:
the locks in one script call, the leases in one unordered `bulk_write`, each still fenced on its
own `lease_seq`, so a lease another node took is never pushed forward. The two are renewed
apart: while MongoDB is away a lease write waits up to its server selection timeout, longer
than a short lock ttl, and the locks must not lapse waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta

from pymongo import UpdateOne

from shared.locks import RenewedLock
from shared.logging import get_logger
from shared.runtime import Runtime
from shared.store import Doc

log = get_logger(__name__)


@dataclass(frozen=True, eq=False)
class Held:
    """One run's job and lock; compared by identity, so two runs never share an entry."""

    job: Doc
    lock: RenewedLock


class LeaseKeeper:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._held: set[Held] = set()
        self._task: asyncio.Task[None] | None = None
        #: The lease write in flight; a tick that finds one still waiting for MongoDB skips its
        #: own (the next one writes the later expiry).
        self._lease_write: asyncio.Task[None] | None = None
        #: Set when the last run drops its entry: the keeper ends then, not a period later.
        self._idle = asyncio.Event()

    def keep(self, job: Doc, lock: RenewedLock) -> Held:
        """Renew `job`'s lease and `lock` until the returned entry is dropped."""
        held = Held(job, lock)
        self._held.add(held)
        self._idle.clear()
        if self._task is None:
            self._task = asyncio.create_task(self._renew_while_held(), name="lease keeper")
        return held

    def drop(self, held: Held) -> None:
        self._held.discard(held)
        if not self._held:
            self._idle.set()

    async def _renew_while_held(self) -> None:
        """Ends as soon as nothing is held (`keep` starts it again); a lease write still in
        flight then ends on its own within the store's timeouts. Nothing here is cancelled
        mid-write: a cancelled pymongo call can wedge the client."""
        period = self._rt.settings.lease_ttl_seconds / 3
        try:
            while self._held:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(period):
                        await self._idle.wait()
                held = list(self._held)
                if not held:
                    continue
                if self._lease_write is None or self._lease_write.done():
                    self._lease_write = asyncio.create_task(
                        self._renew_leases([h.job for h in held]), name="lease renewal")
                try:
                    await RenewedLock.renew_all(self._rt.scripts, [h.lock for h in held])
                except Exception:
                    # A lock whose renewal failed was given up as lost; keep renewing the others.
                    log.exception("lock_renewal_failed", held=len(held))
        finally:
            self._task = None

    async def _renew_leases(self, jobs: list[Doc]) -> None:
        """A lease that matches nothing was lost; its run finds out at its next fenced write."""
        expires = self._rt.clock.now_dt() + timedelta(
            seconds=self._rt.settings.lease_ttl_seconds)
        try:
            await self._rt.store.jobs.bulk_write(
                [UpdateOne({"_id": job["_id"], "lease_seq": job["lease_seq"]},
                           {"$set": {"lease.expires_at": expires}}) for job in jobs],
                ordered=False)
        except Exception as exc:
            log.warning("lease_renewal_failed", error=type(exc).__name__, jobs=len(jobs))
