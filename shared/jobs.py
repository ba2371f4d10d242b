"""Job transitions with their side effects: each successful transition is announced on the
live event channel, and staging keeps MongoDB (the record) ahead of Redis (the copy)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from redis.asyncio import Redis

from shared.due_queue import DueQueue
from shared.events import EventFeed
from shared.metrics import JOBS_STAGED
from shared.models import JobState, Priority
from shared.store import Doc, Store

STAGEABLE = (JobState.PENDING, JobState.STAGED, JobState.RETRY_WAIT)
#: What a claimed batch's read-back leaves out: a job's history, which no run reads and which
#: grows with every transition (each entry's time costs its decoding about a microsecond).
UNREAD_JOB_FIELDS = {"transitions": 0}


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class FencedMove:
    """One job's transition filtered on its lease's fencing token (DESIGN §5), to be written
    with others in one `bulk_write`."""

    job: Doc
    fence: int
    expect: tuple[JobState, ...]
    to: JobState
    reason: str
    set_fields: Mapping[str, Any] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    inc: Mapping[str, int] | None = None
    push: Mapping[str, Any] | None = None


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

    async def claim_many(self, job_ids: list[str], *, expect: Iterable[JobState],
                         lease: Doc, due_before: datetime) -> dict[str, Doc]:
        """Claim a batch in two round trips: one conditional `update_many` that stamps the
        batch's token into each lease and `$inc`s `lease_seq`, and one read-back by that token
        (without the jobs' `transitions`), which says what was won and each job's fencing
        token. Jobs another node took, or no longer claimable, are simply absent from the
        answer."""
        if not job_ids:
            return {}
        token = uuid.uuid4().hex
        query, update = self.store.transition_ops(
            {"$in": job_ids}, expect=expect, to=JobState.RUNNING, node_id=self.node_id,
            reason="claimed", extra_filter={"due_at": {"$lte": due_before}},
            set_fields={"lease": {**lease, "token": token}, "claimed_at": self.store.now()},
            unset=["waiting_on"], inc={"lease_seq": 1})
        await self.store.jobs.update_many(query, update)
        won = {doc["_id"]: doc async for doc in self.store.jobs.find(
            {"_id": {"$in": job_ids}, "lease.token": token}, projection=UNREAD_JOB_FIELDS)}
        at = iso(self.store.now())
        for doc in won.values():
            await self.announce(doc, "claimed", at)
        return won

    async def move_many(self, moves: list[FencedMove]) -> list[bool]:
        """Write a batch of fenced transitions as one unordered `bulk_write` of `update_one`s,
        each filtered on its own job's `lease_seq`. When fewer match than were sent, one read
        by the batch's write token says which: the others lost their lease."""
        if not moves:
            return []
        token = uuid.uuid4().hex
        ops = []
        for move in moves:
            query, update = self.store.transition_ops(
                move.job["_id"], expect=move.expect, to=move.to, node_id=self.node_id,
                reason=move.reason, fence=move.fence,
                set_fields={**move.set_fields, "write_token": token}, unset=move.unset,
                inc=move.inc, push=move.push)
            ops.append(UpdateOne(query, update))
        result = await self.store.jobs.bulk_write(ops, ordered=False)
        if result.matched_count == len(moves):
            written = [True] * len(moves)
        else:
            done = {doc["_id"] async for doc in self.store.jobs.find(
                {"_id": {"$in": [m.job["_id"] for m in moves]}, "write_token": token},
                projection={"_id": 1})}
            written = [m.job["_id"] in done for m in moves]
        at = iso(self.store.now())
        for move, ok in zip(moves, written, strict=True):
            if ok:
                await self.announce({**move.job, "state": str(move.to)}, move.reason, at)
        return written

    def _event(self, doc: Doc, reason: str, at: str) -> dict[str, Any]:
        return {
            "job_id": doc["_id"],
            "post_id": doc["post_id"],
            "account_id": doc["account_id"],
            "state": doc["state"],
            "reason": reason,
            "node_id": self.node_id,
            "at": at,
        }

    async def announce(self, doc: Doc, reason: str, at: str | None = None) -> None:
        """`at`: the time of the change, when a batch's changes share one (its write's)."""
        self.events.emit(self._event(doc, reason, at or iso(self.store.now())))

    async def stage_many(self, docs: list[Doc], *, source: str, epoch: int | None = None) -> int:
        """Stage a batch in two round trips instead of three per job: one conditional
        update_many (and a read-back of what it moved, when it did not move them all), one
        script call per lane for the queue entries, then the events.
        Same order as `stage`: the record first, then Redis."""
        pending = [d["_id"] for d in docs if d["state"] == JobState.PENDING]
        moved: set[str] = set()
        if pending:
            now = self.store.now()
            fields: Doc = {"state": str(JobState.STAGED), "updated_at": now}
            if epoch is not None:
                fields["staged_epoch"] = epoch
            written = await self.store.jobs.update_many(
                {"_id": {"$in": pending}, "state": str(JobState.PENDING)},
                {"$set": fields, "$push": {"transitions": {
                    "state": str(JobState.STAGED), "at": now, "node": self.node_id,
                    "reason": source}}},
            )
            # Read back which moved only when some did not (another node moved them first).
            moved = set(pending) if written.matched_count == len(pending) else {
                d["_id"] async for d in self.store.jobs.find(
                    {"_id": {"$in": pending}, "state": str(JobState.STAGED)},
                    projection={"_id": 1})}
        ready = [d for d in docs if d["_id"] in moved or d["state"] in (
            JobState.STAGED, JobState.RETRY_WAIT)]
        if not ready:
            return 0
        await self.queue.stage_many(
            (doc["_id"], doc["due_at"], doc.get("priority", Priority.NORMAL)) for doc in ready)
        at = iso(self.store.now())
        for doc in ready:
            if doc["_id"] in moved:
                await self.announce({**doc, "state": str(JobState.STAGED)}, source, at)
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
