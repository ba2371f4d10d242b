"""Making the due queue agree with the record: every waiting job due before a time, whose post
is scheduled, is queued. The window check, the API and the sweeps all rebuild Redis this way,
which is why losing Redis loses nothing (DESIGN §2)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from shared.models import JobState, PostStatus
from shared.runtime import Runtime
from shared.store import Doc

BATCH = 500


def always() -> bool:
    """The `active` of a pass nothing can interrupt."""
    return True


async def stage_due(
    rt: Runtime,
    until: datetime,
    *,
    source: str,
    epoch: int | None = None,
    active: Callable[[], bool] = always,
) -> int:
    """Queue every waiting job due before `until` whose post is scheduled and that is not
    queued already; returns how many were queued. When `active` turns False the pass stops
    before its next batch (that is how a deposed leader stops)."""
    waiting = [str(JobState.PENDING), str(JobState.STAGED), str(JobState.RETRY_WAIT)]
    staged = 0
    batch: list[Doc] = []
    async with rt.store.jobs.find(
        {"state": {"$in": waiting}, "due_at": {"$lte": until}},
        projection={"_id": 1, "post_id": 1, "state": 1, "due_at": 1, "priority": 1,
                    "account_id": 1},
        sort=[("due_at", 1)],
        batch_size=BATCH,
    ) as cursor:
        async for job in cursor:
            batch.append(job)
            if len(batch) >= BATCH:
                if not active():
                    return staged
                staged += await _stage_batch(rt, batch, source, epoch)
                batch = []
    if batch and active():
        staged += await _stage_batch(rt, batch, source, epoch)
    return staged


async def _stage_batch(rt: Runtime, jobs: list[Doc], source: str, epoch: int | None) -> int:
    post_ids = list({j["post_id"] for j in jobs})
    live = {
        p["_id"]
        async for p in rt.store.posts.find(
            {"_id": {"$in": post_ids}, "status": str(PostStatus.SCHEDULED)}, projection={"_id": 1}
        )
    }
    queued = await rt.queue.contains([j["_id"] for j in jobs])
    todo = [j for j in jobs if j["post_id"] in live and j["_id"] not in queued]
    return await rt.jobs.stage_many(todo, source=source, epoch=epoch) if todo else 0
