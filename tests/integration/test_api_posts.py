"""Posts through the admin API: creation materialises and stages jobs at once, every field is
validated without side effects, and edits, pause, resume and cancel reach the jobs."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from typing import Any

from shared.models import OUT_OF_RANGE
from shared.runtime import Runtime
from tests.integration.api_support import (
    TELEGRAM,
    at,
    job_doc,
    now,
    parse_time,
    serve_api,
    set_job,
)


async def _lane_of(rt: Runtime, job_id: str) -> str | None:
    for priority in ("high", "normal"):
        if await rt.redis.zscore(rt.keys.lane(priority), job_id) is not None:
            return priority
    return None


async def test_create_one_off_stages_its_job_at_once(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        account = await api.account()
        when = at(runtime, minutes=5)
        body = {"account_ids": [account["id"]], "content": {"text": "Hello"},
                "schedule": {"at": when}, "priority": "normal", "draft": False,
                "misfire_grace_seconds": 3600, "publish_late": False}
        post = await api.ok("POST", "/posts", body, status=201)
        assert {"id", "status", "next_run_at", "version", "jobs"} <= set(post)
        assert post["status"] == "scheduled" and post["version"] == 1
        assert post["account_ids"] == [account["id"]] and post["recurring"] is False
        assert post["content"] == {"text": "Hello", "media": [], "thread": []}
        assert post["priority"] == "normal" and post["misfire_grace_seconds"] == 3600
        assert post["publish_late"] is False
        [job] = post["jobs"]
        assert set(job) == {"id", "account_id", "scheduled_for", "state"}
        assert job["account_id"] == account["id"] and job["state"] == "staged"
        expected = parse_time(post["schedule"]["at"])
        assert abs(parse_time(job["scheduled_for"]) - expected) < timedelta(milliseconds=1)
        assert post["next_run_at"] == job["scheduled_for"]
        assert abs(expected - datetime.fromisoformat(when)) < timedelta(milliseconds=1)
        assert await runtime.queue.contains([job["id"]]) == {job["id"]}
        assert await _lane_of(runtime, job["id"]) == "normal"
        assert (await job_doc(runtime, job["id"]))["state"] == "staged"
        assert await api.ok("GET", f"/posts/{post['id']}") == post


async def test_create_variants(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        a, b = (await api.account(name="a"))["id"], (await api.account(name="b"))["id"]

        both = await api.post([a, b], priority="high")
        assert {j["account_id"] for j in both["jobs"]} == {a, b}
        for job in both["jobs"]:
            assert job["state"] == "staged" and await _lane_of(runtime, job["id"]) == "high"

        later = await api.post([a], schedule={"at": at(runtime, hours=3)})
        [job] = later["jobs"]
        assert job["state"] == "pending" and not await runtime.queue.contains([job["id"]])

        late = await api.post([a], schedule={"at": at(runtime, minutes=-30)})
        assert late["jobs"][0]["state"] == "staged"

        draft = await api.post([a], draft=True)
        assert draft["status"] == "draft" and draft["jobs"] == []
        assert draft["next_run_at"] is None

        cron = await api.post([a], schedule={"cron": "*/10 * * * *", "timezone": "Europe/Berlin"})
        assert cron["recurring"] is True and cron["status"] == "scheduled"
        assert cron["schedule"]["cron"] == "*/10 * * * *"
        assert cron["schedule"]["timezone"] == "Europe/Berlin"
        times = [parse_time(j["scheduled_for"]) for j in cron["jobs"]]
        horizon = now(runtime) + timedelta(seconds=runtime.settings.horizon_seconds)
        assert 6 <= len(times) <= 8 and all(t <= horizon for t in times)
        assert all(t.minute % 10 == 0 for t in times) and times == sorted(times)
        assert all(j["state"] == "staged" for j in cron["jobs"])
        assert cron["next_run_at"] == cron["jobs"][0]["scheduled_for"]

        start = now(runtime) + timedelta(days=3)
        future = await api.post([a], schedule={
            "cron": "0 9 * * *", "timezone": "UTC", "start_at": start.isoformat(),
            "end_at": (start + timedelta(days=10)).isoformat()})
        assert future["jobs"] == []
        assert parse_time(future["next_run_at"]) >= start
        assert parse_time(future["next_run_at"]).hour == 9
        assert future["schedule"]["start_at"].endswith("Z")


def _post_body(rt: Runtime, account_id: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"account_ids": [account_id], "content": {"text": "Hello"},
                            "schedule": {"at": at(rt, minutes=5)}}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


async def test_create_rejects_each_bad_field_and_changes_nothing(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        good = (await api.account())["id"]
        disabled = (await api.account(name="off"))["id"]
        await api.ok("PATCH", f"/accounts/{disabled}", {"status": "disabled"})
        naive = (now(runtime) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
        cron = {"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"}
        cases: list[tuple[dict[str, Any], str]] = [
            ({"account_ids": ...}, "account_ids"),
            ({"account_ids": []}, "account_ids"),
            ({"account_ids": "x"}, "account_ids"),
            ({"account_ids": [5]}, "account_ids.0"),
            ({"account_ids": [good, "000000000000000000000000"]}, "account_ids.1"),
            ({"account_ids": [good, good]}, "account_ids.1"),
            ({"account_ids": [disabled]}, "account_ids.0"),
            ({"content": ...}, "content"),
            ({"content": {}}, "content"),
            ({"content": {"text": ""}}, "content"),
            ({"content": {"text": 5}}, "content.text"),
            ({"content": {"text": "x" * 100_001}}, "content.text"),
            ({"content": {"text": "x", "media": [{"url": "nope"}]}}, "content.media.0.url"),
            ({"content": {"text": "x", "media": [{"url": "https://e.com/a.png",
                                                  "mime_type": "png"}]}},
             "content.media.0.mime_type"),
            ({"content": {"text": "x", "thread": [{"text": ""}]}}, "content.thread.0.text"),
            ({"content": {"text": "x", "colour": "red"}}, "content.colour"),
            ({"schedule": ...}, "schedule"),
            ({"schedule": {}}, "schedule"),
            ({"schedule": "tomorrow"}, "schedule"),
            ({"schedule": {"at": at(runtime, hours=1), **cron}}, "schedule"),
            ({"schedule": {"at": naive}}, "schedule.at"),
            ({"schedule": {"at": "tomorrow"}}, "schedule.at"),
            ({"schedule": {"at": 1893456000}}, "schedule.at"),
            ({"schedule": {"at": at(runtime, hours=-2)}}, "schedule.at"),
            ({"schedule": {"at": at(runtime, hours=1), "timezone": "UTC"}}, "schedule.timezone"),
            ({"schedule": {**cron, "cron": "every day"}}, "schedule.cron"),
            ({"schedule": {**cron, "cron": "0 9 * * 1-5 2030"}}, "schedule.cron"),
            ({"schedule": {**cron, "cron": "0 0 30 2 *"}}, "schedule.cron"),
            ({"schedule": {**cron, "timezone": "Mars/Olympus"}}, "schedule.timezone"),
            ({"schedule": {**cron, "start_at": naive}}, "schedule.start_at"),
            ({"schedule": {**cron, "end_at": at(runtime, days=-1)}}, "schedule.end_at"),
            ({"schedule": {**cron, "start_at": at(runtime, days=2), "end_at": at(runtime, days=1)}},
             "schedule"),
            ({"schedule": {**cron, "every": 2}}, "schedule.every"),
            ({"priority": "urgent"}, "priority"),
            ({"draft": "no"}, "draft"),
            ({"misfire_grace_seconds": 0}, "misfire_grace_seconds"),
            ({"misfire_grace_seconds": -5}, "misfire_grace_seconds"),
            ({"misfire_grace_seconds": "3600"}, "misfire_grace_seconds"),
            ({"misfire_grace_seconds": 1.5}, "misfire_grace_seconds"),
            ({"publish_late": "yes"}, "publish_late"),
            ({"title": "x"}, "title"),
        ]
        for changes, field in cases:
            await api.rejected("POST", "/posts", _post_body(runtime, good, **changes),
                               status=422, field=field)
        # Every problem is reported at once.
        reply = await api.rejected("POST", "/posts", _post_body(
            runtime, good, priority="urgent", content={"text": 5}), status=422)
        fields = {d["field"] for d in reply.body["error"]["details"]}
        assert fields == {"priority", "content.text"}
        await api.rejected("POST", "/posts", raw=b'{"account_ids": [', status=400)
        assert await runtime.store.posts.count_documents({}) == 0


async def test_list_filters_and_pages(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        a, b = (await api.account(name="a"))["id"], (await api.account(name="b"))["id"]
        first = await api.post([a])
        second = await api.post([b], draft=True)
        third = await api.post([a, b])

        page = await api.ok("GET", "/posts")
        assert [p["id"] for p in page["items"]] == [first["id"], second["id"], third["id"]]
        assert page["next"] is None and "jobs" not in page["items"][0]
        assert page["items"][0]["next_run_at"] == first["next_run_at"]

        drafts = await api.ok("GET", "/posts", params={"status": "draft"})
        assert [p["id"] for p in drafts["items"]] == [second["id"]]
        of_b = await api.ok("GET", "/posts", params={"account_id": b})
        assert [p["id"] for p in of_b["items"]] == [second["id"], third["id"]]

        one = await api.ok("GET", "/posts", params={"limit": "1"})
        assert one["next"] == first["id"]
        rest = await api.ok("GET", "/posts", params={"limit": "2", "after": one["next"]})
        assert [p["id"] for p in rest["items"]] == [second["id"], third["id"]]
        assert rest["next"] is None

        for params, field in [({"status": "sent"}, "status"), ({"limit": "-1"}, "limit"),
                              ({"after": "zz"}, "after"), ({"state": "draft"}, "state")]:
            await api.rejected("GET", "/posts", params=params, status=422, field=field)
        for method, path in [("GET", "/posts/000000000000000000000000"),
                             ("PATCH", "/posts/000000000000000000000000"),
                             ("POST", "/posts/000000000000000000000000/pause"),
                             ("POST", "/posts/000000000000000000000000/resume"),
                             ("POST", "/posts/000000000000000000000000/cancel")]:
            if method == "PATCH":
                reply = await api.rejected(method, path, {"priority": "high"}, status=404)
            else:
                reply = await api.rejected(method, path, status=404)
            assert reply.body["error"]["code"] == "not_found"


async def test_pause_resume_cancel(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        account = (await api.account())["id"]
        post = await api.post([account])
        path = f"/posts/{post['id']}"
        job_id = post["jobs"][0]["id"]

        paused = await api.ok("POST", f"{path}/pause")
        assert paused["status"] == "paused" and paused["jobs"][0]["state"] == "staged"
        await api.rejected("POST", f"{path}/pause", status=409)
        # While paused, the executor hands a popped job back to pending (DESIGN §5).
        await set_job(runtime, job_id, state="pending")
        await runtime.queue.remove(job_id)

        resumed = await api.ok("POST", f"{path}/resume")
        assert resumed["status"] == "scheduled" and resumed["jobs"][0]["state"] == "staged"
        assert await runtime.queue.contains([job_id]) == {job_id}
        await api.rejected("POST", f"{path}/resume", status=409)

        cancelled = await api.ok("POST", f"{path}/cancel")
        assert cancelled["status"] == "cancelled" and cancelled["next_run_at"] is None
        assert cancelled["jobs"][0]["state"] == "cancelled"
        assert await runtime.queue.contains([job_id]) == set()
        for action in ("cancel", "pause", "resume"):
            await api.rejected("POST", f"{path}/{action}", status=409)
        await api.rejected("PATCH", path, {"content": {"text": "late"}}, status=409)


async def test_cancel_leaves_jobs_being_published_alone(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        a, b, c = [(await api.account(name=n))["id"] for n in "abc"]
        post = await api.post([a, b, c])
        jobs = {j["account_id"]: j["id"] for j in post["jobs"]}
        await set_job(runtime, jobs[a], state="publishing")
        await set_job(runtime, jobs[b], state="unconfirmed")
        cancelled = await api.ok("POST", f"/posts/{post['id']}/cancel")
        states = {j["account_id"]: j["state"] for j in cancelled["jobs"]}
        assert states == {a: "publishing", b: "cancelled", c: "cancelled"}


async def test_patch_content_priority_and_policy(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        account = (await api.account())["id"]
        post = await api.post([account])
        path = f"/posts/{post['id']}"
        job_id = post["jobs"][0]["id"]

        edited = await api.ok("PATCH", path, {"content": {"text": "Edited"}})
        assert edited["version"] == 2 and edited["content"]["text"] == "Edited"
        assert edited["jobs"] == post["jobs"]  # the executor re-reads the post

        raised = await api.ok("PATCH", path, {"priority": "high"})
        assert raised["version"] == 3 and raised["priority"] == "high"
        assert await _lane_of(runtime, job_id) == "high"
        assert (await job_doc(runtime, job_id))["priority"] == "high"

        policy = await api.ok("PATCH", path, {"misfire_grace_seconds": 60,
                                              "publish_late": True})
        assert policy["misfire_grace_seconds"] == 60 and policy["publish_late"] is True
        assert policy["version"] == 4

        unchanged = await api.ok("PATCH", path, {})
        assert unchanged["version"] == 4

        for bad, field in [({"content": None}, "content"), ({"content": {"text": 5}},
                                                            "content.text"),
                           ({"priority": "low"}, "priority"), ({"priority": None}, "priority"),
                           ({"misfire_grace_seconds": 0}, "misfire_grace_seconds"),
                           ({"publish_late": 1}, "publish_late"),
                           ({"schedule": {"at": "soon"}}, "schedule.at"),
                           ({"schedule": None}, "schedule"), ({"draft": None}, "draft"),
                           ({"account_ids": [account]}, "account_ids"),
                           ({"version": 9}, "version")]:
            await api.rejected("PATCH", path, bad, status=422, field=field)
        await api.rejected("PATCH", path, raw=b"[", status=400)
        await api.rejected("PATCH", path, {"draft": True}, status=409)
        await runtime.store.posts.update_one({"_id": post["id"]},
                                             {"$set": {"status": "completed"}})
        await api.rejected("PATCH", path, {"priority": "normal"}, status=409)


async def test_patch_schedule_replaces_jobs_not_yet_started(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        a, b, c = [(await api.account(name=n))["id"] for n in "abc"]
        post = await api.post([a, b, c])
        old = {j["account_id"]: j["id"] for j in post["jobs"]}
        # b's job failed once and waits for a retry; c's is being published right now.
        await set_job(runtime, old[b], state="retry_wait", attempt_count=1,
                      attempts=[{"n": 1, "node_id": "n1", "started_at": now(runtime),
                                 "finished_at": now(runtime), "outcome": "transient",
                                 "error": "503"}])
        await set_job(runtime, old[c], state="publishing")

        new_at = at(runtime, minutes=20)
        moved = await api.ok("PATCH", f"/posts/{post['id']}", {"schedule": {"at": new_at}})
        assert moved["version"] == 2
        assert await runtime.store.jobs.find_one({"_id": old[a]}) is None
        assert await runtime.queue.contains([old[a], old[b]]) == set()
        retried = await job_doc(runtime, old[b])
        assert retried["state"] == "cancelled"
        assert retried["transitions"][-1]["reason"] == "rescheduled"
        assert (await job_doc(runtime, old[c]))["state"] == "publishing"

        fresh = [j for j in moved["jobs"] if j["id"] not in old.values()]
        assert {j["account_id"] for j in fresh} == {a, b, c}
        for job in fresh:
            assert job["state"] == "staged"
            assert abs(parse_time(job["scheduled_for"]) - parse_time(moved["schedule"]["at"])) \
                < timedelta(milliseconds=1)
        assert await runtime.queue.contains([j["id"] for j in fresh]) == {j["id"] for j in fresh}

        recurring = await api.ok("PATCH", f"/posts/{post['id']}",
                                 {"schedule": {"cron": "*/15 * * * *"}})
        assert recurring["recurring"] is True and recurring["version"] == 3
        waiting = [j for j in recurring["jobs"] if j["state"] == "staged"]
        assert waiting and all(parse_time(j["scheduled_for"]) > now(runtime) - timedelta(
            seconds=5) for j in waiting)
        assert all(parse_time(j["scheduled_for"]).minute % 15 == 0 for j in waiting)
        assert not [j for j in recurring["jobs"] if j["state"] == "missed"]


async def test_draft_becomes_scheduled(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        account = (await api.account())["id"]
        draft = await api.post([account], draft=True)
        path = f"/posts/{draft['id']}"
        still = await api.ok("PATCH", path, {"content": {"text": "v2"}, "draft": True})
        assert still["status"] == "draft" and still["jobs"] == [] and still["version"] == 2

        await api.ok("PATCH", f"/accounts/{account}", {"status": "disabled"})
        await api.rejected("PATCH", path, {"draft": False}, status=422, field="account_ids.0")
        await api.ok("PATCH", f"/accounts/{account}", {"status": "active"})

        live = await api.ok("PATCH", path, {"draft": False})
        assert live["status"] == "scheduled" and live["version"] == 3
        [job] = live["jobs"]
        assert job["state"] == "staged" and await runtime.queue.contains([job["id"]])


async def test_content_is_checked_against_platform_limits(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        account = (await api.account(**TELEGRAM))["id"]
        post = await api.post([account])
        too_long = {"text": "x" * 4097, "media": [{"url": "https://e.com/a.png"}]}
        reply = await api.rejected("POST", "/posts", _post_body(runtime, account,
                                                                content=too_long),
                                   status=422, field="content.text")
        assert {d["field"] for d in reply.body["error"]["details"]} == {"content.text",
                                                                        "content.media.0"}
        assert reply.body["error"]["details"][0]["message"].startswith("telegram: 4097 ")
        await api.rejected("PATCH", f"/posts/{post['id']}", {"content": too_long}, status=422,
                           field="content.media.0")
        await api.ok("PATCH", f"/posts/{post['id']}", {"content": {"text": "x" * 4096}})


#: Times an offset carries past the ends of datetime's calendar in UTC, and the two ends.
BEYOND = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]
FIRST, LAST = "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"


async def test_times_beyond_the_calendar_in_utc_are_refused(runtime: Runtime) -> None:
    """Every time of a schedule, on create and on edit: a 422 naming the field, not a 500."""
    async with serve_api(runtime) as api:
        account = (await api.account())["id"]
        path = f"/posts/{(await api.post([account]))['id']}"
        cron = {"cron": "0 9 * * *", "timezone": "UTC"}
        for time in BEYOND:
            for schedule, field in [({"at": time}, "schedule.at"),
                                    ({**cron, "start_at": time}, "schedule.start_at"),
                                    ({**cron, "end_at": time}, "schedule.end_at")]:
                for method, url, body in [
                    ("POST", "/posts", _post_body(runtime, account, schedule=schedule)),
                    ("PATCH", path, {"schedule": schedule}),
                ]:
                    reply = await api.rejected(method, url, body, status=422, field=field)
                    assert reply.body["error"]["details"] == [
                        {"field": field, "message": OUT_OF_RANGE}]


async def test_the_ends_of_the_calendar_are_times_like_any_other(runtime: Runtime) -> None:
    """Its first and last instants are accepted where a schedule can fire, and a schedule
    whose next fire time would come after its last is refused as never firing."""
    async with serve_api(runtime) as api:
        account = (await api.account())["id"]
        last = await api.post([account], schedule={"at": LAST})
        assert last["next_run_at"] == "9999-12-31T23:59:59.000Z"
        assert [j["state"] for j in last["jobs"]] == ["pending"]
        await api.rejected("POST", "/posts", _post_body(runtime, account, schedule={"at": FIRST}),
                           status=422, field="schedule.at")

        daily = {"cron": "0 9 * * *", "timezone": "UTC"}
        span = await api.post([account], schedule={**daily, "start_at": FIRST, "end_at": LAST})
        assert timedelta(0) < parse_time(span["next_run_at"]) - now(runtime) <= timedelta(days=1)
        for zone in ("UTC", "Pacific/Kiritimati", "Etc/GMT+12"):
            reply = await api.rejected("POST", "/posts", _post_body(
                runtime, account, schedule={**daily, "timezone": zone, "start_at": LAST}),
                status=422, field="schedule.start_at")
            assert "never fires" in reply.body["error"]["details"][0]["message"]

        # 23:00 of 9999-12-30 at -12:00 is the last day's 11:00 UTC; 23:00 of 9999-12-31 is
        # past the calendar in UTC.
        edited = await api.ok("PATCH", f"/posts/{last['id']}", {"schedule": {
            "cron": "0 23 * * *", "timezone": "Etc/GMT+12", "start_at": "9999-12-31T00:00:00Z"}})
        assert edited["next_run_at"] == "9999-12-31T11:00:00.000Z" and edited["jobs"] == []
        await api.rejected("PATCH", f"/posts/{last['id']}", {"schedule": {
            "cron": "0 23 * * *", "timezone": "Etc/GMT+12", "start_at": "9999-12-31T12:00:00Z"}},
            status=422, field="schedule.start_at")


async def test_cron_next_run_at_any_distance(runtime: Runtime) -> None:
    """No look-ahead cap: a start years ahead and leap days are accepted with their next run,
    in every view; a schedule whose end comes before its first run is refused."""
    async with serve_api(runtime) as api:
        account = (await api.account())["id"]
        year = now(runtime).year + 2
        start = f"{year}-06-01T00:00:00Z"
        first = f"{year}-06-01T09:00:00.000Z"
        bounded = await api.post([account], schedule={"cron": "0 9 * * *", "start_at": start,
                                                      "end_at": f"{year}-12-31T00:00:00Z"})
        assert bounded["next_run_at"] == first and bounded["jobs"] == []
        open_ended = await api.post([account], schedule={"cron": "0 9 * * *",
                                                         "start_at": start})
        assert open_ended["next_run_at"] == first

        leap_year = next(y for y in range(year + 1, year + 9) if calendar.isleap(y))
        leap = await api.post([account], schedule={
            "cron": "0 9 29 2 *", "start_at": f"{year}-03-01T00:00:00Z",
            "end_at": f"{year + 8}-03-01T00:00:00Z"})
        assert leap["next_run_at"] == f"{leap_year}-02-29T09:00:00.000Z"

        listed = await api.ok("GET", "/posts", params={"limit": "10"})
        runs = {p["id"]: p["next_run_at"] for p in listed["items"]}
        assert [runs[p["id"]] for p in (bounded, open_ended, leap)] == [
            first, first, leap["next_run_at"]]

        moved = await api.ok("PATCH", f"/posts/{open_ended['id']}", {"schedule": {
            "cron": "0 9 29 2 *", "start_at": f"{year + 6}-01-01T00:00:00Z"}})
        later_leap = next(y for y in range(year + 6, year + 14) if calendar.isleap(y))
        assert moved["next_run_at"] == f"{later_leap}-02-29T09:00:00.000Z"

        reply = await api.rejected("POST", "/posts", _post_body(runtime, account, schedule={
            "cron": "0 9 1 1 *", "start_at": f"{year}-01-02T00:00:00Z",
            "end_at": f"{year}-12-31T00:00:00Z"}), status=422, field="schedule")
        assert "does not fire before end_at" in reply.body["error"]["details"][0]["message"]
        await api.rejected("PATCH", f"/posts/{bounded['id']}", {"schedule": {
            "cron": "0 9 29 2 *", "start_at": f"{leap_year}-03-01T00:00:00Z",
            "end_at": f"{leap_year + 3}-12-31T00:00:00Z"}}, status=422, field="schedule")
