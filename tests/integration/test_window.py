"""The window check: cron materialisation up to the horizon, staging, coalescing, and
rebuilding the due queue from the record after Redis lost it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.window import window_check
from shared import staging
from shared.models import Content, JobState, new_id
from shared.runtime import Runtime
from shared.staging import stage_due
from shared.store import Doc


async def cron_post(rt: Runtime, *, age: timedelta = timedelta(0), status: str = "scheduled",
                    expression: str = "* * * * *") -> Doc:
    account = {"_id": new_id(), "platform": "webhook", "name": "hook",
               "config": {"url": "http://127.0.0.1:9/h"},
               "credentials_enc": rt.box.seal({"secret": "s"}), "status": "active"}
    await rt.store.accounts.insert_one(account)
    now = rt.clock.now_dt()
    post = {"_id": new_id(), "account_ids": [account["_id"]],
            "content": Content(text="tick").model_dump(mode="json"),
            "schedule": {"cron": expression, "timezone": "Europe/Berlin"}, "recurring": True,
            "priority": "normal", "status": status, "version": 1,
            "misfire_grace_seconds": 3600, "publish_late": False,
            "created_at": now - age, "updated_at": now - age}
    await rt.store.posts.insert_one(post)
    return post


async def jobs_of(rt: Runtime, post: Doc) -> list[Doc]:
    return await rt.store.jobs.find({"post_id": post["_id"]}, sort=[("scheduled_for", 1)]
                                    ).to_list()


async def test_materialises_up_to_horizon_once(runtime: Runtime) -> None:
    post = await cron_post(runtime)
    await window_check(runtime, epoch=1)
    jobs = await jobs_of(runtime, post)
    horizon = runtime.settings.horizon_seconds
    # One job per minute up to the horizon (the next minute boundary is at most 60 s away).
    assert abs(len(jobs) - horizon / 60) <= 1
    assert all(j["state"] == JobState.STAGED and j["staged_epoch"] == 1 for j in jobs)
    assert await runtime.queue.contains([j["_id"] for j in jobs]) == {j["_id"] for j in jobs}
    await window_check(runtime, epoch=1)
    assert len(await jobs_of(runtime, post)) == len(jobs)


async def test_rebuilds_the_queue_after_redis_lost_it(runtime: Runtime) -> None:
    post = await cron_post(runtime)
    await window_check(runtime, epoch=1)
    ids = {j["_id"] for j in await jobs_of(runtime, post)}
    await runtime.redis.delete(*runtime.keys.lanes)
    assert await runtime.queue.contains(list(ids)) == set()
    result = await window_check(runtime, epoch=2)
    assert result["staged"] == len(ids)
    assert await runtime.queue.contains(list(ids)) == ids


async def test_paused_posts_are_not_staged(runtime: Runtime) -> None:
    post = await cron_post(runtime, status="paused")
    await window_check(runtime, epoch=1)
    assert await jobs_of(runtime, post) == []


async def test_missed_occurrences_coalesce_to_the_latest(runtime: Runtime) -> None:
    """A recurring post whose scheduler was away for ten minutes publishes one catch-up."""
    post = await cron_post(runtime, age=timedelta(minutes=10, seconds=30))
    await window_check(runtime, epoch=1)
    now = runtime.clock.now_dt()
    past = [j for j in await jobs_of(runtime, post) if j["scheduled_for"] <= now]
    assert len(past) >= 10
    assert [j["state"] for j in past[:-1]] == [JobState.MISSED] * (len(past) - 1)
    assert past[-1]["state"] == JobState.STAGED
    assert all(j["transitions"][0]["reason"] == "coalesced" for j in past[:-1])


async def test_a_deposed_leader_stops_staging_before_its_next_batch(runtime: Runtime) -> None:
    """Leader work is never cancelled: it asks whether its term holds between batches."""
    post = await cron_post(runtime, expression="0 0 1 1 *")
    now = runtime.clock.now_dt()
    count = staging.BATCH * 2 + 10
    await runtime.store.jobs.insert_many([
        {"_id": new_id(), "post_id": post["_id"], "account_id": post["account_ids"][0],
         "scheduled_for": now + timedelta(milliseconds=100 * i),
         "due_at": now + timedelta(milliseconds=100 * i),
         "priority": "normal", "state": str(JobState.PENDING), "attempts": 0, "transitions": []}
        for i in range(count)
    ])
    asked: list[bool] = []

    def active() -> bool:
        asked.append(True)
        return len(asked) <= 1

    staged = await stage_due(runtime, now + timedelta(hours=1), source="window", active=active)
    assert staged == staging.BATCH and len(asked) == 2
    staged_now = await runtime.store.jobs.count_documents({"state": str(JobState.STAGED)})
    assert staged_now == staging.BATCH
    # The next leader's check stages the rest.
    assert await stage_due(runtime, now + timedelta(hours=1), source="window") == count - staged
    assert await runtime.store.jobs.count_documents({"state": str(JobState.STAGED)}) == count


async def test_schedules_reaching_the_ends_of_the_calendar(runtime: Runtime) -> None:
    """A recurring post may run from the first instant of datetime's calendar to its last, or
    start where it can no longer fire: the window check overflows on neither."""
    spanning = await cron_post(runtime)
    await runtime.store.posts.update_one({"_id": spanning["_id"]}, {"$set": {
        "schedule.start_at": datetime.min.replace(tzinfo=UTC),
        "schedule.end_at": datetime.max.replace(tzinfo=UTC)}})
    late = await cron_post(runtime)
    await runtime.store.posts.update_one({"_id": late["_id"]}, {"$set": {
        "schedule.start_at": datetime(9999, 12, 31, 23, tzinfo=UTC),
        "schedule.timezone": "Pacific/Kiritimati"}})
    await window_check(runtime, epoch=1)
    assert abs(len(await jobs_of(runtime, spanning)) - runtime.settings.horizon_seconds / 60) <= 1
    assert await jobs_of(runtime, late) == []
