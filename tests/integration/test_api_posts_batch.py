"""`POST /posts/batch`: each post validated on its own, a refused one changing nothing of the
others; the posts and their jobs written with one insert each, whatever the batch's size, and
nothing else written but the audit entry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import monitoring

from shared.config import Settings
from shared.runtime import Runtime
from tests.integration.api_support import at, serve_api

WRITES = ("insert", "update", "delete")


class Writes(monitoring.CommandListener):
    """Records the write commands (name, collection) while `recording`; pymongo's listeners
    are registered for the process, so it records only inside the test that wants it."""

    def __init__(self) -> None:
        self.recording = False
        self.writes: list[tuple[str, str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.recording and event.command_name in WRITES:
            self.writes.append((event.command_name, str(event.command[event.command_name])))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


LISTENER = Writes()
monitoring.register(LISTENER)


@pytest.fixture
def writes() -> Iterator[Writes]:
    LISTENER.writes.clear()
    LISTENER.recording = True
    yield LISTENER
    LISTENER.recording = False


def post(account_id: str, rt: Runtime, **fields: Any) -> dict[str, Any]:
    return {"account_ids": [account_id], "content": {"text": "batch"},
            "schedule": {"at": at(rt, minutes=5)}, **fields}


async def test_each_post_stands_on_its_own(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        account = (await api.account())["id"]
        body = {"posts": [
            post(account, runtime, content={"text": "soon"}),
            post(account, runtime, schedule={"cron": "0 9 * * *", "timezone": "Europe/Berlin"}),
            {"account_ids": [account], "content": {"text": "no schedule"}},
            post(account, runtime, draft=True),
            post("0123456789abcdef01234567", runtime),
            post(account, runtime, schedule={"at": at(runtime, days=-2)}),
        ]}
        reply = await api.call("POST", "/posts/batch", body)
        assert reply.status == 207, reply.body
        results = reply.body["results"]
        assert [(r["index"], r["status"]) for r in results] == [
            (0, 201), (1, 201), (2, 422), (3, 201), (4, 422), (5, 422)]
        fields = {r["index"]: [d["field"] for d in r["error"]["details"]]
                  for r in results if r["status"] == 422}
        assert fields == {2: ["schedule"], 4: ["account_ids.0"], 5: ["schedule.at"]}

        soon = results[0]["post"]
        assert soon["status"] == "scheduled" and soon["content"]["text"] == "soon"
        [job] = soon["jobs"]
        assert job["state"] == "staged" and await runtime.queue.contains([job["id"]])
        assert results[1]["post"]["recurring"] and results[1]["post"]["next_run_at"]
        assert results[3]["post"]["status"] == "draft" and results[3]["post"]["jobs"] == []
        stored = sorted(p["id"] for p in (await api.ok("GET", "/posts"))["items"])
        assert stored == sorted(results[i]["post"]["id"] for i in (0, 1, 3))
        assert (await api.ok("GET", f"/posts/{soon['id']}"))["jobs"] == soon["jobs"]
        # How far each post is materialised: the recurring one's marker written after its
        # jobs, the one-off's with the post, none for the draft.
        marked = {p["_id"]: p.get("materialised_until") for p in
                  await runtime.store.posts.find({}, {"materialised_until": 1}).to_list()}
        assert marked[results[1]["post"]["id"]] is not None
        assert marked[soon["id"]] is not None and marked[results[3]["post"]["id"]] is None


async def test_a_thousand_posts_take_one_insert_for_posts_and_one_for_jobs(
        settings: Settings, writes: Writes) -> None:
    rt = await Runtime.open(settings)
    try:
        async with serve_api(rt) as api:
            account = (await api.account())["id"]
            writes.writes.clear()
            body = {"posts": [post(account, rt, content={"text": f"post {n}"})
                              for n in range(1000)]}
            reply = await api.call("POST", "/posts/batch", body)
            assert reply.status == 207
            assert {r["status"] for r in reply.body["results"]} == {201}
            # ... and the request's one entry in the audit log. A one-off post's marker is
            # inserted with it, not written after its jobs.
            assert sorted(writes.writes) == [("insert", "audit"), ("insert", "jobs"),
                                             ("insert", "posts")]
            stored = await rt.store.posts.find({}, {"schedule": 1, "materialised_until": 1}
                                               ).to_list()
            assert len(stored) == 1000
            assert all(p["materialised_until"] == p["schedule"]["at"] for p in stored)
            queued = await rt.redis.zcard(rt.keys.lane("normal"))
            assert queued == 1000

            too_many = {"posts": [post(account, rt)] * 1001}
            await api.rejected("POST", "/posts/batch", too_many, status=422, field="posts")
            await api.rejected("POST", "/posts/batch", {"posts": []}, status=422, field="posts")
    finally:
        await rt.store.client.drop_database(rt.store.db.name)
        await rt.close()
