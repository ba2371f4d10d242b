"""The real SlackProvider against the Slack incoming-webhook emulator over loopback sockets."""

from __future__ import annotations

import dataclasses
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
from shared.providers.slack import SlackProvider, escape
from tests.emulators.slack import SlackEmulator
from tests.integration.media_threads import image, media_request
from tests.integration.platform_support import Serve, control, publish_request, running
from tests.media_support import BytesMedia


@pytest.fixture
async def emulator() -> AsyncIterator[SlackEmulator]:
    async with running(SlackEmulator) as e:
        yield e


@pytest.fixture
def provider(session: aiohttp.ClientSession) -> SlackProvider:
    return SlackProvider(session)


def with_url(url: str) -> dict[str, Any]:
    return {"config": {}, "credentials": {"webhook_url": url}}


def secret_of(account: dict[str, Any]) -> str:
    return str(account["credentials"]["webhook_url"].rsplit("/", 1)[-1])


async def test_success_has_no_id_or_url(provider: SlackProvider, emulator: SlackEmulator) -> None:
    account = emulator.account()
    published = await provider.publish(publish_request(account, "Launch day 🚀"))
    assert published == Published(None, None)
    [post] = emulator.posts
    assert post["payload"] == {"text": "Launch day 🚀"}
    assert post["hook"] == next(iter(emulator.hooks.values())).hook_id


async def test_control_characters_are_escaped_and_shown_as_written(
    provider: SlackProvider, emulator: SlackEmulator
) -> None:
    text = "Deploy <!channel> & see <https://x.example|here>: 5 > 3"
    await provider.publish(publish_request(emulator.account(), text))
    [post] = emulator.posts
    assert post["text"] == ("Deploy &lt;!channel&gt; &amp; see "
                            "&lt;https://x.example|here&gt;: 5 &gt; 3")
    assert post["shown"] == text


async def test_429_defers_to_retry_after_seconds_for_the_account(
    provider: SlackProvider, emulator: SlackEmulator, session: aiohttp.ClientSession
) -> None:
    account = emulator.account()
    await control(session, emulator, rate_limit_next=1, retry_after=2)
    before = datetime.now(UTC)
    with pytest.raises(RateLimited, match="429") as info:
        await provider.publish(publish_request(account))
    assert before + timedelta(seconds=2) <= info.value.retry_at
    assert info.value.retry_at <= datetime.now(UTC) + timedelta(seconds=2)
    assert info.value.scope == "account"
    assert emulator.posts == []
    assert await provider.publish(publish_request(account)) == Published()


async def test_server_error_is_transient(
    provider: SlackProvider, emulator: SlackEmulator, session: aiohttp.ClientSession
) -> None:
    account = emulator.account()
    await control(session, emulator, fail_next=1, fail_status=500)
    with pytest.raises(Transient, match="500: rollup_error"):
        await provider.publish(publish_request(account))
    assert emulator.posts == []


async def test_dropped_connections_are_transient_even_when_slack_posted(
    provider: SlackProvider, emulator: SlackEmulator, session: aiohttp.ClientSession
) -> None:
    account = emulator.account()
    await control(session, emulator, drop_next=1)
    with pytest.raises(Transient):
        await provider.publish(publish_request(account))
    assert emulator.posts == []
    await control(session, emulator, drop_after_next=1)
    with pytest.raises(Transient) as info:
        await provider.publish(publish_request(account))
    assert len(emulator.posts) == 1  # posted, answer lost: nothing can confirm it
    assert secret_of(account) not in str(info.value)


async def test_connection_refused_is_transient_and_secret_free(provider: SlackProvider) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T1/B1/verysecret42"
    with pytest.raises(Transient, match="unreachable") as info:
        await provider.publish(publish_request(with_url(url)))
    assert "verysecret42" not in str(info.value)


async def test_removed_webhook_is_revoked(
    provider: SlackProvider, emulator: SlackEmulator, session: aiohttp.ClientSession
) -> None:
    account = emulator.account()
    await control(session, emulator, expire_next=1)
    with pytest.raises(AuthRevoked, match="404: no_service") as info:
        await provider.publish(publish_request(account))
    assert secret_of(account) not in str(info.value)
    await control(session, emulator, expire_tokens=True)
    with pytest.raises(AuthRevoked, match="no_service"):
        await provider.publish(publish_request(account))
    assert emulator.posts == []
    assert await provider.publish(publish_request(emulator.account())) == Published()


