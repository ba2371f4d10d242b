"""The real DiscordProvider against the Discord webhook emulator over loopback sockets."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from shared.models import Content, Media, ThreadItem
from shared.providers.base import (
    AuthRevoked,
    MediaInfo,
    Permanent,
    Published,
    RateLimited,
    Transient,
)
from shared.providers.discord import DiscordProvider, Webhook
from tests.emulators.discord import DiscordEmulator
from tests.integration.media_threads import image, media_request, video
from tests.integration.platform_support import Serve, control, publish_request, running


@pytest.fixture
async def emulator() -> AsyncIterator[DiscordEmulator]:
    async with running(DiscordEmulator) as e:
        yield e


@pytest.fixture
def provider(session: aiohttp.ClientSession) -> DiscordProvider:
    return DiscordProvider(session)


def token_of(account: dict[str, Any]) -> str:
    return str(account["credentials"]["webhook_url"].rsplit("/", 1)[-1])


async def test_success_returns_message_id_and_url(
    provider: DiscordProvider, emulator: DiscordEmulator
) -> None:
    account = emulator.account()
    published = await provider.publish(publish_request(account, "Launch day 🚀"))

    [post] = emulator.posts
    hook = next(iter(emulator.hooks.values()))
    assert published == Published(
        post["id"], f"{emulator.base_url}/channels/{hook.guild_id}/{hook.channel_id}/{post['id']}")
    assert post["payload"] == {"content": "Launch day 🚀", "allowed_mentions": {"parse": []}}
    assert post["wait"] is True
    assert emulator.webhook_reads == 1
    # The guild id is cached per webhook: a second post makes one call, not two.
    second = await provider.publish(publish_request(account, "Day two"))
    assert second.platform_post_id == emulator.posts[1]["id"] != published.platform_post_id
    assert emulator.webhook_reads == 1


def test_message_urls_point_at_discord_com_for_discord_webhooks() -> None:
    hook = Webhook("https://discordapp.com/api/v10/webhooks/123/tok", "123", "tok")
    assert hook.web_base == "https://discord.com"
    assert Webhook("http://127.0.0.1:9/api/webhooks/1/t", "1", "t").web_base == (
        "http://127.0.0.1:9")


async def test_scheduled_post_never_pings_everyone(
    provider: DiscordProvider, emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    account = emulator.account()
    await provider.publish(publish_request(account, "@everyone the sale starts now"))
    assert emulator.posts[0]["mention_everyone"] is False
    # The same text without allowed_mentions would have pinged the whole server.
    url = account["credentials"]["webhook_url"] + "?wait=true"
    async with session.post(url, json={"content": "@everyone the sale starts now"}) as response:
        assert (await response.json())["mention_everyone"] is True


async def test_config_sets_name_avatar_and_thread(
    provider: DiscordProvider, emulator: DiscordEmulator
) -> None:
    account = emulator.account()
    published = await provider.publish(publish_request(
        account, username="Herald News", avatar_url="https://cdn.example/a.png",
        thread_id="1234567890"))
    [post] = emulator.posts
    assert post["payload"]["username"] == "Herald News"
    assert post["payload"]["avatar_url"] == "https://cdn.example/a.png"
    assert post["channel_id"] == "1234567890"
    assert published.url is not None and "/1234567890/" in published.url


async def test_429_defers_to_retry_after_in_float_seconds(
    provider: DiscordProvider, emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    account = emulator.account()
    await control(session, emulator, rate_limit_next=1, retry_after=1.25)
    before = datetime.now(UTC)
    with pytest.raises(RateLimited) as info:
        await provider.publish(publish_request(account))
    after = datetime.now(UTC)
    assert before + timedelta(seconds=1.25) <= info.value.retry_at
    assert info.value.retry_at <= after + timedelta(seconds=1.25)
    assert info.value.scope == "account"  # the webhook's bucket is exhausted
    assert emulator.posts == []
    assert (await provider.publish(publish_request(account))).platform_post_id


async def test_global_429_holds_back_the_whole_app(
    provider: DiscordProvider, emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.global_rate_limit = True
    await control(session, emulator, rate_limit_next=1, retry_after=3)
    with pytest.raises(RateLimited) as info:
        await provider.publish(publish_request(emulator.account()))
    assert info.value.scope == "app"
    assert timedelta(seconds=2) < info.value.retry_at - datetime.now(UTC) <= timedelta(seconds=3)


async def test_server_error_is_transient(
    provider: DiscordProvider, emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    account = emulator.account()
    await control(session, emulator, fail_next=1, fail_status=502)
    with pytest.raises(Transient, match="502"):
        await provider.publish(publish_request(account))
    assert emulator.posts == []
    assert (await provider.publish(publish_request(account))).platform_post_id


async def test_dropped_connections_are_transient_even_when_discord_posted(
    provider: DiscordProvider, emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    account = emulator.account()
    await control(session, emulator, drop_next=1)
    with pytest.raises(Transient):
        await provider.publish(publish_request(account))
    assert emulator.posts == []
    # The answer is lost after Discord acted: the post exists and nothing can look it up,
    # which is why an executor that dies here leaves the job unconfirmed.
    await control(session, emulator, drop_after_next=1)
    with pytest.raises(Transient) as info:
        await provider.publish(publish_request(account))
    assert len(emulator.posts) == 1
    assert token_of(account) not in str(info.value)


async def test_connection_refused_is_transient_and_secret_free(provider: DiscordProvider) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/webhooks/42/very-secret-token"
    with pytest.raises(Transient, match="unreachable") as info:
        await provider.publish(publish_request({"config": {}, "credentials": {"webhook_url": url}}))
    assert "very-secret-token" not in str(info.value)


async def test_deleted_webhook_is_revoked(
    provider: DiscordProvider, emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    account = emulator.account()
    await control(session, emulator, expire_next=1)
    with pytest.raises(AuthRevoked, match="10015") as info:
        await provider.publish(publish_request(account))
    assert token_of(account) not in str(info.value)
    await control(session, emulator, expire_tokens=True)
    with pytest.raises(AuthRevoked, match="Unknown Webhook"):
        await provider.publish(publish_request(account))
    assert emulator.posts == []
    # Patched with a new webhook, the account posts again.
    assert (await provider.publish(publish_request(emulator.account()))).platform_post_id


async def test_wrong_token_is_revoked_without_leaking_it(
    provider: DiscordProvider, emulator: DiscordEmulator
) -> None:
    account = emulator.account()
    url = account["credentials"]["webhook_url"].rsplit("/", 1)[0] + "/wrong-token-123"
    with pytest.raises(AuthRevoked, match=r"401.*50027") as info:
        await provider.publish(publish_request({"config": {}, "credentials": {"webhook_url": url}}))
    assert "wrong-token-123" not in str(info.value) and url not in str(info.value)
    assert emulator.posts == []


async def test_emulator_refuses_malformed_requests_as_discord(
    emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    url = emulator.account()["credentials"]["webhook_url"]
    async with session.post(url, json={"content": "x" * 2001}) as response:
        assert response.status == 400
        body = await response.json()
        assert body["code"] == 50035
        assert body["errors"]["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    async with session.post(url, json={"content": "   "}) as response:
        assert (response.status, (await response.json())["code"]) == (400, 50006)
    async with session.post(url, data=json.dumps({"content": "hi"})) as response:  # no JSON type
        assert (response.status, (await response.json())["code"]) == (400, 50006)
    async with session.post(url + "?wait=maybe", json={"content": "hi"}) as response:
        assert response.status == 400
    async with session.post(url, json={"content": "hi"}) as response:  # wait=false → 204
        assert response.status == 204
        assert response.headers["X-RateLimit-Limit"] == "5"
    assert [p["wait"] for p in emulator.posts] == [False]


async def test_over_long_content_is_refused_by_discord_and_permanent(
    provider: DiscordProvider, emulator: DiscordEmulator
) -> None:
    with pytest.raises(Permanent, match=r"400.*50035"):
        await provider.publish(publish_request(emulator.account(), "x" * 2001))
    assert emulator.posts == []


async def test_text_limit_is_2000_code_points(
    provider: DiscordProvider, emulator: DiscordEmulator
) -> None:
    assert await provider.check_content(Content(text="x" * 2000), {}) == []
    assert await provider.check_content(Content(text="x" * 2001), {}) == [
        ("content.text", "discord: 2001 characters, at most 2000")]
    # An emoji outside the BMP is one code point (two UTF-16 units): 2,000 of them fit.
    emoji = "😀" * 2000
    assert await provider.check_content(Content(text=emoji), {}) == []
    assert (await provider.publish(publish_request(emulator.account(), emoji))).platform_post_id


@pytest.mark.parametrize("url", [
    "https://discord.com/api/webhooks/1234567890/AbC-_9",
    "https://discordapp.com/api/webhooks/1234567890/AbC-_9",
    "https://discord.com/api/v10/webhooks/1234567890/AbC-_9/",
    "http://127.0.0.1:8123/api/webhooks/1/t",
])
def test_webhook_urls_accepted(provider: DiscordProvider, url: str) -> None:
    assert provider.validate_account({}, {"webhook_url": url}) == []


@pytest.mark.parametrize("url", [
    "https://discord.com/api/webhooks/1234567890",
    "https://discord.com/api/webhooks/abc/secret-token-x",
    "https://discord.com/api/webhooks/1/secret-token-x?thread_id=5",
    "https://hooks.slack.com/services/T1/B1/secret-token-x",
    "ftp://discord.com/api/webhooks/1/secret-token-x",
])
def test_webhook_urls_refused_without_echoing_them(provider: DiscordProvider, url: str) -> None:
    problems = provider.validate_account({}, {"webhook_url": url})
    assert [field for field, _ in problems] == ["credentials.webhook_url"]
    assert "secret-token-x" not in problems[0][1]


def test_config_is_checked(provider: DiscordProvider) -> None:
    url = {"webhook_url": "https://discord.com/api/webhooks/1/t"}
    assert provider.validate_account({"username": "Herald", "thread_id": "99"}, url) == []
    fields = {f for f, _ in provider.validate_account(
        {"username": "Discord Bot", "thread_id": "x", "channel": "general"}, url)}
    assert fields == {"config.username", "config.thread_id", "config.channel"}


async def test_429_without_body_uses_reset_after_and_scopes_the_request(
    provider: DiscordProvider, serve: Serve
) -> None:
    async def limited(_request: web.Request) -> web.Response:
        return web.Response(status=429, text="<html>slow down</html>", headers={
            "X-RateLimit-Reset-After": "7.5", "X-RateLimit-Remaining": "3",
            "Retry-After": "600"})

    base = await serve(limited)
    account = {"config": {}, "credentials": {"webhook_url": f"{base}/api/webhooks/1/tok"}}
    with pytest.raises(RateLimited) as info:
        await provider.publish(publish_request(account))
    wait = (info.value.retry_at - datetime.now(UTC)).total_seconds()
    assert 6.5 < wait <= 7.5 and info.value.scope == "request"


async def test_a_failed_guild_lookup_leaves_only_the_url_out(
    provider: DiscordProvider, serve: Serve
) -> None:
    async def webhook(request: web.Request) -> web.Response:
        if request.method == "GET":
            return web.json_response({"message": "500: Internal Server Error"}, status=500)
        return web.json_response({"id": "555", "channel_id": "777", "content": "x"})

    base = await serve(webhook)
    account = {"config": {}, "credentials": {"webhook_url": f"{base}/api/webhooks/1/tok"}}
    assert await provider.publish(publish_request(account)) == Published("555", None)


# --- media ------------------------------------------------------------------------------------


async def test_files_are_streamed_as_attachments_with_their_alt_text(
    provider: DiscordProvider, emulator: DiscordEmulator
) -> None:
    files = [image("a", alt="a lighthouse"), video("b", size=2_000_000)]
    published = await provider.publish(media_request(emulator.account(), "two files",
                                                     media=files))
    [post] = emulator.posts
    assert published.platform_post_id == post["id"]
    assert [(a["sha256"], a["size"]) for a in post["attachments"]] == [
        (f.sha256, len(f.data)) for f in files]
    assert post["attachments"][0]["description"] == "a lighthouse"
    assert "description" not in post["attachments"][1]
    assert [a["filename"] for a in post["payload"]["attachments"]] == [
        a["filename"] for a in post["attachments"]]
    assert post["payload"]["content"] == "two files"


async def test_media_without_text_is_a_message(
    provider: DiscordProvider, emulator: DiscordEmulator
) -> None:
    picture = image()
    await provider.publish(media_request(emulator.account(), "", media=[picture]))
    assert emulator.posts[0]["attachments"][0]["sha256"] == picture.sha256


async def test_a_request_over_the_upload_limit_is_refused_as_discord_does(
    provider: DiscordProvider, emulator: DiscordEmulator
) -> None:
    emulator.upload_limit = 1_000_000
    with pytest.raises(Permanent, match=r"413.*Request entity too large"):
        await provider.publish(media_request(emulator.account(), "big", media=[image(
            size=1_000_001)]))
    assert emulator.posts == []


async def test_an_upload_cut_off_sends_nothing(
    provider: DiscordProvider, emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, drop_next=1)
    with pytest.raises(Transient):
        await provider.publish(media_request(emulator.account(), "x", media=[image()]))
    assert emulator.posts == []


async def test_the_emulator_refuses_an_attachment_without_its_file(
    emulator: DiscordEmulator, session: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData()
    form.add_field("payload_json", json.dumps({"content": "x", "attachments": [{"id": 1}]}),
                   content_type="application/json")
    form.add_field("files[0]", b"bytes", filename="a.png", content_type="image/png")
    url = emulator.account()["credentials"]["webhook_url"]
    async with session.post(url, data=form) as response:
        assert response.status == 400
        assert "ATTACHMENT_NOT_FOUND" in await response.text()
    assert emulator.posts == []


async def test_media_limits_are_checked_at_scheduling(provider: DiscordProvider) -> None:
    def content(alt: str = "", n: int = 1) -> Content:
        return Content(text="x", media=[Media.model_validate({"url": "https://m.example/a",
                                                     "alt": alt}) for _ in range(n)])

    small = MediaInfo("image/png", 1000)
    assert await provider.check_content(content(), {}, [[small]]) == []
    assert await provider.check_content(content(n=11), {}, [[small] * 11]) == [
        ("content.media", "discord: 11 files, at most 10 in a message")]
    big = MediaInfo("video/mp4", 6 * 1024 * 1024)
    assert await provider.check_content(content(n=2), {}, [[big, big]]) == [
        ("content.media", "discord: 12582912 bytes of files, at most 10485760 in a message")]
    assert await provider.check_content(content("a" * 1025), {}, [[small]]) == [
        ("content.media.0.alt", "discord: 1025 characters, at most 1024")]
    threaded = Content(text="x", thread=[ThreadItem(text="y")])
    assert await provider.check_content(threaded, {}, [[], []]) == [
        ("content.thread", "discord: threads are not supported")]
