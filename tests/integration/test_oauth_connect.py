"""Connecting accounts through OAuth, through the admin API against each platform's emulator:
connect → the platform's authorization page → the callback → an account → a post published.
The state works once, expires, and a refusal anywhere stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from shared.config import Settings
from shared.models import JobState
from shared.runtime import Runtime
from tests.emulators.platform import PlatformEmulator
from tests.integration.api_support import Api, Reply, serve_api, snapshot
from tests.integration.pipeline_support import running_executor, wait_state
from tests.integration.platform_support import post_now, started, with_oauth_clients

OAUTH = ["x", "linkedin", "mastodon", "facebook"]
#: Platforms whose posts need media (publishing them is tested with the providers): connected
#: through the same flow, the account checked instead of a text post.
OAUTH_MEDIA = ["instagram", "tiktok", "youtube"]
#: Config keys an emulator's ready-made account has that the platform supplies on connect.
SUPPLIED_BY_PLATFORM = {"author_urn", "ig_user_id"}


@pytest.fixture
async def runtime_oauth(settings: Settings) -> AsyncIterator[Runtime]:
    rt = await Runtime.open(with_oauth_clients(settings))
    yield rt
    await rt.store.client.drop_database(rt.store.db.name)
    await rt.close()


def connect_body(api: Api, emulator: PlatformEmulator, platform: str) -> dict[str, Any]:
    config = {k: v for k, v in emulator.account()["config"].items()
              if k not in SUPPLIED_BY_PLATFORM}
    if platform != "mastodon":
        config["auth_base"] = emulator.base_url
    redirect_uri = str(api.client.make_url("/api/v1/oauth/callback"))
    return {"platform": platform, "name": f"connected-{platform}", "config": config,
            "redirect_uri": redirect_uri}


async def authorize(url: str) -> dict[str, str]:
    """Play the browser at the platform's authorization page (which approves at once): the
    query the platform sends back to the redirect URI."""
    async with aiohttp.ClientSession() as browser, browser.get(
            url, allow_redirects=False) as page:
        assert page.status in (302, 303), (page.status, await page.text())
        location = page.headers["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def callback(api: Api, params: dict[str, str]) -> Reply:
    return await api.call("GET", "/oauth/callback", token=None, params=params)


@pytest.mark.parametrize("platform", OAUTH)
async def test_connect_authorize_callback_then_publish(runtime_oauth: Runtime,
                                                      platform: str) -> None:
    rt = runtime_oauth
    async with started(platform) as emulator, serve_api(rt) as api:
        started_ = await api.ok("POST", "/accounts/connect",
                                connect_body(api, emulator, platform), status=201)
        query = parse_qs(urlsplit(started_["authorize_url"]).query)
        assert query["state"] == [started_["state"]]
        assert query["redirect_uri"] == [connect_body(api, emulator, platform)["redirect_uri"]]
        assert "client_id" in query
        if platform in ("x", "mastodon"):
            assert query["code_challenge_method"] == ["S256"]
            assert len(query["code_challenge"][0]) == 43
        assert await rt.store.accounts.count_documents({}) == 0

        back = await authorize(started_["authorize_url"])
        assert back["state"] == started_["state"]
        reply = await callback(api, back)
        assert reply.status == 200, reply.body
        account = reply.body["account"]
        assert account["platform"] == platform and account["status"] == "active"
        assert "credentials" not in account and "access_token" not in reply.text

        again = await callback(api, back)
        assert again.status == 400 and again.body["error"]["code"] == "invalid_state"

        job_id = await post_now(api, account["id"], f"connected through OAuth to {platform}")
        async with running_executor(rt):
            await wait_state(rt, job_id, {JobState.SUCCEEDED})
        assert [p["text"] for p in emulator.posts] == [f"connected through OAuth to {platform}"]


@pytest.mark.parametrize("platform", OAUTH_MEDIA)
async def test_visual_platforms_connect_through_the_callback(runtime_oauth: Runtime,
                                                            platform: str) -> None:
    rt = runtime_oauth
    async with started(platform) as emulator, serve_api(rt) as api:
        body = connect_body(api, emulator, platform)
        started_ = await api.ok("POST", "/accounts/connect", body, status=201)
        query = parse_qs(urlsplit(started_["authorize_url"]).query)
        assert query["state"] == [started_["state"]]
        assert query["redirect_uri"] == [body["redirect_uri"]]

        reply = await callback(api, await authorize(started_["authorize_url"]))
        assert reply.status == 200, reply.body
        account = reply.body["account"]
        assert account["platform"] == platform and account["status"] == "active"
        assert "access_token" not in reply.text
        stored = await rt.store.accounts.find_one({"_id": account["id"]})
        assert stored is not None
        credentials = rt.box.open(stored["credentials_enc"])
        assert emulator.tokens.check(credentials["access_token"]) == "ok"
        expected = emulator.account()["config"]
        assert {k: account["config"][k] for k in expected} == expected


async def test_mastodon_registers_herald_once_per_instance(runtime_oauth: Runtime) -> None:
    rt = runtime_oauth
    async with started("mastodon") as emulator, serve_api(rt) as api:
        for _ in range(2):
            await api.ok("POST", "/accounts/connect", connect_body(api, emulator, "mastodon"),
                         status=201)
        [app] = await rt.store.oauth_apps.find().to_list()
        assert app["api_base"] == emulator.base_url
        assert "client_secret" not in app and rt.box.open(app["client_enc"])["client_secret"]


async def test_a_bad_callback_stores_nothing(runtime_oauth: Runtime) -> None:
    rt = runtime_oauth
    async with started("x") as emulator, serve_api(rt) as api:
        body = connect_body(api, emulator, "x")

        unknown = await callback(api, {"state": "no-such-state", "code": "c"})
        assert unknown.status == 400 and unknown.body["error"]["code"] == "invalid_state"

        declined = await api.ok("POST", "/accounts/connect", body, status=201)
        reply = await callback(api, {"state": declined["state"], "error": "access_denied",
                                     "error_description": "The user declined"})
        assert reply.status == 400 and "access_denied" in reply.body["error"]["message"]

        refused = await api.ok("POST", "/accounts/connect", body, status=201)
        await authorize(refused["authorize_url"])
        reply = await callback(api, {"state": refused["state"], "code": "not-a-real-code"})
        assert reply.status == 400 and reply.body["error"]["code"] == "exchange_failed"

        stale = await api.ok("POST", "/accounts/connect", body, status=201)
        back = await authorize(stale["authorize_url"])
        await rt.store.oauth_states.update_one(
            {"_id": stale["state"]}, {"$set": {"expires_at": rt.clock.now_dt()
                                                - timedelta(seconds=1)}})
        reply = await callback(api, back)
        assert reply.status == 400 and "expired" in reply.body["error"]["message"]

        assert (await snapshot(rt))["accounts"] == []


async def test_connect_is_refused_without_the_installations_client(runtime: Runtime) -> None:
    async with started("linkedin") as emulator, serve_api(runtime) as api:
        reply = await api.rejected("POST", "/accounts/connect",
                                   connect_body(api, emulator, "linkedin"), status=422,
                                   field="platform")
        assert "HERALD_LINKEDIN_CLIENT_ID" in reply.body["error"]["details"][0]["message"]
        telegram = await api.rejected("POST", "/accounts/connect", {
            **connect_body(api, emulator, "linkedin"), "platform": "telegram", "config": {}},
            status=422, field="platform")
        assert "POST /accounts" in telegram.body["error"]["details"][0]["message"]


async def test_reconnecting_an_account_through_oauth_resumes_its_waiting_jobs(
        runtime_oauth: Runtime) -> None:
    rt = runtime_oauth
    async with started("x") as emulator, serve_api(rt) as api:
        first = await api.ok("POST", "/accounts/connect", connect_body(api, emulator, "x"),
                             status=201)
        account = (await callback(api, await authorize(first["authorize_url"]))).body["account"]
        job_id = await post_now(api, account["id"], "after reconnecting")
        emulator.tokens.refusing = True
        emulator.faults.expire_next = 1
        async with running_executor(rt):
            await wait_state(rt, job_id, {JobState.RETRY_WAIT})
            assert (await api.ok("GET", f"/accounts/{account['id']}"))["status"] == (
                "reauth_required")

            wrong = await api.call("POST", "/accounts/connect", {
                **connect_body(api, emulator, "linkedin"), "account_id": account["id"]})
            assert wrong.status == 422, wrong.body
            again = await api.ok("POST", "/accounts/connect", {
                "platform": "x", "account_id": account["id"], "config": {},
                "redirect_uri": connect_body(api, emulator, "x")["redirect_uri"]}, status=201)
            emulator.tokens.refusing = False
            reply = await callback(api, await authorize(again["authorize_url"]))
            assert reply.status == 200, reply.body
            assert reply.body["account"]["id"] == account["id"]
            assert reply.body["account"]["status"] == "active"
            assert reply.body["account"]["name"] == account["name"]
            await wait_state(rt, job_id, {JobState.SUCCEEDED})
        assert await rt.store.accounts.count_documents({}) == 1
        assert [p["text"] for p in emulator.posts] == ["after reconnecting"]
