"""The executor end to end: real Redis, real store, real webhook emulator over loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from executor.publish import Publisher, Run
from shared.config import Settings
from shared.locks import RenewedLock
from shared.metrics import REGISTRY
from shared.models import JobState
from shared.notify import Notifier
from shared.runtime import Runtime
from tests.emulators.webhook import WebhookReceiver
from tests.integration.pipeline_support import (
    SECRET,
    make_account,
    make_post,
    running_executor,
    wait_state,
)
from tools import devservers


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    """A runtime with fast retries, so retry tests finish in seconds."""
    fast = settings.model_copy(update={"retry_base_seconds": 0.2, "lease_ttl_seconds": 3})
    runtime = await Runtime.open(fast)
    yield runtime
    await runtime.store.client.drop_database(runtime.store.db.name)
    await runtime.close()


def accepted(receiver: WebhookReceiver) -> list[str]:
    return [d.key for d in receiver.deliveries if d.outcome == "accepted"]


async def test_due_job_is_published_once_with_result(rt: Runtime,
                                                     receiver: WebhookReceiver) -> None:
    account = await make_account(rt, receiver)
    due = rt.clock.now_dt() + timedelta(milliseconds=300)
    post, (job,) = await make_post(rt, [account], due, text="on time")
    async with running_executor(rt):
        done = await wait_state(rt, job["_id"], {JobState.SUCCEEDED})
    assert accepted(receiver) == [job["_id"]]
    assert receiver.deliveries[0].body is not None
    assert receiver.deliveries[0].body["text"] == "on time"
    assert receiver.deliveries[0].arrived_at >= due.timestamp() - 0.06
    assert done["result"]["platform_post_id"] == receiver.accepted[job["_id"]]["id"]
    assert [a["outcome"] for a in done["attempts"]] == ["succeeded"]
    assert (await rt.store.posts.find_one({"_id": post["_id"]}) or {})["status"] == "completed"


async def test_high_lane_first(rt: Runtime, receiver: WebhookReceiver) -> None:
    account = await make_account(rt, receiver)
    due = rt.clock.now_dt() - timedelta(seconds=1)
    _, normal = await make_post(rt, [account], due, text="normal")
    _, high = await make_post(rt, [account], due, text="high", priority="high")
    async with running_executor(rt, concurrency=1):
        await wait_state(rt, normal[0]["_id"], {JobState.SUCCEEDED})
    assert accepted(receiver) == [high[0]["_id"], normal[0]["_id"]]


async def test_two_failures_then_success(rt: Runtime, receiver: WebhookReceiver) -> None:
    receiver.script.fail_next = 2
    account = await make_account(rt, receiver)
    _, (job,) = await make_post(rt, [account], rt.clock.now_dt())
    async with running_executor(rt):
        done = await wait_state(rt, job["_id"], {JobState.SUCCEEDED})
    assert [a["outcome"] for a in done["attempts"]] == ["transient", "transient", "succeeded"]
    assert done["attempt_count"] == 2
    assert accepted(receiver) == [job["_id"]]


async def test_rate_limit_defers_without_consuming_attempts(rt: Runtime,
                                                            receiver: WebhookReceiver) -> None:
    receiver.script.rate_limit_next = 1
    receiver.script.retry_after = "1"
    account = await make_account(rt, receiver)
    _, (job,) = await make_post(rt, [account], rt.clock.now_dt())
    async with running_executor(rt):
        deferred = await wait_state(rt, job["_id"], {JobState.RETRY_WAIT})
        assert deferred["due_at"] > rt.clock.now_dt() + timedelta(milliseconds=500)
        done = await wait_state(rt, job["_id"], {JobState.SUCCEEDED})
    assert done["attempt_count"] == 0
    arrivals = [d.arrived_at for d in receiver.deliveries]
    assert arrivals[1] - arrivals[0] >= 0.9


async def test_exhausted_retries_fail_the_job_and_post(rt: Runtime,
                                                       receiver: WebhookReceiver) -> None:
    receiver.script.fail_next = 10
    account = await make_account(rt, receiver)
    post, (job,) = await make_post(rt, [account], rt.clock.now_dt())
    async with running_executor(rt):
        done = await wait_state(rt, job["_id"], {JobState.FAILED})
    assert len(done["attempts"]) == rt.settings.retry_max_attempts + 1
    assert (await rt.store.posts.find_one({"_id": post["_id"]}) or {})["status"] == "error"


async def test_final_failure_is_announced_to_the_admin_webhook(
    settings: Settings, receiver: WebhookReceiver
) -> None:
    announced: list[dict[str, object]] = []

    async def hook(request: web.Request) -> web.Response:
        announced.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/notify", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    notify_url = str(server.make_url("/notify"))
    runtime = await Runtime.open(settings.model_copy(update={"notify_webhook_url": notify_url}))
    try:
        receiver.script.permanent_next = 1
        account = await make_account(runtime, receiver)
        _, (job,) = await make_post(runtime, [account], runtime.clock.now_dt())
        async with running_executor(runtime):
            await wait_state(runtime, job["_id"], {JobState.FAILED})
            async with asyncio.timeout(5):
                while not announced:
                    await asyncio.sleep(0.02)
    finally:
        await runtime.store.client.drop_database(runtime.store.db.name)
        await runtime.close()
        await server.close()
    assert announced[0]["event"] == "job.failed" and announced[0]["job_id"] == job["_id"]
    assert "permanent" in str(announced[0]["error"])
    assert SECRET not in json.dumps(announced)


async def test_a_cookie_one_accounts_answer_sets_is_not_sent_on_later_calls(
        rt: Runtime, receiver: WebhookReceiver) -> None:
    """The node's platform session serves every account: a cookie a platform sets in one
    account's answer must not ride along with another account's call, nor its own next one."""
    sent: list[str | None] = []

    async def platform(request: web.Request) -> web.Response:
        sent.append(request.headers.get("Cookie"))
        response = web.json_response({"id": str(len(sent))})
        response.set_cookie("session", f"caller-{len(sent)}")
        return response

    app = web.Application()
    app.router.add_post("/hook", platform)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    # By name: aiohttp's usual cookie jar ignores the cookies of a host given as an address.
    config = {"url": f"http://localhost:{server.port}/hook"}
    try:
        first, second = [await make_account(rt, receiver, config=config) for _ in range(2)]
        async with running_executor(rt):
            for account in (first, first, second):
                _, (job,) = await make_post(rt, [account], rt.clock.now_dt())
                await wait_state(rt, job["_id"], {JobState.SUCCEEDED})
    finally:
        await server.close()
    assert sent == [None, None, None]


async def test_permanent_error_fails_at_once(rt: Runtime, receiver: WebhookReceiver) -> None:
    receiver.script.permanent_next = 1
    account = await make_account(rt, receiver)
    _, (job,) = await make_post(rt, [account], rt.clock.now_dt())
    async with running_executor(rt):
        done = await wait_state(rt, job["_id"], {JobState.FAILED})
    assert [a["outcome"] for a in done["attempts"]] == ["failed"]


async def test_cancelled_post_is_never_published(rt: Runtime, receiver: WebhookReceiver) -> None:
    account = await make_account(rt, receiver)
    post, (job,) = await make_post(rt, [account], rt.clock.now_dt())
    await rt.store.posts.update_one({"_id": post["_id"]}, {"$set": {"status": "cancelled"}})
    async with running_executor(rt):
        await wait_state(rt, job["_id"], {JobState.CANCELLED})
    assert receiver.deliveries == []


async def test_paused_post_waits(rt: Runtime, receiver: WebhookReceiver) -> None:
    account = await make_account(rt, receiver)
    post, (job,) = await make_post(rt, [account], rt.clock.now_dt())
    await rt.store.posts.update_one({"_id": post["_id"]}, {"$set": {"status": "paused"}})
    async with running_executor(rt):
        await wait_state(rt, job["_id"], {JobState.PENDING})
    assert receiver.deliveries == []
    assert not await rt.queue.contains([job["_id"]])


async def test_content_edited_after_staging_is_published_latest(
    rt: Runtime, receiver: WebhookReceiver
) -> None:
    account = await make_account(rt, receiver)
    post, (job,) = await make_post(rt, [account], rt.clock.now_dt() + timedelta(seconds=0.5),
                                   text="first draft")
    await rt.store.posts.update_one({"_id": post["_id"]},
                                    {"$set": {"content.text": "final words"}})
    async with running_executor(rt):
        await wait_state(rt, job["_id"], {JobState.SUCCEEDED})
    assert receiver.deliveries[0].body is not None
    assert receiver.deliveries[0].body["text"] == "final words"


async def test_misfire_beyond_grace_is_missed(rt: Runtime, receiver: WebhookReceiver) -> None:
    account = await make_account(rt, receiver)
    _, (job,) = await make_post(rt, [account], rt.clock.now_dt() - timedelta(seconds=120),
                                misfire_grace_seconds=60)
    async with running_executor(rt):
        done = await wait_state(rt, job["_id"], {JobState.MISSED})
    assert receiver.deliveries == []
    assert done["attempts"][-1]["error"] == "misfire grace exceeded"


async def test_publish_late_ignores_grace(rt: Runtime, receiver: WebhookReceiver) -> None:
    account = await make_account(rt, receiver)
    _, (job,) = await make_post(rt, [account], rt.clock.now_dt() - timedelta(seconds=120),
                                misfire_grace_seconds=60, publish_late=True)
    async with running_executor(rt):
        await wait_state(rt, job["_id"], {JobState.SUCCEEDED})


async def test_account_budget_defers_instead_of_failing(rt: Runtime,
                                                        receiver: WebhookReceiver) -> None:
    account = await make_account(rt, receiver, rate_limit={"per_minute": 60})
    now = rt.clock.now_dt()
    _, jobs = await make_post(rt, [account], now)
    _, more = await make_post(rt, [account], now)
    async with running_executor(rt):
        for job in jobs + more:
            await wait_state(rt, job["_id"], {JobState.SUCCEEDED})
    arrivals = sorted(d.arrived_at for d in receiver.deliveries)
    assert len(arrivals) == 2 and arrivals[1] - arrivals[0] >= 0.9


async def test_stale_lease_holder_is_fenced_off(rt: Runtime, receiver: WebhookReceiver) -> None:
    """A holder whose lease was taken over cannot write its outcome over the new holder's."""
    account = await make_account(rt, receiver)
    _, (job,) = await make_post(rt, [account], rt.clock.now_dt())
    publisher = Publisher(rt, Notifier(rt.http, None))
    first = await publisher.claiming.load(job["_id"])
    assert first is not None and first["lease_seq"] == 1
    stale = Run(publisher, first, RenewedLock(rt.redis, rt.keys.job_lock(job["_id"]), 60))
    await stale.move(JobState.PUBLISHING, "publishing")
    # Its lease expires; recovery hands the job to a retry; another node claims it.
    await rt.jobs.transition(job["_id"], expect=[JobState.PUBLISHING], to=JobState.RETRY_WAIT,
                             reason="test: lease expired", fence=1)
    second = await publisher.claiming.load(job["_id"])
    assert second is not None and second["lease_seq"] == 2
    with pytest.raises(Exception, match=job["_id"]):
        await stale.move(JobState.SUCCEEDED, "late write", expect=JobState.PUBLISHING)
    current = await rt.store.jobs.find_one({"_id": job["_id"]})
    assert current is not None
    assert current["state"] == JobState.RUNNING and current["lease_seq"] == 2
    assert current["lease"]["token"] == second["lease"]["token"] != first["lease"]["token"]


