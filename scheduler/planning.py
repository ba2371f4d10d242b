"""Turning posts into jobs: one job per (post, account, occurrence), inserted idempotently."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import UpdateOne

from scheduler.cron import occurrences
from shared.metrics import JOBS
from shared.models import ContentState, JobState, generate_ahead, generates, new_id
from shared.runtime import Runtime
from shared.store import Doc

#: How far back a recurring post looks for occurrences it has not materialised yet.
MAX_CATCH_UP = timedelta(days=7)


def new_job(post: Doc, account: Doc, scheduled_for: datetime, state: JobState, now: datetime,
            reason: str) -> Doc:
    return {
        "_id": new_id(),
        "post_id": post["_id"],
        "account_id": account["_id"],
        "platform": account["platform"],
        "scheduled_for": scheduled_for,
        "due_at": scheduled_for,
        "state": str(state),
        "priority": post.get("priority", "normal"),
        "attempts": [],
        "attempt_count": 0,
        "lease_seq": 0,
        "lease": None,
        "result": None,
        "next_attempt_at": None,
        "created_at": now,
        "updated_at": now,
        "transitions": [{"state": str(state), "at": now, "node": None, "reason": reason}],
        **_generation_fields(post, scheduled_for),
    }


def _generation_fields(post: Doc, scheduled_for: datetime) -> Doc:
    """A job whose content is generated waits for it (`content_state`), from `generate_at`."""
    if not generates(post):
        return {}
    return {"content_state": str(ContentState.PENDING),
            "generate_at": scheduled_for - generate_ahead(post)}


def fire_times(post: Doc, until: datetime) -> list[datetime]:
    """Occurrences of the post not materialised yet, up to `until`; a post whose content is
    generated looks further, by its `generate_ahead_seconds`, so that each occurrence's job
    exists when its generation is due."""
    schedule: dict[str, Any] = post["schedule"]
    until += generate_ahead(post)
    if "at" in schedule:
        return [] if post.get("materialised_until") else [schedule["at"]]
    after = post.get("materialised_until") or post["created_at"] - timedelta(microseconds=1)
    after = max(after, until - MAX_CATCH_UP - timedelta(days=1))
    return list(
        occurrences(schedule["cron"], schedule.get("timezone", "UTC"), after, until,
                    start_at=schedule.get("start_at"), end_at=schedule.get("end_at"))
    )


def planned_jobs(post: Doc, accounts: list[Doc], times: list[datetime],
                 now: datetime) -> list[Doc]:
    """The post's jobs at `times` (its occurrences not materialised yet, `fire_times`).

    Of several occurrences already past (a recurring post whose scheduler was down), only the
    latest is created runnable; the rest are recorded `missed` at once (coalescing, DESIGN §3).
    """
    past = [t for t in times if t <= now]
    latest_past = past[-1] if past else None
    jobs: list[Doc] = []
    for account in accounts:
        for when in times:
            coalesced = post["recurring"] and when < now and when != latest_past
            state = JobState.MISSED if coalesced else JobState.PENDING
            jobs.append(new_job(post, account, when, state, now,
                                "coalesced" if coalesced else "materialised"))
    return jobs


def marker_update(post: Doc, times: list[datetime], until: datetime) -> Doc | None:
    """How far the post is materialised once its jobs at `times` are in; None if unchanged."""
    if post["recurring"]:
        return {"$max": {"materialised_until": until + generate_ahead(post)}}
    if times:
        return {"$set": {"materialised_until": times[0]}}
    return None


def _count_missed(jobs: list[Doc]) -> None:
    missed = sum(1 for j in jobs if j["state"] == JobState.MISSED)
    if missed:
        JOBS.labels(outcome="missed").inc(missed)


async def materialise(rt: Runtime, post: Doc, accounts: list[Doc], until: datetime) -> list[Doc]:
    """Insert the post's jobs up to `until` and return those newly created (an occurrence
    materialised before is left alone: one job per occurrence is a unique index)."""
    times = fire_times(post, until)
    jobs = planned_jobs(post, accounts, times, rt.clock.now_dt())
    created = [job for job in jobs if await rt.store.insert_job(job)]
    _count_missed(created)
    # The marker moves only after the inserts: a crash in between re-inserts, harmlessly.
    update = marker_update(post, times, until)
    if update is not None:
        await rt.store.posts.update_one({"_id": post["_id"]}, update)
    return created


def plan_new(rt: Runtime, plans: list[tuple[Doc, list[Doc]]],
             until: datetime) -> tuple[list[Doc], list[UpdateOne]]:
    """The first jobs of posts about to be inserted, and the markers of the recurring ones.

    A one-off post's marker goes into the post itself: nothing materialises a one-off post
    again after its creation (the window check and the sweeps look at recurring posts), so
    the marker written with it loses nothing that a crash between the two inserts would not,
    and saves a write per post. A recurring post's marker still moves only after its jobs are
    in (`insert_new`), since the window check fills in what a crash left out. Jobs due by
    `until` (the horizon) are planned `staged` already, which saves staging them with a
    second write; the caller queues them (the record first, then Redis, as always)."""
    now = rt.clock.now_dt()
    jobs: list[Doc] = []
    markers: list[UpdateOne] = []
    for post, accounts in plans:
        times = fire_times(post, until)
        jobs += planned_jobs(post, accounts, times, now)
        update = marker_update(post, times, until)
        if update is None:
            continue
        if post["recurring"]:
            markers.append(UpdateOne({"_id": post["_id"]}, update))
        else:
            post.update(update["$set"])
    for job in jobs:
        if job["state"] == JobState.PENDING and job["due_at"] <= until:
            job["state"] = str(JobState.STAGED)
            job["transitions"].append({"state": str(JobState.STAGED), "at": now,
                                       "node": rt.settings.node_id, "reason": "api"})
    return jobs, markers


async def insert_new(rt: Runtime, jobs: list[Doc], markers: list[UpdateOne]) -> None:
    """`plan_new`'s jobs in one `insert_many` (a new post has no job yet, so none can
    collide), then its markers in one `bulk_write`."""
    if jobs:
        await rt.store.jobs.insert_many(jobs, ordered=False)
        _count_missed(jobs)
    if markers:
        await rt.store.posts.bulk_write(markers, ordered=False)
