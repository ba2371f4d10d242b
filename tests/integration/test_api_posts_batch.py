"""`POST /posts/batch`: each post validated on its own, a refused one changing nothing of the
others; the posts and their jobs written with one insert each, whatever the batch's size, and
nothing else written but the audit entry; a store lost during the writes answers each post
with what became of it."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from pymongo import monitoring, uri_parser

from shared.config import Settings
from shared.runtime import Runtime
from shared.staging import stage_due
from tests.cut_proxy import CutProxy
from tests.integration.api_support import at, serve_api

WRITES = ("insert", "update", "delete")


class Writes(monitoring.CommandListener):
    """Records the write commands (name, collection) while `recording`; pymongo's listeners
    are registered for the process, so it records only inside the test that wants it."""

    def __init__(self) -> None:
        self.recording = False
        self.writes: list[tuple[str, str]] = []
        #: Called with each recorded write before it is sent.
        self.before_send: Callable[[tuple[str, str]], None] | None = None

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.recording and event.command_name in WRITES:
            self.writes.append((event.command_name, str(event.command[event.command_name])))
            if self.before_send is not None:
                self.before_send(self.writes[-1])

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
    LISTENER.before_send = None


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
            refused = {0, 500, 999}
            body = {"posts": [post(account, rt, content={"text": f"post {n}"})
                              if n not in refused else post("0123456789abcdef01234567", rt)
                              for n in range(1000)]}
            reply = await api.call("POST", "/posts/batch", body)
            assert reply.status == 207
            results = reply.body["results"]
            assert [r["index"] for r in results] == list(range(1000))
            assert {r["index"] for r in results if r["status"] == 422} == refused
            created = [r["post"] for r in results if r["status"] == 201]
            assert [p["content"]["text"] for p in created] == [
                f"post {n}" for n in range(1000) if n not in refused]
            # ... and the request's one entry in the audit log. A one-off post's marker is
            # inserted with it, not written after its jobs.
            assert writes.writes == [("insert", "posts"), ("insert", "jobs"), ("insert", "audit")]
            stored = await rt.store.posts.find({}, {"schedule": 1, "materialised_until": 1}
                                               ).to_list()
            assert sorted(p["_id"] for p in stored) == sorted(p["id"] for p in created)
            assert all(p["materialised_until"] == p["schedule"]["at"] for p in stored)
            jobs = await rt.store.jobs.find({}, {"post_id": 1}).to_list()
            assert sorted(j["post_id"] for j in jobs) == sorted(p["id"] for p in created)
            assert await rt.queue.contains([j["_id"] for j in jobs]) == {j["_id"] for j in jobs}

            too_many = {"posts": [post(account, rt)] * 1001}
            await api.rejected("POST", "/posts/batch", too_many, status=422, field="posts")
            await api.rejected("POST", "/posts/batch", {"posts": []}, status=422, field="posts")
    finally:
        await rt.store.client.drop_database(rt.store.db.name)
        await rt.close()


def through(url: str, port: int, *options: str) -> str:
    """`url` to the same server and database through a proxy on `port`, with `options` added."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    query = "&".join(q for q in (parts.query, *options) if q)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def cut_at(writes: Writes, write: tuple[str, str], proxy: CutProxy) -> None:
    """Cut the proxy right before `write` is sent."""
    def cut(sent: tuple[str, str]) -> None:
        if sent == write:
            proxy.cut()
    writes.writes.clear()
    writes.before_send = cut


def batch_of(account: str, rt: Runtime, count: int) -> dict[str, Any]:
    return {"posts": [post(account, rt, content={"text": f"post {n}"}) for n in range(count)]}


@contextlib.asynccontextmanager
async def behind_proxy(settings: Settings, setting: str, host: str, port: int, *options: str
                       ) -> AsyncIterator[tuple[Runtime, Runtime, CutProxy]]:
    """A runtime whose `setting` (a server's URL) leads through a proxy the test can cut, one
    that reaches every server directly, and the proxy."""
    proxy = CutProxy(host, port)
    cut_off = settings.model_copy(update={setting: through(getattr(settings, setting),
                                                           await proxy.start(), *options)})
    direct = await Runtime.open(settings)
    rt = await Runtime.open(cut_off)
    try:
        yield direct, rt, proxy
    finally:
        proxy.restore()
        await rt.close()
        await direct.store.client.drop_database(direct.store.db.name)
        await direct.close()
        await proxy.close()


async def test_mongodb_lost_between_posts_and_jobs_answers_each_post_with_what_is_left(
        settings: Settings, writes: Writes) -> None:
    """The posts are in, their jobs' insert never reaches MongoDB: each post is a 503 naming
    the post stored without jobs (which publishes nothing), not a 503 for the whole request
    that a client would retry blindly; cancelling one as the answer says settles it."""
    host, port = uri_parser.parse_uri(settings.mongodb_uri)["nodelist"][0]
    async with behind_proxy(settings, "mongodb_uri", host, port, "directConnection=true",
                            "serverSelectionTimeoutMS=1000") as (direct, rt, proxy), \
            serve_api(rt) as api:
        account = (await api.account())["id"]
        cut_at(writes, ("insert", "jobs"), proxy)
        reply = await api.call("POST", "/posts/batch", batch_of(account, rt, 300))
        assert reply.status == 207, reply.body
        named = []
        for result in reply.body["results"]:
            assert (result["status"], result["error"]["code"]) == (503, "unavailable")
            found = re.search(r"stored in part as post ([0-9a-f]{24}): cancel that \(POST "
                              r"/posts/([0-9a-f]{24})/cancel\)", result["error"]["message"])
            assert found and found[1] == found[2], result
            named.append(found[1])
        assert len(set(named)) == 300

        stored = await direct.store.posts.find({}, {"_id": 1}).to_list()
        assert sorted(p["_id"] for p in stored) == sorted(named)
        assert await direct.store.jobs.count_documents({}) == 0
        proxy.restore()
        cancelled = await api.ok("POST", f"/posts/{named[0]}/cancel")
        assert cancelled["status"] == "cancelled" and cancelled["jobs"] == []


async def test_redis_lost_once_the_jobs_are_in_creates_the_posts_and_a_sweep_queues_them(
        settings: Settings, writes: Writes) -> None:
    """The record holds posts and jobs, Redis is gone before they are queued: the posts are
    created (201, as a retry would duplicate them), and the sweep queues their jobs once Redis
    is back."""
    if settings.redis_url.partition("://")[0].endswith("+cluster"):
        pytest.skip("a proxy in front of one node does not cut a Redis Cluster")
    url = urlsplit(settings.redis_url)
    async with behind_proxy(settings, "redis_url", url.hostname or "127.0.0.1",
                            url.port or 6379) as (direct, rt, proxy):
        async with serve_api(rt) as api:
            account = (await api.account())["id"]
            cut_at(writes, ("insert", "jobs"), proxy)
            reply = await api.call("POST", "/posts/batch", batch_of(account, rt, 300))
            assert reply.status == 207, reply.body
            assert {r["status"] for r in reply.body["results"]} == {201}
            jobs = [j["id"] for r in reply.body["results"] for j in r["post"]["jobs"]]
            assert len(jobs) == 300 and await direct.queue.contains(jobs) == set()

        proxy.restore()
        until = direct.clock.now_dt() + timedelta(seconds=direct.settings.horizon_seconds)
        assert await stage_due(direct, until, source="sweep") == 300
        assert await direct.queue.contains(jobs) == set(jobs)