async def test_a_lapsed_job_lock_sends_nothing_and_hands_the_job_back(
        rt: Runtime, receiver: WebhookReceiver) -> None:
    """Between the `publishing` mark and the platform call the node lost the job's lock (here
    Redis lost the key; a long pause does the same): recovery may already be settling the job,
    so the call is not made, and the job, still fenced to this run, goes back to the queue."""
    account = await make_account(rt, receiver)
    _, (job,) = await make_post(rt, [account], rt.clock.now_dt())
    publisher = Publisher(rt, Notifier(rt.http, None))
    lock = RenewedLock(rt.redis, rt.keys.job_lock(job["_id"]), ttl=0.3)
    assert await lock.acquire()
    claimed = await publisher.claiming.load(job["_id"])
    assert claimed is not None
    await rt.redis.delete(rt.keys.job_lock(job["_id"]))
    async with asyncio.timeout(5):
        await lock.lost.wait()  # the next renewal finds the key gone
    run = Run(publisher, claimed, lock)
    await run.execute()
    await lock.release()
    assert receiver.deliveries == []
    doc = await rt.store.jobs.find_one({"_id": job["_id"]})
    assert doc is not None and doc["state"] == JobState.RETRY_WAIT
    assert [t["state"] for t in doc["transitions"]][-2:] == ["publishing", "retry_wait"]
    assert doc.get("attempt_count", 0) == 0 and run.requeue is not None
    # Queued again, it is published once by the next claim.
    await rt.queue.stage(*run.requeue)
    async with running_executor(rt):
        await wait_state(rt, job["_id"], {JobState.SUCCEEDED})
    assert len(receiver.deliveries) == 1