async def test_wrong_secret_is_revoked_without_leaking_it(
    provider: SlackProvider, emulator: SlackEmulator
) -> None:
    url = emulator.account()["credentials"]["webhook_url"].rsplit("/", 1)[0] + "/wrongsecret99"
    with pytest.raises(AuthRevoked, match="403: invalid_token") as info:
        await provider.publish(publish_request(with_url(url)))
    assert "wrongsecret99" not in str(info.value)
    assert emulator.posts == []


async def test_emulator_refuses_malformed_requests_as_slack(
    emulator: SlackEmulator, session: aiohttp.ClientSession
) -> None:
    url = emulator.account()["credentials"]["webhook_url"]

    async def answer(**kwargs: Any) -> tuple[int, str]:
        async with session.post(url, **kwargs) as response:
            return response.status, await response.text()

    assert await answer(data="not json") == (400, "invalid_payload")
    assert await answer(json={"text": 5}) == (400, "invalid_payload")
    assert await answer(json={"text": "  "}) == (400, "no_text")
    assert await answer(json={"text": "x", "attachments": [{}] * 101}) == (
        400, "too_many_attachments")
    head, _, _ = url.rpartition("/services/")
    assert await answer() == (400, "invalid_payload")
    async with session.post(f"{head}/services/T0/B0/abc", json={"text": "x"}) as response:
        assert (response.status, await response.text()) == (404, "no_service")
    # Slack also takes a form with payload=<json>.
    assert await answer(data={"payload": json.dumps({"text": "form"})}) == (200, "ok")
    assert [p["text"] for p in emulator.posts] == ["form"]


async def test_slack_truncates_what_herald_refuses_first(
    provider: SlackProvider, emulator: SlackEmulator, session: aiohttp.ClientSession
) -> None:
    url = emulator.account()["credentials"]["webhook_url"]
    async with session.post(url, json={"text": "x" * 40_001}) as response:
        assert (response.status, await response.text()) == (200, "ok")
    assert emulator.posts[0]["truncated"] is True and len(emulator.posts[0]["text"]) == 40_000
    assert await provider.check_content(Content(text="x" * 40_001), {}) == [
        ("content.text", "slack: 40001 characters, at most 40000")]


async def test_text_limit_counts_characters_as_sent(
    provider: SlackProvider, emulator: SlackEmulator
) -> None:
    assert await provider.check_content(Content(text="x" * 40_000), {}) == []
    assert await provider.check_content(Content(text="&" * 8_000), {}) == []  # 8,000 "&amp;"
    assert await provider.check_content(Content(text="&" * 8_001), {}) == [
        ("content.text", "slack: 40005 characters, at most 40000")]
    await provider.publish(publish_request(emulator.account(), "<" * 8_000))
    assert emulator.posts[0]["truncated"] is False
    assert emulator.posts[0]["shown"] == "<" * 8_000


def test_escape_touches_only_the_three_characters() -> None:
    assert escape("a & b < c > d \"q\" 'r' &amp;") == (
        "a &amp; b &lt; c &gt; d \"q\" 'r' &amp;amp;")


@pytest.mark.parametrize("url", [
    "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/abcdefABCDEF012345678901",
    "http://127.0.0.1:8123/services/T1/B2/abc/",
])
def test_webhook_urls_accepted(provider: SlackProvider, url: str) -> None:
    assert provider.validate_account({}, {"webhook_url": url}) == []


@pytest.mark.parametrize("url", [
    "https://hooks.slack.com/services/T0123/B0456",
    "https://hooks.slack.com/services/T0123/B0456/secretvalue7?x=1",
    "https://hooks.slack.com/workflows/T0123/A0456/123/secretvalue7",
    "https://discord.com/api/webhooks/1/secretvalue7",
])
def test_webhook_urls_refused_without_echoing_them(provider: SlackProvider, url: str) -> None:
    problems = provider.validate_account({}, {"webhook_url": url})
    assert [field for field, _ in problems] == ["credentials.webhook_url"]
    assert "secretvalue7" not in problems[0][1]


def test_config_takes_nothing(provider: SlackProvider) -> None:
    url = {"webhook_url": "https://hooks.slack.com/services/T1/B2/abc"}
    assert provider.validate_account({}, url) == []
    assert [f for f, _ in provider.validate_account({"channel": "#general"}, url)] == [
        "config.channel"]


