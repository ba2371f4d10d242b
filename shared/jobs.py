"""Job transitions with their side effects: each successful transition is announced on the
live event channel, and staging keeps MongoDB (the record) ahead of Redis (the copy)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.due_queue import DueQueue
from shared.keys import Keys
from shared.logging import get_logger
from shared.metrics import JOBS_STAGED
from shared.models import JobState, Priority
from shared.store import Doc, Store

log = get_logger(__name__)

STAGEABLE = (JobState.PENDING, JobState.STAGED, JobState.RETRY_WAIT)


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class JobBook:
    def __init__(self, store: Store, redis: Redis, keys: Keys, queue: DueQueue, node_id: str):
        self.store = store
        self.queue = queue
        self._redis = redis
        self._keys = keys
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

    async def announce(self, doc: Doc, reason: str) -> None:
        """Best effort: live events are a view, losing one loses nothing."""
        event = {
            "job_id": doc["_id"],
            "post_id": doc["post_id"],
            "account_id": doc["account_id"],
            "state": doc["state"],
            "reason": reason,
            "node_id": self.node_id,
            "at": iso(self.store.now()),
        }
        try:
            await self._redis.publish(self._keys.events, json.dumps(event))
        except RedisError:
            log.debug("event_not_published", job_id=doc["_id"])

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
