"""Job transitions with their side effects: each successful transition is announced on the
live event channel, and staging keeps MongoDB (the record) ahead of Redis (the copy)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from shared.due_queue import DueQueue
from shared.events import EventFeed
from shared.metrics import JOBS_STAGED
from shared.models import JobState, Priority
from shared.store import Doc, Store

STAGEABLE = (JobState.PENDING, JobState.STAGED, JobState.RETRY_WAIT)


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class JobBook:
    def __init__(self, store: Store, redis: Redis, queue: DueQueue, events: EventFeed,
                 node_id: str):
        self.store = store
        self.queue = queue
        self.events = events
        self._redis = redis
        self.node_id = node_id

    async def transition(
        self, job_id: str, *, expect: Iterable[JobState], to: JobState, reason: str, **kw: Any
    ) -> Doc | None:
        doc = await self.store.transition(
            job_id, expect=expect, to=to, node_id=self.node_id, reason=reason, **kw
        )
        if doc is not None:
            await self.announce(doc, reason)
        return doc

    def _event(self, doc: Doc, reason: str) -> dict[str, Any]:
        return {
            "job_id": doc["_id"],
            "post_id": doc["post_id"],
            "account_id": doc["account_id"],
            "state": doc["state"],
            "reason": reason,
            "node_id": self.node_id,
            "at": iso(self.store.now()),
        }

    async def announce(self, doc: Doc, reason: str) -> None:
        self.events.emit(self._event(doc, reason))

    async def stage_many(self, docs: list[Doc], *, source: str, epoch: int | None = None) -> int:
        """Stage a batch in three round trips instead of three per job: one conditional
        update_many, one read-back of what it moved, one pipeline of queue entries and events.
        Same order as `stage`: the record first, then Redis."""
        pending = [d["_id"] for d in docs if d["state"] == JobState.PENDING]
        if pending:
            now = self.store.now()
            fields: Doc = {"state": str(JobState.STAGED), "updated_at": now}
            if epoch is not None:
                fields["staged_epoch"] = epoch
            await self.store.jobs.update_many(
                {"_id": {"$in": pending}, "state": str(JobState.PENDING)},
                {"$set": fields, "$push": {"transitions": {
                    "state": str(JobState.STAGED), "at": now, "node": self.node_id,
                    "reason": source}}},
            )
        moved = {
            d["_id"] async for d in self.store.jobs.find(
                {"_id": {"$in": pending}, "state": str(JobState.STAGED)}, projection={"_id": 1})
        } if pending else set()
        ready = [d for d in docs if d["_id"] in moved or d["state"] in (
            JobState.STAGED, JobState.RETRY_WAIT)]
        if not ready:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for doc in ready:
                await self.queue.stage(doc["_id"], doc["due_at"],
                                       doc.get("priority", Priority.NORMAL), client=pipe)
            await pipe.execute()
        for doc in ready:
            if doc["_id"] in moved:
                self.events.emit(self._event({**doc, "state": str(JobState.STAGED)}, source))
        JOBS_STAGED.labels(source=source).inc(len(ready))
        return len(ready)

    async def stage(self, doc: Doc, *, source: str, epoch: int | None = None) -> Doc | None:
        """Mark the job staged in MongoDB, then add it to the due queue.

        A crash between the two leaves a staged job absent from Redis, which the light sweep
        re-stages; the reverse order could leave a queue entry for a job the record never staged.
        Retry-waiting jobs keep their state (the claim accepts them) and are only queued. The
        leader passes its epoch, recorded on the job, so a deposed leader's staging is traceable.
        """
        state = JobState(doc["state"])
        if state not in STAGEABLE:
            return None
        if state == JobState.PENDING:
            staged = await self.transition(
                doc["_id"], expect=[JobState.PENDING], to=JobState.STAGED, reason=source,
                set_fields={"staged_epoch": epoch} if epoch is not None else None,
            )
            if staged is None:
                return None
            doc = staged
        await self.queue.stage(doc["_id"], doc["due_at"], doc.get("priority", Priority.NORMAL))
        JOBS_STAGED.labels(source=source).inc()
        return doc
