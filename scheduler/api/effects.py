"""What an edit through the API does to jobs.

Jobs due within the horizon are staged at once, so a post five minutes out does not wait for
the next window check (DESIGN §4). Jobs an edit made obsolete are cancelled or, when they never
ran, deleted. Every job write is conditional on the state it leaves: a job an executor claimed
in the meantime is left to the executor, which re-reads the post before publishing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from scheduler.planning import materialise
from shared.models import WAITING_STATES, JobState, Priority
from shared.runtime import Runtime
from shared.store import Doc

#: States the API may cancel a job from: not started, or started with an unknown outcome that
#: the operator decides not to pursue.
CANCELLABLE = WAITING_STATES | {JobState.UNCONFIRMED}
_WAITING = [str(s) for s in WAITING_STATES]


def horizon(rt: Runtime) -> datetime:
    return rt.clock.now_dt() + timedelta(seconds=rt.settings.horizon_seconds)


async def stage_due(rt: Runtime, jobs: Iterable[Doc]) -> list[Doc]:
    """Stage the waiting jobs among `jobs` that are due within the horizon; returns `jobs` as
    they are now (a job that lost a race to an executor keeps its old copy)."""
    until = horizon(rt)
    current: list[Doc] = []
    for job in jobs:
        if job["state"] not in WAITING_STATES or job["due_at"] > until:
            current.append(job)
        elif job["state"] == JobState.STAGED:
            await rt.queue.stage(job["_id"], job["due_at"], job.get("priority", Priority.NORMAL))
            current.append(job)
        else:
            current.append(await rt.jobs.stage(job, source="api") or job)
    return current


async def plan(rt: Runtime, post: Doc, accounts: list[Doc] | None = None) -> list[Doc]:
    """Materialise the post's occurrences up to the horizon for its active accounts (looked up
    unless given), and stage the new runnable ones; returns the new jobs as they are now."""
    if accounts is None:
        accounts = await rt.store.accounts.find(
            {"_id": {"$in": post["account_ids"]},
             "status": {"$in": ["active", "reauth_required"]}}
        ).to_list()
    created = await materialise(rt, post, accounts, until=horizon(rt))
    return await stage_due(rt, created)


async def stage_new(rt: Runtime, jobs: list[Doc]) -> None:
    """Stage the runnable jobs among those just created that are due within the horizon, in
    one conditional update and one pipeline (`JobBook.stage_many`); the docs are updated to
    what was stored, since nothing else can have moved a job nobody has seen yet."""
    until = horizon(rt)
    due = [job for job in jobs if job["state"] == JobState.PENDING and job["due_at"] <= until]
    if due:
        await rt.jobs.stage_many(due, source="api")
        for job in due:
            job["state"] = str(JobState.STAGED)


async def restage(rt: Runtime, post_id: str) -> None:
    """Put a resumed post's waiting jobs back in the due queue."""
    jobs = await rt.store.jobs.find(
        {"post_id": post_id, "state": {"$in": _WAITING}, "due_at": {"$lte": horizon(rt)}}
    ).to_list()
    await stage_due(rt, jobs)


async def resume_account(rt: Runtime, account_id: str) -> int:
    """Queue at once the jobs that were waiting for this account to be reconnected, patched
    or re-enabled; returns how many."""
    return await _requeue_waiting(rt, {"account_id": account_id}, "account", "account usable again")


async def resume_publishing(rt: Runtime) -> int:
    """Queue at once the jobs an executor parked while publishing was paused; returns how many."""
    return await _requeue_waiting(rt, {}, "pause", "publishing resumed")


async def _requeue_waiting(rt: Runtime, match: Doc, waiting_on: str, reason: str) -> int:
    """Stage now the `retry_wait` jobs matching `match` that wait on `waiting_on`."""
    now = rt.clock.now_dt()
    waiting = await rt.store.jobs.find(
        {**match, "state": str(JobState.RETRY_WAIT), "waiting_on": waiting_on}, {"_id": 1},
    ).to_list()
    resumed = 0
    for job in waiting:
        doc = await rt.jobs.transition(
            job["_id"], expect=[JobState.RETRY_WAIT], to=JobState.STAGED,
            reason=reason, extra_filter={"waiting_on": waiting_on},
            set_fields={"due_at": now, "next_attempt_at": None}, unset=["waiting_on"],
        )
        if doc is not None:
            await rt.queue.stage(doc["_id"], now, doc.get("priority", Priority.NORMAL))
            resumed += 1
    return resumed


async def cancel(rt: Runtime, job_id: str, reason: str) -> Doc | None:
    """Cancel one job; None when it is no longer cancellable (an executor got there first)."""
    done = await rt.jobs.transition(job_id, expect=CANCELLABLE, to=JobState.CANCELLED,
                                    reason=reason)
    if done is not None:
        await rt.queue.remove(job_id)
    return done


async def cancel_all(rt: Runtime, query: Doc, reason: str) -> None:
    """Cancel every cancellable job matching `query`."""
    states = [str(s) for s in CANCELLABLE]
    jobs = await rt.store.jobs.find({**query, "state": {"$in": states}}, {"_id": 1}).to_list()
    for job in jobs:
        await cancel(rt, job["_id"], reason)


async def drop_unstarted(rt: Runtime, post_id: str) -> None:
    """Before a post is rescheduled: delete its waiting jobs that never ran, so the new schedule
    may reuse their occurrence (one job per occurrence is a unique index), and cancel the
    waiting ones with attempts behind them, keeping their history."""
    jobs = await rt.store.jobs.find({"post_id": post_id, "state": {"$in": _WAITING}}).to_list()
    for job in jobs:
        if job["state"] != JobState.RETRY_WAIT and not job.get("attempts"):
            deleted = await rt.store.jobs.delete_one({
                "_id": job["_id"],
                "state": {"$in": [str(JobState.PENDING), str(JobState.STAGED)]},
                "attempts": {"$size": 0},
            })
            if deleted.deleted_count:
                await rt.queue.remove(job["_id"])
        else:
            await cancel(rt, job["_id"], "rescheduled")


async def reprioritise(rt: Runtime, post_id: str, priority: Priority) -> None:
    """Move the post's waiting jobs to the new priority, and to its lane if they are queued."""
    await rt.store.jobs.update_many(
        {"post_id": post_id, "state": {"$in": _WAITING}},
        {"$set": {"priority": str(priority), "updated_at": rt.clock.now_dt()}},
    )
    jobs = await rt.store.jobs.find(
        {"post_id": post_id, "state": {"$in": _WAITING}}, {"due_at": 1}
    ).to_list()
    queued = await rt.queue.contains([job["_id"] for job in jobs])
    for job in jobs:
        if job["_id"] in queued:
            await rt.queue.remove(job["_id"])
            await rt.queue.stage(job["_id"], job["due_at"], priority)