async def test_redis_lost_before_the_publishing_mark_hands_the_job_back_at_once(
        settings: Settings, receiver: WebhookReceiver, tmp_path: Path) -> None:
    """Redis went away between the claim and the `publishing` mark (here it is stopped before
    the pause check): nothing was sent, so the job goes straight back to waiting in MongoDB,
    where the sweep and the window check find it, instead of sitting `running` for a lease
    TTL; once Redis is back it is published once."""
    server = devservers.start_redis(log=tmp_path / "redis.log")
    own = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{server.port}",
                                      "lease_ttl_seconds": 60})
    rt = await Runtime.open(own)
    try:
        account = await make_account(rt, receiver)
        _, (job,) = await make_post(rt, [account], rt.clock.now_dt())
        publisher = Publisher(rt, Notifier(rt.http, None))
        lock = RenewedLock(rt.redis, rt.keys.job_lock(job["_id"]), ttl=60)
        assert await lock.acquire()
        claimed = await publisher.claiming.load(job["_id"])
        assert claimed is not None
        server.stop()
        run = Run(publisher, claimed, lock)
        await run.execute()
        assert receiver.deliveries == []
        doc = await rt.store.jobs.find_one({"_id": job["_id"]})
        assert doc is not None and doc["state"] == JobState.STAGED, doc["state"]
        assert "lease" not in doc and doc.get("attempt_count", 0) == 0
        assert [t["state"] for t in doc["transitions"]][-2:] == ["running", "staged"]
        assert run.requeue == (job["_id"], claimed["due_at"], "normal")

        server = devservers.start_redis(server.port, log=tmp_path / "redis.log")
        await rt.queue.stage(*run.requeue)
        async with running_executor(rt):
            await wait_state(rt, job["_id"], {JobState.SUCCEEDED})
        assert accepted(receiver) == [job["_id"]]
    finally:
        await rt.store.client.drop_database(rt.store.db.name)
        await rt.close()
        server.stop()


