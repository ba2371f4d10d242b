"""Recovery sweeps and reconciliation against real Redis, the real store and the webhook
emulator: each repair of DESIGN §7, its report, its metrics, and the API that requests sweeps."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from executor.publish import Publisher
from recovery.role import RecoveryRole
from recovery.sweeps import Sweeper
from shared.config import Settings
from shared.metrics import REGISTRY
from shared.models import JobState, new_id
from shared.notify import Notifier
from shared.runtime import Runtime
from shared.store import Doc
from tests.emulators.webhook import WebhookReceiver
from tests.integration.api_support import serve_api
from tests.integration.pipeline_support import make_account, make_post


def sweeper(rt: Runtime) -> Sweeper:
    return Sweeper(rt, Publisher(rt, Notifier(rt.http, None)))


def repairs_metric(reason: str) -> float:
    return REGISTRY.get_sample_value("herald_sweep_repairs_total", {"reason": reason}) or 0.0


async def expire_lease(rt: Runtime, job: Doc, state: JobState) -> Doc:
    """Arrange a job as a crashed node leaves it: claimed (`lease_seq` 1) with a lapsed lease."""
    past = rt.clock.now_dt() - timedelta(seconds=5)
    await rt.store.jobs.update_one({"_id": job["_id"]}, {"$set": {
        "state": str(state), "lease_seq": 1, "claimed_at": past,
        "lease": {"node_id": "dead-node", "token": "t", "expires_at": past}}})
    await rt.queue.remove(job["_id"])
    doc = await rt.store.jobs.find_one({"_id": job["_id"]})
    assert doc is not None
    return doc


async def test_light_sweep_requeues_due_jobs_missing_from_redis(
    runtime: Runtime, receiver: WebhookReceiver
) -> None:
    account = await make_account(runtime, receiver)
    _, (job,) = await make_post(runtime, [account], runtime.clock.now_dt())
    await runtime.redis.delete(*runtime.keys.lanes)
    before = repairs_metric("not_queued")
    report = await sweeper(runtime).sweep("light")
    assert report["status"] == "succeeded" and report["repairs"] == {"not_queued": 1}
    assert await runtime.queue.contains([job["_id"]]) == {job["_id"]}
    assert repairs_metric("not_queued") == before + 1
    stored = await runtime.store.sweeps.find_one({"_id": report["_id"]})
    assert stored is not None and stored["duration_seconds"] >= 0
    assert stored["node_id"] == runtime.settings.node_id


async def test_running_with_expired_lease_goes_back_to_the_queue(
    runtime: Runtime, receiver: WebhookReceiver
) -> None:
    account = await make_account(runtime, receiver)
    _, (job,) = await make_post(runtime, [account], runtime.clock.now_dt())
    await expire_lease(runtime, job, JobState.RUNNING)
    report = await sweeper(runtime).sweep("light")
    assert report["repairs"] == {"running_lease_expired": 1}
    doc = await runtime.store.jobs.find_one({"_id": job["_id"]})
    assert doc is not None and doc["state"] == JobState.STAGED and "lease" not in doc
    assert await runtime.queue.contains([job["_id"]]) == {job["_id"]}


async def test_publishing_with_expired_lease_is_retried_under_the_same_key(
    runtime: Runtime, receiver: WebhookReceiver
) -> None:
    account = await make_account(runtime, receiver)
    _, (job,) = await make_post(runtime, [account], runtime.clock.now_dt())
    await expire_lease(runtime, job, JobState.PUBLISHING)
    report = await sweeper(runtime).sweep("light")
    assert report["repairs"] == {"publishing_retried": 1}
    doc = await runtime.store.jobs.find_one({"_id": job["_id"]})
    assert doc is not None and doc["state"] == JobState.RETRY_WAIT
    assert doc["attempts"][-1]["outcome"] == "unknown"
    assert await runtime.queue.contains([job["_id"]]) == {job["_id"]}
    # The stale holder can no longer write: its fence (lease_seq 1) meets a job it does not own.
    stale = await runtime.store.jobs.update_one(
        {"_id": job["_id"], "lease_seq": 1, "state": str(JobState.PUBLISHING)},
        {"$set": {"state": str(JobState.SUCCEEDED)}})
    assert stale.matched_count == 0


async def test_review_accounts_get_unconfirmed_jobs_resolved_by_a_person(
    runtime: Runtime, receiver: WebhookReceiver
) -> None:
    account = await make_account(runtime, receiver, on_unknown="review")
    _, (job,) = await make_post(runtime, [account], runtime.clock.now_dt())
    await expire_lease(runtime, job, JobState.PUBLISHING)
    before = REGISTRY.get_sample_value("herald_jobs_total", {"outcome": "unconfirmed"}) or 0
    report = await sweeper(runtime).sweep("light")
    assert report["repairs"] == {"publishing_unconfirmed": 1}
    doc = await runtime.store.jobs.find_one({"_id": job["_id"]})
    assert doc is not None and doc["state"] == JobState.UNCONFIRMED
    assert not await runtime.queue.contains([job["_id"]])
    assert REGISTRY.get_sample_value("herald_jobs_total", {"outcome": "unconfirmed"}) == before + 1
    # A second sweep leaves it alone: never a silent re-post.
    assert (await sweeper(runtime).sweep("light"))["repairs"] == {}
    async with serve_api(runtime) as api:
        listed = await api.ok("GET", "/jobs", params={"state": "unconfirmed"})
        assert [j["id"] for j in listed["items"]] == [job["_id"]]
        settled = await api.ok("POST", f"/jobs/{job['_id']}/resolve", {"outcome": "succeeded"})
        assert settled["state"] == "succeeded"
    assert receiver.deliveries == []


async def test_full_sweep_cleans_the_queue_and_rematerialises_recurring_posts(
    runtime: Runtime, receiver: WebhookReceiver
) -> None:
    account = await make_account(runtime, receiver)
    _, (done,) = await make_post(runtime, [account], runtime.clock.now_dt())
    await runtime.store.jobs.update_one({"_id": done["_id"]},
                                        {"$set": {"state": str(JobState.SUCCEEDED)}})
    now = runtime.clock.now_dt()
    recurring = {"_id": new_id(), "account_ids": [account["_id"]],
                 "content": {"text": "daily", "media": [], "thread": []},
                 "schedule": {"cron": "*/5 * * * *", "timezone": "UTC"}, "recurring": True,
                 "priority": "normal", "status": "scheduled", "version": 1,
                 "misfire_grace_seconds": 3600, "publish_late": False,
                 "created_at": now, "updated_at": now, "materialised_until": now}
    await runtime.store.posts.insert_one(recurring)
    stuck = {**done, "_id": new_id(), "scheduled_for": now - timedelta(days=2),
             "due_at": now - timedelta(days=2), "state": str(JobState.UNCONFIRMED)}
    await runtime.store.jobs.insert_one(stuck)
    report = await sweeper(runtime).sweep("full")
    assert report["repairs"] == {"queue_entry_finished": 1, "recurring_rematerialised": 1,
                                 "stuck_reported": 1}
    assert report["stuck_jobs"] == [stuck["_id"]]
    assert not await runtime.queue.contains([done["_id"]])
    future = await runtime.store.jobs.find_one({"post_id": recurring["_id"]})
    assert future is not None and future["scheduled_for"] > now


async def test_sweeps_requested_through_the_api_run_on_a_recovery_node(
    runtime: Runtime, receiver: WebhookReceiver
) -> None:
    account = await make_account(runtime, receiver)
    _, (job,) = await make_post(runtime, [account], runtime.clock.now_dt())
    await runtime.redis.delete(*runtime.keys.lanes)
    async with serve_api(runtime) as api:
        await api.rejected("POST", "/sweeps", {"kind": "heavy"}, status=422, field="kind")
        accepted = await api.ok("POST", "/sweeps", {"kind": "light"}, status=202)
        listed = await api.ok("GET", "/sweeps")
        assert listed["items"][0]["id"] == accepted["id"]
        assert listed["items"][0]["status"] == "requested"
        await RecoveryRole(runtime)._requested()
        report = (await api.ok("GET", "/sweeps"))["items"][0]
    assert report["id"] == accepted["id"] and report["status"] == "succeeded"
    assert report["kind"] == "light" and report["repairs"] == {"not_queued": 1}
    assert report["node_id"] == runtime.settings.node_id
    assert await runtime.queue.contains([job["_id"]]) == {job["_id"]}


async def test_a_dead_sweepers_lock_lapses_with_its_leases(settings: Settings) -> None:
    """A node killed mid-sweep leaves the sweep lock behind until its ttl runs out; that ttl is
    the lease ttl, so sweeps resume by the time the dead node's jobs can be repaired (a fixed
    30 s once held them back well past the 5 s leases of the chaos run)."""
    rt = await Runtime.open(settings.model_copy(update={"lease_ttl_seconds": 2}))
    try:
        sweep = asyncio.create_task(RecoveryRole(rt).sweep_once("light"))
        ttls: list[int] = []
        while not sweep.done():
            ttl = await rt.redis.pttl(rt.keys.sweep_lock)
            if ttl > 0:
                ttls.append(ttl)
        assert await sweep
        assert ttls and max(ttls) <= 2000
    finally:
        await rt.close()
