"""Jobs through the admin API: the contract's shape, filters, force-retry, cancel and resolve,
each refusing (409, nothing changed) when an executor owns the job."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.models import OUT_OF_RANGE
from shared.runtime import Runtime
from tests.integration.api_support import (
    TELEGRAM,
    Api,
    at,
    job_doc,
    now,
    parse_time,
    serve_api,
    set_job,
    z,
)

JOB_FIELDS = {"id", "post_id", "account_id", "scheduled_for", "state", "priority", "attempts",
              "result", "next_attempt_at"}


async def _job(api: Api, account_body: dict[str, Any] | None = None,
               **post: object) -> tuple[str, str, str]:
    """(account id, post id, job id) of a fresh one-off post due in five minutes."""
    account = (await api.account(**(account_body or {})))["id"]
    created = await api.post([account], **post)
    return account, created["id"], created["jobs"][0]["id"]


async def test_get_renders_the_contract(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        account, post, job_id = await _job(api)
        job = await api.ok("GET", f"/jobs/{job_id}")
        assert set(job) >= JOB_FIELDS
        assert (job["id"], job["post_id"], job["account_id"]) == (job_id, post, account)
        assert job["state"] == "staged" and job["priority"] == "normal"
        assert job["attempts"] == [] and job["result"] is None
        assert job["next_attempt_at"] is None and job["platform"] == "webhook"
        parse_time(job["scheduled_for"])

        started = now(runtime).replace(microsecond=0)
        attempt = {"n": 1, "node_id": "node-a", "started_at": started,
                   "finished_at": started + timedelta(seconds=1), "outcome": "transient",
                   "error": "webhook answered 503"}
        retry_at = started + timedelta(minutes=2)
        await set_job(runtime, job_id, state="retry_wait", attempts=[attempt], attempt_count=1,
                      due_at=retry_at)
        waiting = await api.ok("GET", f"/jobs/{job_id}")
        assert waiting["attempts"] == [{
            "n": 1, "node_id": "node-a", "started_at": z(started),
            "finished_at": z(started + timedelta(seconds=1)),
            "outcome": "transient", "error": "webhook answered 503"}]
        assert parse_time(waiting["next_attempt_at"]) == retry_at
        assert waiting["result"] is None

        await set_job(runtime, job_id, state="succeeded",
                      result={"platform_post_id": "p-1", "url": "https://e.com/p-1"})
        done = await api.ok("GET", f"/jobs/{job_id}")
        assert done["result"] == {"platform_post_id": "p-1", "url": "https://e.com/p-1"}
        assert done["next_attempt_at"] is None
        await api.rejected("GET", "/jobs/000000000000000000000000", status=404)


async def test_list_filters_and_pages(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        a, b = (await api.account(name="a"))["id"], (await api.account(name="b"))["id"]
        first = await api.post([a, b])
        second = await api.post([b])
        all_ids = [j["id"] for j in first["jobs"]] + [j["id"] for j in second["jobs"]]
        await set_job(runtime, second["jobs"][0]["id"], state="failed")

        listed = await api.ok("GET", "/jobs")
        assert [j["id"] for j in listed["items"]] == sorted(all_ids)
        assert listed["next"] is None
        by_post = await api.ok("GET", "/jobs", params={"post_id": first["id"]})
        assert {j["id"] for j in by_post["items"]} == {j["id"] for j in first["jobs"]}
        by_account = await api.ok("GET", "/jobs", params={"account_id": b})
        assert {j["account_id"] for j in by_account["items"]} == {b}
        assert len(by_account["items"]) == 2
        failed = await api.ok("GET", "/jobs", params={"state": "failed"})
        assert [j["id"] for j in failed["items"]] == [second["jobs"][0]["id"]]
        combined = await api.ok("GET", "/jobs", params={"state": "staged", "account_id": b})
        assert [j["post_id"] for j in combined["items"]] == [first["id"]]

        page = await api.ok("GET", "/jobs", params={"limit": "2"})
        assert len(page["items"]) == 2 and page["next"] == page["items"][1]["id"]
        rest = await api.ok("GET", "/jobs", params={"after": page["next"]})
        assert len(rest["items"]) == 1 and rest["next"] is None

        for params, field in [({"state": "done"}, "state"), ({"limit": "1000"}, "limit"),
                              ({"after": "1"}, "after"), ({"status": "draft"}, "status")]:
            await api.rejected("GET", "/jobs", params=params, status=422, field=field)


async def test_retry_refuses_jobs_in_flight_and_successes_without_force(
    runtime: Runtime,
) -> None:
    async with serve_api(runtime) as api:
        _, _, job_id = await _job(api)
        path = f"/jobs/{job_id}/retry"
        for state in ("running", "publishing"):
            await set_job(runtime, job_id, state=state)
            reply = await api.rejected("POST", path, {"force": True}, status=409)
            assert reply.body["error"]["code"] == "conflict"
        await set_job(runtime, job_id, state="succeeded", attempt_count=1)
        await api.rejected("POST", path, status=409)
        await api.rejected("POST", path, {"force": False}, status=409)

        forced = await api.ok("POST", path, {"force": True}, status=202)
        assert set(forced) >= JOB_FIELDS
        assert forced["state"] == "staged"
        stored = await job_doc(runtime, job_id)
        assert stored["attempt_count"] == 0
        assert [t["reason"] for t in stored["transitions"]][-2:] == ["force_retry", "api"]
        assert await runtime.queue.contains([job_id]) == {job_id}


async def test_retry_with_run_at_and_content(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        _, post, job_id = await _job(api, TELEGRAM)
        await runtime.store.posts.update_one({"_id": post}, {"$set": {"status": "error"}})
        await set_job(runtime, job_id, state="failed", attempt_count=3)
        await runtime.queue.remove(job_id)
        path = f"/jobs/{job_id}/retry"

        for bad, field in [({"run_at": "2030-01-01T09:00:00"}, "run_at"),
                           ({"run_at": "later"}, "run_at"),
                           ({"content": {"text": 5}}, "content.text"),
                           ({"content": {}}, "content"), ({"force": "yes"}, "force"),
                           ({"priority": "high"}, "priority")]:
            await api.rejected("POST", path, bad, status=422, field=field)
        await api.rejected("POST", path, raw=b"{", status=400)
        await api.rejected("POST", path, {"content": {"text": "x" * 4097}}, status=422,
                           field="content.text")

        run_at = at(runtime, minutes=10)
        retried = await api.ok("POST", path, {"run_at": run_at, "content": {"text": "Again"}},
                               status=202)
        assert retried["state"] == "staged" and retried["attempt_count"] == 0
        assert abs(parse_time(retried["due_at"]) - datetime.fromisoformat(run_at)) \
            < timedelta(milliseconds=1)
        assert retried["content_override"]["text"] == "Again"
        score = await runtime.redis.zscore(runtime.keys.lane("normal"), job_id)
        assert score == int(parse_time(retried["due_at"]).timestamp() * 1000)
        assert (await api.ok("GET", f"/posts/{post}"))["status"] == "scheduled"

        await set_job(runtime, job_id, state="failed")
        far = await api.ok("POST", path, {"run_at": at(runtime, days=2)}, status=202)
        assert far["state"] == "pending" and far["content_override"]["text"] == "Again"
        assert await runtime.queue.contains([job_id]) == set()

        await set_job(runtime, job_id, state="cancelled")
        await api.ok("POST", f"/posts/{post}/cancel")
        await api.rejected("POST", path, status=409)
        await api.rejected("POST", "/jobs/000000000000000000000000/retry", status=404)


async def test_retry_run_at_within_the_calendar_in_utc(runtime: Runtime) -> None:
    """A `run_at` an offset carries past the ends of the calendar in UTC is a 422 naming it;
    the ends themselves are times like any other: the first is overdue, the last far off."""
    async with serve_api(runtime) as api:
        _, _, job_id = await _job(api)
        await set_job(runtime, job_id, state="failed")
        await runtime.queue.remove(job_id)
        path = f"/jobs/{job_id}/retry"
        for run_at in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"):
            reply = await api.rejected("POST", path, {"run_at": run_at}, status=422,
                                       field="run_at")
            assert reply.body["error"]["details"] == [{"field": "run_at",
                                                       "message": OUT_OF_RANGE}]

        last = await api.ok("POST", path, {"run_at": "9999-12-31T23:59:59Z"}, status=202)
        assert last["state"] == "pending" and last["due_at"] == "9999-12-31T23:59:59.000Z"
        assert await runtime.queue.contains([job_id]) == set()

        await set_job(runtime, job_id, state="failed")
        first = await api.ok("POST", path, {"run_at": "0001-01-01T10:00:00+10:00"}, status=202)
        assert first["state"] == "staged" and first["due_at"] == "0001-01-01T00:00:00.000Z"
        score = await runtime.redis.zscore(runtime.keys.lane("normal"), job_id)
        assert score == int(parse_time(first["due_at"]).timestamp() * 1000)


async def test_cancel(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        _, _, job_id = await _job(api)
        path = f"/jobs/{job_id}/cancel"
        for state in ("running", "publishing"):
            await set_job(runtime, job_id, state=state)
            await api.rejected("POST", path, status=409)
        await set_job(runtime, job_id, state="staged")
        cancelled = await api.ok("POST", path)
        assert cancelled["state"] == "cancelled"
        assert await runtime.queue.contains([job_id]) == set()
        await api.rejected("POST", path, status=409)

        await set_job(runtime, job_id, state="unconfirmed")
        assert (await api.ok("POST", path))["state"] == "cancelled"
        await api.rejected("POST", "/jobs/000000000000000000000000/cancel", status=404)


async def test_resolve_unconfirmed(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        _, _, job_id = await _job(api)
        path = f"/jobs/{job_id}/resolve"
        await api.rejected("POST", path, {"outcome": "succeeded"}, status=409)

        await set_job(runtime, job_id, state="unconfirmed")
        await runtime.queue.remove(job_id)
        for bad, field in [({}, "outcome"), ({"outcome": "failed"}, "outcome"),
                           ({"outcome": "retry", "note": "x"}, "note")]:
            await api.rejected("POST", path, bad, status=422, field=field)
        await api.rejected("POST", path, raw=b"", status=400)

        resolved = await api.ok("POST", path, {"outcome": "succeeded"})
        assert resolved["state"] == "succeeded"
        await api.rejected("POST", path, {"outcome": "retry"}, status=409)

        await set_job(runtime, job_id, state="unconfirmed", attempt_count=3)
        again = await api.ok("POST", path, {"outcome": "retry"})
        assert again["state"] == "staged" and again["attempt_count"] == 0
        assert parse_time(again["due_at"]) <= now(runtime)
        assert await runtime.queue.contains([job_id]) == {job_id}
        await api.rejected("POST", "/jobs/000000000000000000000000/resolve",
                           {"outcome": "retry"}, status=404)
