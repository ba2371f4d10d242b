"""The API's operations for operators (issue 12): job filters and text search, bulk retry with
an expected count, cluster pause and resume, an account disabled, the audit log and the
read-only viewer token."""

from __future__ import annotations

from typing import Any

import pytest

from shared.models import JobState
from shared.runtime import Runtime
from tests.emulators.webhook import WebhookReceiver
from tests.integration.api_support import (
    TELEGRAM,
    Api,
    assert_error_shape,
    at,
    job_doc,
    serve_api,
    set_job,
    snapshot,
    z,
)
from tests.integration.pipeline_support import (
    make_account,
    make_post,
    running_executor,
    wait_state,
)

VIEWER = "test-viewer-token"


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "HERALD_VIEWER_TOKEN": VIEWER}


async def _failed(api: Api, account: str, text: str, error: str, **post: Any) -> str:
    """A job of a new post to `account`, failed with `error`."""
    created = await api.post([account], content={"text": text}, **post)
    job_id: str = created["jobs"][0]["id"]
    await set_job(api.rt, job_id, state="failed", error=error)
    await api.rt.queue.remove(job_id)
    return job_id


async def _ids(api: Api, **params: str) -> set[str]:
    page = await api.ok("GET", "/jobs", params=params)
    return {job["id"] for job in page["items"]}