async def test_duplicate_queue_entries_publish_once(rt: Runtime,
                                                    receiver: WebhookReceiver) -> None:
    account = await make_account(rt, receiver)
    _, (job,) = await make_post(rt, [account], rt.clock.now_dt())
    for lane in ("high", "normal"):
        await rt.queue.stage(job["_id"], rt.clock.now_dt(), lane)
    async with running_executor(rt):
        await wait_state(rt, job["_id"], {JobState.SUCCEEDED})
        await asyncio.sleep(0.3)
    assert len(receiver.deliveries) == 1


async def test_daily_quota_defers_to_the_next_utc_day(rt: Runtime,
                                                      receiver: WebhookReceiver) -> None:
    account = await make_account(rt, receiver, rate_limit={"per_day": 1})
    now = rt.clock.now_dt()
    _, jobs = await make_post(rt, [account], now)
    _, more = await make_post(rt, [account], now)
    ids = [jobs[0]["_id"], more[0]["_id"]]
    async with running_executor(rt), asyncio.timeout(15):
        while True:  # either job may take today's one unit; the other waits for tomorrow
            docs = await rt.store.jobs.find({"_id": {"$in": ids}}).to_list()
            published = [d for d in docs if d["state"] == JobState.SUCCEEDED]
            deferred = [d for d in docs if d["state"] == JobState.STAGED and d["due_at"] > now]
            if published and deferred:
                break
            await asyncio.sleep(0.05)
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert abs((deferred[0]["due_at"] - tomorrow).total_seconds()) < 2
    assert deferred[0]["attempt_count"] == 0
    assert len(receiver.deliveries) == 1