@pytest.mark.parametrize(("status", "code", "error"), [
    (400, "invalid_payload", Permanent),
    (400, "user_not_found", Permanent),
    (403, "action_prohibited", AuthRevoked),
    (404, "channel_not_found", AuthRevoked),
    (410, "channel_is_archived", AuthRevoked),
    (503, "service_unavailable", Transient),
])
async def test_slack_answers_are_mapped(
    provider: SlackProvider, serve: Serve,
    status: int, code: str, error: type[Exception],
) -> None:
    async def answer(_request: web.Request) -> web.Response:
        return web.Response(status=status, text=code)

    base = await serve(answer)
    with pytest.raises(error, match=f"{status}: {code}") as info:
        await provider.publish(publish_request(with_url(f"{base}/services/T1/B2/hookkey7")))
    assert type(info.value) is error
    assert "hookkey7" not in str(info.value)


# --- media ------------------------------------------------------------------------------------


async def served(serve: Serve, *files: BytesMedia) -> list[BytesMedia]:
    """The files with public URLs on a loopback server, as the media store's signed URLs."""
    by_id = {f.id: f for f in files}

    async def public(request: web.Request) -> web.Response:
        found = by_id.get(request.path.rsplit("/", 1)[-1])
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found.data, content_type=found.content_type)

    base = await serve(public)
    return [dataclasses.replace(f, url=f"{base}/public/media/{f.id}") for f in files]


async def test_images_are_blocks_slack_downloads_intact(
    provider: SlackProvider, emulator: SlackEmulator, serve: Serve
) -> None:
    files = await served(serve, image("a", alt="a lighthouse", content_type="image/jpeg"),
                         image("b"))
    request = media_request(emulator.account(), "two <images> & text", media=files)
    assert await provider.publish(request) == Published(None, None)
    [post] = emulator.posts
    assert post["payload"]["blocks"] == [
        {"type": "section", "text": {"type": "mrkdwn", "text": "two &lt;images&gt; &amp; text"}},
        {"type": "image", "image_url": files[0].url, "alt_text": "a lighthouse"},
        {"type": "image", "image_url": files[1].url, "alt_text": "image"}]
    assert [i["sha256"] for i in post["images"]] == [f.sha256 for f in files]
    assert post["shown"] == "two <images> & text"


async def test_an_image_slack_cannot_download_is_refused(
    provider: SlackProvider, emulator: SlackEmulator, serve: Serve
) -> None:
    [picture] = await served(serve, image())
    gone = dataclasses.replace(picture, url=picture.url.replace("/img", "/missing"))
    with pytest.raises(Permanent, match="invalid_blocks"):
        await provider.publish(media_request(emulator.account(), "", media=[gone]))
    assert emulator.posts == []


async def test_without_public_urls_media_is_refused_at_scheduling(
    provider: SlackProvider,
) -> None:
    content = Content(text="x", media=[Media.model_validate({"url": "https://m.example/a"})])
    png = MediaInfo("image/png", 1000)
    assert not provider.public_media_urls
    assert await provider.check_content(content, {}, [[png]]) == [
        ("content.media", "slack: images are shown from a public URL, and this installation "
                          "has none (set HERALD_PUBLIC_BASE_URL)")]
    provider.public_media_urls = True
    assert await provider.check_content(content, {}, [[png]]) == []
    assert await provider.check_content(content, {}, [[MediaInfo("video/mp4", 10)]]) == [
        ("content.media.0", "slack: video is not supported (an incoming webhook shows images "
                            "only)")]
    assert await provider.check_content(content, {}, [[MediaInfo("image/webp", 10)]]) == [
        ("content.media.0", "slack: image/webp is not an image Slack shows (PNG, JPEG, GIF)")]
    long = Content(text="&" * 601, media=content.media)
    assert await provider.check_content(long, {}, [[png]]) == [
        ("content.text", "slack: 3005 characters, at most 3000 beside images")]
    assert await provider.check_content(Content(text="&" * 601), {}, [[]]) == []
    threaded = Content(text="x", thread=[ThreadItem(text="y")])
    assert await provider.check_content(threaded, {}, [[], []]) == [
        ("content.thread", "slack: threads are not supported")]