async def test_filters_and_text_search(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        hook = (await api.account())["id"]
        telegram = (await api.account(**TELEGRAM))["id"]
        launch = await _failed(api, hook, "Our Spring LAUNCH is live", "permanent: 400 bad text")
        outage = await _failed(api, telegram, "Maintenance tonight",
                               "transient: telegram answered 502 (Bad Gateway)")
        later = await _failed(api, hook, "A later post (v2.0)", "permanent: 403 forbidden",
                              schedule={"at": at(runtime, days=3)})
        pending = (await api.post([hook], content={"text": "spring cleaning"}))["jobs"][0]["id"]

        assert await _ids(api, platform="telegram") == {outage}
        assert await _ids(api, error_class="permanent") == {launch, later}
        assert await _ids(api, error_class="transient", state="failed") == {outage}
        # Case-insensitive, over the post's content and the last error.
        assert await _ids(api, q="spring") == {launch, pending}
        assert await _ids(api, q="bad gateway") == {outage}
        # Literal text, not a pattern: the dot and the parenthesis match only themselves.
        assert await _ids(api, q="(v2.0)") == {later}
        assert await _ids(api, q="v2x0") == set()
        # A job's own content (a retry with edited text) is searched too.
        await set_job(runtime, outage, content_override={"text": "Edited: maintenance at 22:00",
                                                         "media": [], "thread": []})
        assert await _ids(api, q="22:00") == {outage}
        # since inclusive, until exclusive, on the scheduled time.
        later_at = (await job_doc(runtime, later))["scheduled_for"]
        assert await _ids(api, since=z(later_at)) == {later}
        assert later not in await _ids(api, until=z(later_at))

        job = await api.ok("GET", f"/jobs/{launch}")
        assert (job["error"], job["error_class"]) == ("permanent: 400 bad text", "permanent")
        reply = await api.rejected("GET", "/jobs", status=422, field="error_class",
                                   params={"error_class": "nonsense"})
        assert_error_shape(reply.body)
        await api.rejected("GET", "/jobs", status=422, field="since",
                           params={"since": "2026-01-01T00:00:00"})


async def test_bulk_retry_needs_the_expected_count(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        hook = (await api.account())["id"]
        other = (await api.account(name="other"))["id"]
        failed = [await _failed(api, hook, f"post {i}", "permanent: 400") for i in range(3)]
        untouched = await _failed(api, other, "other account", "permanent: 400")
        body = {"filter": {"account_id": hook, "error_class": "permanent"}}

        reply = await api.rejected("POST", "/jobs/retry", {**body, "expected_count": 2},
                                   status=409, field="expected_count")
        assert reply.body["error"]["details"][0]["message"] == "3"
        await api.rejected("POST", "/jobs/retry",
                           {"filter": {"state": "pending"}, "expected_count": 0},
                           status=422, field="filter.state")

        done = await api.ok("POST", "/jobs/retry", {**body, "expected_count": 3}, status=202)
        assert done == {"retried": 3}
        for job_id in failed:
            assert (await job_doc(runtime, job_id))["state"] in ("pending", "staged")
        assert (await job_doc(runtime, untouched))["state"] == "failed"
        # Nothing matches any more: the same request now expects 0.
        await api.rejected("POST", "/jobs/retry", {**body, "expected_count": 3}, status=409)


async def test_resolve_as_published_keeps_where(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        hook = (await api.account())["id"]
        job_id = (await api.post([hook]))["jobs"][0]["id"]
        await set_job(runtime, job_id, state="unconfirmed")
        await api.rejected("POST", f"/jobs/{job_id}/resolve",
                           {"outcome": "retry", "url": "https://example.org/p/1"}, status=422,
                           field="url")
        job = await api.ok("POST", f"/jobs/{job_id}/resolve",
                           {"outcome": "succeeded", "url": "https://example.org/p/1"})
        assert job["state"] == "succeeded"
        assert job["result"] == {"platform_post_id": None, "url": "https://example.org/p/1"}


async def test_cluster_pause_holds_every_job_until_resume(
        runtime: Runtime, receiver: WebhookReceiver) -> None:
    rt = runtime
    account = await make_account(rt, receiver)
    async with serve_api(rt) as api:
        assert (await api.ok("GET", "/cluster"))["paused"] is None
        await api.rejected("POST", "/cluster/pause", {"reason": ""}, status=422, field="reason")
        paused = await api.ok("POST", "/cluster/pause", {"reason": "brand incident"})
        assert paused["paused"]["reason"] == "brand incident"
        assert paused["paused"]["by"] == "api:admin"
        shown = (await api.ok("GET", "/cluster"))["paused"]
        assert shown == paused["paused"]

        _, (job,) = await make_post(rt, [account], rt.clock.now_dt(), text="held")
        async with running_executor(rt):
            parked = await wait_state(rt, job["_id"], {JobState.RETRY_WAIT})
            assert parked["waiting_on"] == "pause" and parked.get("attempt_count", 0) == 0
            assert receiver.deliveries == []
            # Redis losing the mirror changes nothing: MongoDB is the record.
            await rt.redis.delete(f"{rt.keys.prefix}:paused")
            assert (await api.ok("GET", "/cluster"))["paused"] == shown

            resumed = await api.ok("POST", "/cluster/resume")
            assert resumed == {"paused": None, "resumed": 1}
            await wait_state(rt, job["_id"], {JobState.SUCCEEDED})
        assert [d.key for d in receiver.deliveries if d.outcome == "accepted"] == [job["_id"]]
        assert (await api.ok("GET", "/cluster"))["paused"] is None


async def test_a_disabled_account_holds_its_jobs(
        runtime: Runtime, receiver: WebhookReceiver) -> None:
    rt = runtime
    account = await make_account(rt, receiver)
    async with serve_api(rt) as api:
        await api.ok("PATCH", f"/accounts/{account['_id']}", {"status": "disabled"})
        _, (job,) = await make_post(rt, [account], rt.clock.now_dt(), text="held")
        async with running_executor(rt):
            parked = await wait_state(rt, job["_id"], {JobState.RETRY_WAIT})
            assert parked["waiting_on"] == "account"
            assert receiver.deliveries == []
            await api.ok("PATCH", f"/accounts/{account['_id']}", {"status": "active"})
            await wait_state(rt, job["_id"], {JobState.SUCCEEDED})


async def test_audit_records_changes_newest_first_without_secrets(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        account = await api.account()
        job_id = (await api.post([account["id"]]))["jobs"][0]["id"]
        await api.ok("POST", f"/jobs/{job_id}/cancel")
        await api.call("POST", f"/jobs/{job_id}/cancel")  # refused: not recorded
        await api.ok("GET", "/jobs")  # a read: not recorded

        entries = (await api.ok("GET", "/audit"))["items"]
        assert [e["action"] for e in entries] == [
            "POST /jobs/{id}/cancel", "POST /posts", "POST /accounts"]
        assert {e["actor"] for e in entries} == {"api:admin"}
        assert entries[0]["target"] == job_id
        assert entries[2]["target"] == account["id"]
        assert "credentials" not in entries[2]["details"]["body"]
        assert "s3cr3t" not in str(entries)
        only = await api.ok("GET", "/audit", params={"target": job_id})
        assert [e["action"] for e in only["items"]] == ["POST /jobs/{id}/cancel"]


async def test_the_viewer_token_reads_and_is_refused_changes(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        account = (await api.account())["id"]
        job_id = (await api.post([account]))["jobs"][0]["id"]
        assert (await api.call("GET", f"/jobs/{job_id}", token=VIEWER)).status == 200
        assert (await api.call("GET", "/cluster", token=VIEWER)).status == 200
        before = await snapshot(runtime)
        for method, path, body in [("POST", f"/jobs/{job_id}/cancel", None),
                                   ("POST", "/cluster/pause", {"reason": "x"}),
                                   ("PATCH", f"/accounts/{account}", {"status": "disabled"}),
                                   ("DELETE", f"/accounts/{account}", None)]:
            reply = await api.call(method, path, body, token=VIEWER)
            assert reply.status == 403, (method, path, reply.body)
            assert_error_shape(reply.body)
            assert reply.body["error"]["code"] == "forbidden"
        assert await snapshot(runtime) == before
        assert (await api.ok("GET", "/cluster"))["paused"] is None
        assert (await api.call("GET", "/jobs", token="not-a-token")).status == 401
        entries = (await api.ok("GET", "/audit"))["items"]
        assert all(e["actor"] == "api:admin" for e in entries)