def _samples(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_lease_lost_inside_a_batch_publishes_none_of_the_lost(
        settings: Settings, receiver: WebhookReceiver) -> None:
    """Ten jobs due together are claimed together ahead of time (a 3 s lead) and then marked
    `publishing` by one bulk write. Meanwhile four leases were taken over (as a node that
    found them expired would): the write matches six of the ten, the executor finds out
    which, and only those six reach the platform; the four are left to their new holder."""
    runtime = await Runtime.open(settings.model_copy(update={"executor_lead_ms": 3000}))
    try:
        account = await make_account(runtime, receiver)
        due = runtime.clock.now_dt() + timedelta(seconds=2)
        jobs = [(await make_post(runtime, [account], due, text=f"part of a batch {n}"))[1][0]
                for n in range(10)]
        ids = [job["_id"] for job in jobs]
        lost, kept = ids[:4], ids[4:]
        move_batches = _samples("herald_executor_batch_size_count", {"step": "move"})
        small_batches = _samples("herald_executor_batch_size_bucket",
                                 {"step": "move", "le": "8.0"})
        losses = _samples("herald_lease_losses_total", {})
        async with running_executor(runtime, concurrency=16):
            for job_id in ids:
                await wait_state(runtime, job_id, {JobState.RUNNING})
            taken = await runtime.store.jobs.update_many(
                {"_id": {"$in": lost}, "state": str(JobState.RUNNING)},
                {"$inc": {"lease_seq": 1}, "$set": {"lease.node_id": "another-node"}})
            assert taken.modified_count == 4
            for job_id in kept:
                await wait_state(runtime, job_id, {JobState.SUCCEEDED})
            async with asyncio.timeout(10):
                while _samples("herald_lease_losses_total", {}) < losses + 4:
                    await asyncio.sleep(0.05)
        assert sorted(accepted(receiver)) == sorted(kept)
        for job_id in lost:
            doc = await runtime.store.jobs.find_one({"_id": job_id})
            assert doc is not None and doc["state"] == JobState.RUNNING
            assert doc["lease"]["node_id"] == "another-node" and doc["lease_seq"] == 2
        # The `publishing` marks went out together: one move batch of more than eight jobs.
        assert _samples("herald_executor_batch_size_count", {"step": "move"}) > move_batches
        assert _samples("herald_executor_batch_size_bucket",
                        {"step": "move", "le": "8.0"}) < _samples(
            "herald_executor_batch_size_count", {"step": "move"}) - move_batches + small_batches
    finally:
        await runtime.store.client.drop_database(runtime.store.db.name)
        await runtime.close()


async def test_a_job_claimed_ahead_is_marked_before_its_due_time_and_sent_at_it(
        settings: Settings, receiver: WebhookReceiver) -> None:
    """A job claimed ahead of time has its post re-read and its `publishing` mark written a
    quarter of the lead before it is due (500 ms of a 2 s lead here), so that a slow store
    reply cannot make it late; the platform call still waits for the due time."""
    runtime = await Runtime.open(settings.model_copy(update={"executor_lead_ms": 2000}))
    try:
        account = await make_account(runtime, receiver)
        due = runtime.clock.now_dt() + timedelta(seconds=1.5)
        _, (job,) = await make_post(runtime, [account], due, text="marked ahead")
        async with running_executor(runtime):
            done = await wait_state(runtime, job["_id"], {JobState.SUCCEEDED})
        assert done["publishing_at"] < due - timedelta(milliseconds=250)
        assert accepted(receiver) == [job["_id"]]
        assert receiver.deliveries[0].arrived_at >= due.timestamp() - 0.06
    finally:
        await runtime.store.client.drop_database(runtime.store.db.name)
        await runtime.close()


async def test_publishes_longer_than_the_lease_keep_their_locks_and_leases(
        rt: Runtime, receiver: WebhookReceiver) -> None:
    """Three platform calls that each take three lease TTLs (3 s here): one keeper renews
    every job's Redis lock and MongoDB lease while they run, so none is lost, no other node
    could take one over, and each is published once."""
    receiver.script.delay = 9.0
    account = await make_account(rt, receiver)
    _, jobs = await make_post(rt, [account, await make_account(rt, receiver),
                                   await make_account(rt, receiver)], rt.clock.now_dt())
    ids = [job["_id"] for job in jobs]
    losses = REGISTRY.get_sample_value("herald_lease_losses_total") or 0.0
    async with running_executor(rt):
        for job_id in ids:
            await wait_state(rt, job_id, {JobState.PUBLISHING})
        claimed = {job_id: (await rt.store.jobs.find_one({"_id": job_id}) or {})["lease"]
                   for job_id in ids}
        await asyncio.sleep(rt.settings.lease_ttl_seconds * 2)
        for job_id in ids:
            doc = await rt.store.jobs.find_one({"_id": job_id})
            assert doc is not None and doc["state"] == JobState.PUBLISHING
            # Pushed forward past the claim's expiry, which has already passed.
            assert doc["lease"]["expires_at"] > claimed[job_id]["expires_at"]
            assert doc["lease"]["expires_at"] > rt.clock.now_dt()
            assert await rt.redis.exists(rt.keys.job_lock(job_id))
        for job_id in ids:
            done = await wait_state(rt, job_id, {JobState.SUCCEEDED}, timeout=20)
            assert done["lease_seq"] == 1
    assert sorted(accepted(receiver)) == sorted(ids)
    assert (REGISTRY.get_sample_value("herald_lease_losses_total") or 0.0) == losses


async def test_a_batch_renewal_gives_up_only_the_locks_that_were_lost(rt: Runtime) -> None:
    """One script call renews a batch of job locks: a lock whose key Redis lost, or that another
    holder took, is given up (its run will not call the platform); the others are renewed."""
    locks = [RenewedLock(rt.redis, rt.keys.job_lock(f"renew-{n}"), 3) for n in range(3)]
    assert await RenewedLock.acquire_all(rt.scripts, locks) == [True] * 3
    await rt.redis.delete(locks[0].name)
    await rt.redis.set(locks[1].name, "another holder's token", px=3000)
    await rt.redis.pexpire(locks[2].name, 500)
    await RenewedLock.renew_all(rt.scripts, locks)
    assert [lock.held for lock in locks] == [False, False, True]
    assert locks[0].lost.is_set() and locks[1].lost.is_set()
    assert await rt.redis.pttl(locks[2].name) > 2000
    assert await rt.redis.get(locks[1].name) == b"another holder's token"
    await RenewedLock.release_all(rt.scripts, locks)
    assert await rt.redis.exists(locks[1].name) == 1 and await rt.redis.exists(locks[2].name) == 0


async def test_a_slot_freed_alone_is_refilled_without_waiting_for_company(
        rt: Runtime, receiver: WebhookReceiver) -> None:
    """A saturated executor refills its slots in batches (half its concurrency), but a job due
    while only one slot is free waits at most REFILL_WAIT for more to free, not for the slow
    platform calls holding the others."""
    account = await make_account(rt, receiver)
    receiver.script.delay = 5.0
    slow = [(await make_post(rt, [account], rt.clock.now_dt()))[1][0] for _ in range(3)]
    async with running_executor(rt, concurrency=4):
        for job in slow:
            await wait_state(rt, job["_id"], {JobState.PUBLISHING})
        receiver.script.delay = 0.0
        _, (first,) = await make_post(rt, [account], rt.clock.now_dt())
        await wait_state(rt, first["_id"], {JobState.SUCCEEDED}, timeout=3)
        _, (alone,) = await make_post(rt, [account], rt.clock.now_dt())
        await wait_state(rt, alone["_id"], {JobState.SUCCEEDED}, timeout=3)
        states = {(await rt.store.jobs.find_one({"_id": job["_id"]}) or {})["state"]
                  for job in slow}
        assert states == {JobState.PUBLISHING}


@pytest.mark.timeout(60)  # a starved event loop never reaches its own asyncio.timeout
async def test_a_wake_up_while_every_slot_is_busy_leaves_the_loop_running(
        rt: Runtime, receiver: WebhookReceiver) -> None:
    """With its one slot busy (a slow platform call), the worker is woken by a new job staged:
    it must wait for the slot without spinning, or the event loop never runs the call that
    would free it (a version that slept without yielding when already woken froze a whole
    node this way in the fault suite's MongoDB restart)."""
    receiver.script.delay = 2.0
    account = await make_account(rt, receiver)
    _, (busy,) = await make_post(rt, [account], rt.clock.now_dt())
    async with running_executor(rt, concurrency=1):
        await wait_state(rt, busy["_id"], {JobState.PUBLISHING})
        _, (woken,) = await make_post(rt, [account], rt.clock.now_dt())
        ticks = 0
        for _ in range(10):
            await asyncio.sleep(0.05)
            ticks += 1
        assert ticks == 10
        await wait_state(rt, busy["_id"], {JobState.SUCCEEDED})
        await wait_state(rt, woken["_id"], {JobState.SUCCEEDED})
    assert sorted(accepted(receiver)) == sorted([busy["_id"], woken["_id"]])


async def test_a_batchs_outcomes_are_written_together_and_a_slow_call_holds_back_none(
        settings: Settings, receiver: WebhookReceiver) -> None:
    """Eight jobs due together are claimed as one batch (a 3 s lead). Seven platform calls end
    over 200 ms (three receivers answering after 0, 100 and 200 ms), yet their outcomes go out
    in one write; the eighth call answers after 4 s and holds the others back only for the
    outcome wait (1 s here): the seven are recorded while it is still `publishing`, and it is
    recorded on its own once its answer comes."""
    receivers = [WebhookReceiver(SECRET, delay=delay) for delay in (0.1, 0.2, 4.0)]
    for extra in receivers:
        await extra.start()
    runtime = await Runtime.open(settings.model_copy(update={
        "executor_lead_ms": 3000, "executor_outcome_wait_ms": 1000, "lease_ttl_seconds": 30}))
    try:
        fast_accounts = [await make_account(runtime, r) for r in (receiver, *receivers[:2])]
        slow_account = await make_account(runtime, receivers[2])
        due = runtime.clock.now_dt() + timedelta(seconds=2)
        fast = [(await make_post(runtime, [fast_accounts[n % 3]], due, text=f"fast {n}"))[1][0]
                for n in range(7)]
        _, (slow,) = await make_post(runtime, [slow_account], due, text="slow")
        async with running_executor(runtime, concurrency=16):
            for job in [*fast, slow]:
                await wait_state(runtime, job["_id"], {JobState.RUNNING})
            done = [await wait_state(runtime, job["_id"], {JobState.SUCCEEDED}) for job in fast]
            still = await runtime.store.jobs.find_one({"_id": slow["_id"]})
            assert still is not None and still["state"] == JobState.PUBLISHING
            recorded = await wait_state(runtime, slow["_id"], {JobState.SUCCEEDED})
        assert len({doc["write_token"] for doc in done}) == 1
        assert recorded["write_token"] != done[0]["write_token"]
        assert sorted(accepted(receiver) + accepted(receivers[0]) + accepted(receivers[1])) \
            == sorted(job["_id"] for job in fast)
        assert accepted(receivers[2]) == [slow["_id"]]
    finally:
        await runtime.store.client.drop_database(runtime.store.db.name)
        await runtime.close()
        for extra in receivers:
            await extra.stop()
