"""Verification sweeps (DESIGN §7), each under a cluster-wide lock, each leaving a report.

Light: waiting jobs due but absent from the due queue are queued again; `running` jobs whose
lease expired before the `publishing` mark go back to waiting (nothing was sent); `publishing`
jobs whose lease expired are reconciled. Full: the same over every due time, plus queue entries
of finished jobs removed, recurring posts without a future job re-materialised, and jobs stuck
for more than a day reported.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

from executor.publish import Publisher
from recovery.reconcile import reconcile
from scheduler.planning import materialise
from shared.keys import LANES
from shared.logging import get_logger
from shared.metrics import SWEEP_DURATION, SWEEP_LAST_SUCCESS, SWEEP_REPAIRS
from shared.models import TERMINAL_STATES, ContentState, JobState, PostStatus, new_id
from shared.runtime import Runtime
from shared.staging import stage_due
from shared.store import Doc

log = get_logger(__name__)

STUCK_AFTER = timedelta(hours=24)
SCAN_BATCH = 1000


class Sweeper:
    def __init__(self, rt: Runtime, publisher: Publisher) -> None:
        self._rt = rt
        self._publisher = publisher

    async def sweep(self, kind: str, report: Doc | None = None) -> Doc:
        """Run a sweep and record its report: a new one, or the requested `report`."""
        rt = self._rt
        started = time.monotonic()
        report = {**(report or {"_id": new_id()}), "kind": kind,
                  "node_id": rt.settings.node_id, "started_at": rt.clock.now_dt(),
                  "status": "running", "repairs": {}}
        await rt.store.sweeps.replace_one({"_id": report["_id"]}, report, upsert=True)
        repairs: Counter[str] = Counter()
        stuck: list[str] = []
        try:
            await self._light(repairs, full=kind == "full")
            if kind == "full":
                await self._full(repairs, stuck)
        except Exception as exc:
            report.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            raise
        else:
            report["status"] = "succeeded"
            SWEEP_LAST_SUCCESS.labels(kind=kind).set(time.time())
        finally:
            duration = time.monotonic() - started
            SWEEP_DURATION.labels(kind=kind).observe(duration)
            for reason, count in repairs.items():
                SWEEP_REPAIRS.labels(reason=reason).inc(count)
            report.update(finished_at=rt.clock.now_dt(), duration_seconds=round(duration, 3),
                          repairs=dict(repairs), stuck_jobs=stuck[:100])
            await rt.store.sweeps.replace_one({"_id": report["_id"]}, report, upsert=True)
            log.info("sweep_finished", kind=kind, status=report["status"],
                     repairs=dict(repairs), duration_seconds=round(duration, 3))
        return report

    async def _light(self, repairs: Counter[str], *, full: bool) -> None:
        rt = self._rt
        now = rt.clock.now_dt()
        until = now + timedelta(seconds=rt.settings.horizon_seconds) if full else now
        requeued = await stage_due(rt, until, source="sweep")
        if requeued:
            repairs["not_queued"] += requeued
        expired = rt.store.jobs.find(
            {"state": {"$in": [str(JobState.RUNNING), str(JobState.PUBLISHING)]},
             "lease.expires_at": {"$lt": now}},
            batch_size=SCAN_BATCH,
        )
        async for job in expired:
            if job["state"] == JobState.RUNNING:
                doc = await rt.jobs.transition(
                    job["_id"], expect=[JobState.RUNNING], to=JobState.STAGED,
                    fence=job["lease_seq"], reason="lease expired before publishing",
                    unset=["lease"],
                )
                if doc is not None:
                    await rt.queue.stage(doc["_id"], doc["due_at"], doc.get("priority", "normal"))
                    if doc.get("content_state") == ContentState.PENDING:
                        # A generation whose executor died: generated again at once.
                        await rt.queue.stage_generation(doc["_id"], now)
                    repairs["running_lease_expired"] += 1
            else:
                repairs[await reconcile(rt, self._publisher, job)] += 1

    async def _full(self, repairs: Counter[str], stuck: list[str]) -> None:
        rt = self._rt
        now = rt.clock.now_dt()
        removed = await self._remove_finished_entries()
        if removed:
            repairs["queue_entry_finished"] += removed
        async for post in rt.store.posts.find(
            {"status": str(PostStatus.SCHEDULED), "recurring": True}, batch_size=SCAN_BATCH
        ):
            future = await rt.store.jobs.find_one(
                {"post_id": post["_id"], "scheduled_for": {"$gt": now}}, projection={"_id": 1}
            )
            if future is not None:
                continue
            accounts = [a async for a in rt.store.accounts.find(
                {"_id": {"$in": post["account_ids"]}})]
            horizon = now + timedelta(seconds=rt.settings.horizon_seconds)
            if await materialise(rt, post, accounts, horizon):
                repairs["recurring_rematerialised"] += 1
        unfinished = [str(s) for s in JobState if s not in TERMINAL_STATES]
        async for job in rt.store.jobs.find(
            {"state": {"$in": unfinished}, "due_at": {"$lt": now - STUCK_AFTER}},
            projection={"_id": 1}, batch_size=SCAN_BATCH,
        ):
            stuck.append(job["_id"])
        if stuck:
            repairs["stuck_reported"] += len(stuck)

    async def _remove_finished_entries(self) -> int:
        """Queue entries whose job already finished: harmless, but they inflate the gauges."""
        rt = self._rt
        removed = 0
        for lane in LANES:
            key = rt.keys.lane(lane)
            cursor = 0
            while True:
                cursor, entries = await rt.redis.zscan(key, cursor, count=SCAN_BATCH)
                ids = [m.decode() if isinstance(m, bytes) else str(m) for m, _ in entries]
                if ids:
                    finished = [
                        d["_id"] async for d in rt.store.jobs.find(
                            {"_id": {"$in": ids},
                             "state": {"$in": [str(s) for s in TERMINAL_STATES]}},
                            projection={"_id": 1})
                    ]
                    if finished:
                        removed += await rt.redis.zrem(key, *finished)
                if cursor == 0:
                    break
        return removed
