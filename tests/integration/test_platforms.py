"""Every platform end to end: the admin API, a real executor, real MongoDB and Redis, and the
platform's emulator over loopback. The same scenarios for each platform: a post arrives once; a
429 defers the job to the time the platform named without using an attempt; an expired token
is refreshed once; credentials refused for good make the account `reauth_required`, notify, and
the job publishes once the account is patched; over-long text is a 422 in the platform's units."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta

import pytest

from executor.publish import Publisher
from executor.worker import Worker
from recovery.sweeps import Sweeper
from shared.config import Settings
from shared.models import JobState
from shared.notify import Notifier
from shared.runtime import Runtime
from tests.integration.api_support import at, job_doc, serve_api
from tests.integration.pipeline_support import AdminHook, running_executor, wait_state
from tests.integration.platform_support import (
    PLATFORMS,
    post_now,
    started,
    with_oauth_clients,
)

#: Platforms whose access tokens expire and are refreshed with a refresh token or session.
REFRESHING = ["bluesky", "x", "linkedin"]


def asked_wait(platform: str, retry_after: float) -> float:
    """The wait a platform's scripted 429 names, in seconds: Meta counts minutes; LinkedIn's
    429 names none, and its limits reset at midnight UTC."""
    if platform == "facebook":
        return math.ceil(retry_after / 60) * 60
    if platform == "linkedin":
        now = datetime.now(UTC)
        return (datetime.combine(now.date() + timedelta(days=1), time(), UTC)
                - now).total_seconds()
    return retry_after

#: (longest text accepted, shortest text refused), in each platform's own unit.
LIMITS: dict[str, tuple[str, str]] = {
    # 500 characters, a URL counting 23 whatever its length.
    "mastodon": ("a" * 476 + " https://example.org/" + "p" * 200, "a" * 501),
    # 300 graphemes of two code points each.
    "bluesky": ("e\u0301" * 300, "e\u0301" * 301),
    # 280 weighted characters: CJK counts 2.
    "x": ("日" * 140, "日" * 140 + "a"),
    "linkedin": ("a" * 3000, "a" * 3001),
    "facebook": ("a" * 63206, "a" * 63207),
    # 4,096 UTF-16 code units: an emoji counts 2.
    "telegram": ("😀" * 2048, "😀" * 2048 + "a"),
    "discord": ("a" * 2000, "a" * 2001),
    "slack": ("a" * 40000, "a" * 40001),
}


@pytest.fixture
async def hook() -> AsyncIterator[AdminHook]:
    h = AdminHook()
    await h.start()
    yield h
    await h.stop()


@pytest.fixture
def fast(settings: Settings, hook: AdminHook) -> Settings:
    return with_oauth_clients(settings).model_copy(update={
        "retry_base_seconds": 0.2, "lease_ttl_seconds": 3, "notify_webhook_url": hook.url})


@pytest.fixture
async def rt(fast: Settings) -> AsyncIterator[Runtime]:
    runtime = await Runtime.open(fast)
    yield runtime
    await runtime.store.client.drop_database(runtime.store.db.name)
    await runtime.close()


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_post_reaches_the_platform_once(rt: Runtime, platform: str) -> None:
    async with started(platform) as emulator, serve_api(rt) as api:
        account = await api.ok("POST", "/accounts", emulator.account(), status=201)
        assert "credentials" not in account
        job_id = await post_now(api, account["id"], f"hello from herald to {platform}")
        async with running_executor(rt):
            done = await wait_state(rt, job_id, {JobState.SUCCEEDED})
        assert [p["text"] for p in emulator.posts] == [f"hello from herald to {platform}"]
        # A Slack incoming webhook answers `ok` and nothing else: no id to keep.
        expected = None if platform == "slack" else str(emulator.posts[0]["id"])
        assert done["result"]["platform_post_id"] == expected
        assert [a["outcome"] for a in done["attempts"]] == ["succeeded"]


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_429_defers_to_the_platforms_time_without_an_attempt(
        rt: Runtime, platform: str) -> None:
    async with started(platform) as emulator, serve_api(rt) as api:
        account = await api.ok("POST", "/accounts", emulator.account(), status=201)
        job_id = await post_now(api, account["id"], "rate limited once")
        # Scripted after the post is made: checking its text may call the platform too.
        emulator.faults.rate_limit_next = 1
        emulator.faults.retry_after = 2.0
        asked = asked_wait(platform, 2.0)
        async with running_executor(rt):
            waiting = await wait_state(rt, job_id, {JobState.RETRY_WAIT})
            deferred_at = waiting["transitions"][-1]["at"]
            assert waiting["attempt_count"] == 0
            assert waiting["attempts"][-1]["outcome"] == "rate_limited"
            delay = (waiting["due_at"] - deferred_at).total_seconds()
            assert asked - 1.5 <= delay <= asked + 1.5, delay
            assert emulator.posts == []
            if asked <= 5:
                done = await wait_state(rt, job_id, {JobState.SUCCEEDED}, timeout=asked + 15)
                assert done["attempt_count"] == 0
                assert [p["text"] for p in emulator.posts] == ["rate limited once"]


@pytest.mark.parametrize("platform", REFRESHING)
async def test_an_expired_token_is_refreshed_once_and_the_post_goes_out(
        rt: Runtime, platform: str) -> None:
    async with started(platform) as emulator, serve_api(rt) as api:
        account = await api.ok("POST", "/accounts", emulator.account(), status=201)
        before = await rt.store.accounts.find_one({"_id": account["id"]})
        assert before is not None
        emulator.tokens.expire_all()
        job_id = await post_now(api, account["id"], "after a refresh")
        async with running_executor(rt):
            done = await wait_state(rt, job_id, {JobState.SUCCEEDED})
        assert emulator.tokens.refresh_calls == 1
        assert [p["text"] for p in emulator.posts] == ["after a refresh"]
        assert [a["outcome"] for a in done["attempts"]] == ["succeeded"]
        after = await rt.store.accounts.find_one({"_id": account["id"]})
        assert after is not None
        assert after["credentials_version"] == before["credentials_version"] + 1
        assert rt.box.open(after["credentials_enc"]) != rt.box.open(before["credentials_enc"])


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_credentials_refused_for_good_wait_for_the_account_to_be_fixed(
        rt: Runtime, platform: str, hook: AdminHook) -> None:
    async with started(platform) as emulator, serve_api(rt) as api:
        account = await api.ok("POST", "/accounts", emulator.account(), status=201)
        job_id = await post_now(api, account["id"], "once the account is fixed")
        emulator.tokens.refusing = True
        emulator.faults.expire_next = 1
        async with running_executor(rt):
            waiting = await wait_state(rt, job_id, {JobState.RETRY_WAIT})
            assert waiting["attempt_count"] == 0 and waiting["waiting_on"] == "account"
            stored = await api.ok("GET", f"/accounts/{account['id']}")
            assert stored["status"] == "reauth_required" and stored["status_reason"]
            assert emulator.posts == []
            assert [b["event"] for b in hook.bodies] == ["account.reauth_required"]
            assert hook.bodies[0]["account_id"] == account["id"]

            emulator.tokens.refusing = False
            again = emulator.account()
            fixed = await api.ok("PATCH", f"/accounts/{account['id']}",
                                 {"config": again["config"],
                                  "credentials": again["credentials"]})
            assert fixed["status"] == "active" and fixed["status_reason"] is None
            done = await wait_state(rt, job_id, {JobState.SUCCEEDED})
        assert [p["text"] for p in emulator.posts] == ["once the account is fixed"]
        assert done["attempt_count"] == 0


@pytest.mark.parametrize("platform", REFRESHING)
async def test_two_executors_meeting_one_expired_token_make_one_refresh_call(
        rt: Runtime, fast: Settings, platform: str) -> None:
    async with started(platform) as emulator, serve_api(rt) as api:
        account = await api.ok("POST", "/accounts", emulator.account(), status=201)
        emulator.tokens.expire_all()
        # Both calls are held at the platform until both executors have met the expired token.
        emulator.faults.delay = 0.3
        jobs = [await post_now(api, account["id"], f"one of two, {n}") for n in (1, 2)]
        other = await Runtime.open(fast.model_copy(update={"node_id": "second-executor"}))
        try:
            async with running_executor(rt, concurrency=1), _executor(other):
                for job_id in jobs:
                    await wait_state(rt, job_id, {JobState.SUCCEEDED}, timeout=30)
        finally:
            await other.close()
        assert emulator.tokens.refresh_calls == 1
        assert sorted(p["text"] for p in emulator.posts) == ["one of two, 1", "one of two, 2"]
        nodes = {(await job_doc(rt, j))["attempts"][-1]["node_id"] for j in jobs}
        assert nodes == {rt.settings.node_id, "second-executor"}


@contextlib.asynccontextmanager
async def _executor(rt: Runtime) -> AsyncIterator[Worker]:
    async with running_executor(rt, concurrency=1) as worker:
        yield worker


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_over_long_text_is_refused_at_creation_and_edit_in_the_platforms_units(
        rt: Runtime, platform: str) -> None:
    longest, too_long = LIMITS[platform]
    async with started(platform) as emulator, serve_api(rt) as api:
        account = await api.ok("POST", "/accounts", emulator.account(), status=201)
        body = {"account_ids": [account["id"]], "content": {"text": too_long},
                "schedule": {"at": at(rt, minutes=5)}}
        reply = await api.rejected("POST", "/posts", body, status=422, field="content.text")
        [detail] = reply.body["error"]["details"]
        assert detail["message"].startswith(f"{platform}: "), detail
        post = await api.ok("POST", "/posts", {**body, "content": {"text": longest}},
                            status=201)
        await api.rejected("PATCH", f"/posts/{post['id']}", {"content": {"text": too_long}},
                           status=422, field="content.text")


async def test_jobs_of_a_disabled_account_wait_and_resume_when_it_is_enabled(
        rt: Runtime) -> None:
    async with started("telegram") as emulator, serve_api(rt) as api:
        account = await api.ok("POST", "/accounts", emulator.account(), status=201)
        job_id = await post_now(api, account["id"], "after a pause")
        await api.ok("PATCH", f"/accounts/{account['id']}", {"status": "disabled"})
        async with running_executor(rt):
            waiting = await wait_state(rt, job_id, {JobState.RETRY_WAIT})
            assert waiting["waiting_on"] == "account"
            assert waiting["due_at"] - rt.clock.now_dt() > timedelta(minutes=30)
            await api.ok("PATCH", f"/accounts/{account['id']}", {"status": "active"})
            await wait_state(rt, job_id, {JobState.SUCCEEDED})
        assert [p["text"] for p in emulator.posts] == ["after a pause"]


@pytest.mark.parametrize(("platform", "settled"), [("telegram", JobState.UNCONFIRMED),
                                                   ("x", JobState.SUCCEEDED)])
async def test_a_lost_answer_is_reconciled_never_posted_again(
        rt: Runtime, platform: str, settled: JobState) -> None:
    """The platform makes the post and the connection drops before its answer. Telegram can
    neither deduplicate a retry nor be asked, so the job becomes `unconfirmed`; X can be
    searched, so the sweep finds the post. Neither is sent a second time."""
    async with started(platform) as emulator, serve_api(rt) as api:
        account = await api.ok("POST", "/accounts", emulator.account(), status=201)
        job_id = await post_now(api, account["id"], "answer lost on the way back")
        emulator.faults.drop_after_next = 1
        async with running_executor(rt):
            async with asyncio.timeout(15):
                while not (await job_doc(rt, job_id)).get("unknown_reason"):
                    await asyncio.sleep(0.05)
            left = await job_doc(rt, job_id)
            assert left["state"] == JobState.PUBLISHING and left["attempt_count"] == 0
            report = await Sweeper(rt, Publisher(rt, Notifier(rt.http, None))).sweep("light")
            done = await wait_state(rt, job_id, {settled})
        assert [p["text"] for p in emulator.posts] == ["answer lost on the way back"]
        assert sum(report["repairs"].values()) == 1, report
        assert "no answer from the platform" in done["attempts"][-1]["error"] or (
            settled == JobState.SUCCEEDED)
        if settled == JobState.SUCCEEDED:
            assert done["result"]["platform_post_id"] == str(emulator.posts[0]["id"])


async def test_xs_spent_daily_allowance_holds_the_accounts_next_posts(rt: Runtime) -> None:
    """X says with a success that the user's 24-hour allowance is spent: the account's next
    job waits for the reset X named, without spending a call on the 429."""
    async with started("x") as emulator, serve_api(rt) as api:
        account = await api.ok("POST", "/accounts", emulator.account(), status=201)
        emulator.user_day_limit = 1  # type: ignore[attr-defined]
        first = await post_now(api, account["id"], "the day's only post")
        async with running_executor(rt):
            await wait_state(rt, first, {JobState.SUCCEEDED})
            second = await post_now(api, account["id"], "tomorrow's")
            async with asyncio.timeout(15):
                while (waiting := await job_doc(rt, second))["transitions"][-1]["reason"] != (
                        "platform limit reached"):
                    await asyncio.sleep(0.05)
        assert waiting["state"] == JobState.STAGED and waiting["attempts"] == []
        assert waiting["due_at"] - rt.clock.now_dt() > timedelta(hours=23)
        assert [p["text"] for p in emulator.posts] == ["the day's only post"]


async def test_a_token_about_to_expire_is_refreshed_before_the_call(rt: Runtime) -> None:
    async with started("x") as emulator, serve_api(rt) as api:
        body = emulator.account()
        soon = (datetime.now(UTC) + timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
        body["credentials"]["expires_at"] = soon
        account = await api.ok("POST", "/accounts", body, status=201)
        job_id = await post_now(api, account["id"], "with a fresh token")
        async with running_executor(rt):
            done = await wait_state(rt, job_id, {JobState.SUCCEEDED})
        assert emulator.tokens.refresh_calls == 1
        assert [a["outcome"] for a in done["attempts"]] == ["succeeded"]
        stored = await rt.store.accounts.find_one({"_id": account["id"]})
        assert stored is not None
        assert rt.box.open(stored["credentials_enc"])["expires_at"] > soon


async def test_a_bluesky_session_rotates_and_survives_a_node_restart(
        rt: Runtime, fast: Settings) -> None:
    """Each refresh rotates the session (the old refresh token stops working); a node started
    afterwards refreshes with the stored, rotated token and never needs the app password."""
    async with started("bluesky") as emulator, serve_api(rt) as api:
        account = await api.ok("POST", "/accounts", emulator.account(), status=201)
        created = await rt.store.accounts.find_one({"_id": account["id"]})
        assert created is not None
        session = rt.box.open(created["credentials_enc"])["refresh_jwt"]
        emulator.tokens.expire_all()
        first = await post_now(api, account["id"], "before the restart")
        async with running_executor(rt):
            await wait_state(rt, first, {JobState.SUCCEEDED})
        stored = await rt.store.accounts.find_one({"_id": account["id"]})
        assert stored is not None
        rotated = rt.box.open(stored["credentials_enc"])["refresh_jwt"]
        assert rotated != session and session not in emulator.tokens.by_refresh

        restarted = await Runtime.open(fast.model_copy(update={"node_id": "restarted-node"}))
        try:
            emulator.tokens.expire_all()
            async with serve_api(restarted) as again:
                second = await post_now(again, account["id"], "after the restart")
                async with running_executor(restarted):
                    await wait_state(restarted, second, {JobState.SUCCEEDED})
        finally:
            await restarted.close()
    sessions = [c for c in emulator.calls if c.endswith("Session")]  # type: ignore[attr-defined]
    assert sessions == ["createSession", "refreshSession", "refreshSession"]
    assert [p["text"] for p in emulator.posts] == ["before the restart", "after the restart"]
