"""The real TikTokProvider against the TikTok emulator over loopback sockets: direct post by
file upload in TikTok's chunks, the publish checkpointed right after init."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from shared.models import Content
from shared.providers.base import (
    AuthExpired,
    AuthRevoked,
    MediaInfo,
    MemoryCheckpoints,
    OAuthApp,
    Permanent,
    PublishRequest,
    RateLimited,
    Transient,
)
from shared.providers.tiktok import MIN_CHUNK, TikTokProvider, chunking
from tests.emulators.tiktok import CLIENT_ID, CLIENT_SECRET, TikTokEmulator, chunk_problem
from tests.integration.platform_support import control, publish_request, running
from tests.media_support import BytesMedia

APP = OAuthApp(CLIENT_ID, CLIENT_SECRET)
REDIRECT = "https://ops.example/api/v1/oauth/callback"
MB = 1024 * 1024


def video(size: int) -> BytesMedia:
    return BytesMedia("v1", bytes((i * 7) % 256 for i in range(size)), "video/mp4",
                      duration_seconds=30.0)


@pytest.fixture
async def emulator() -> AsyncIterator[TikTokEmulator]:
    async with running(TikTokEmulator) as e:
        yield e


@pytest.fixture
def provider(session: aiohttp.ClientSession) -> TikTokProvider:
    p = TikTokProvider(session)
    p.poll_seconds = 0.05
    p.chunk_bytes = MIN_CHUNK
    return p


def request_for(emulator: TikTokEmulator, media: BytesMedia, text: str = "Hello TikTok",
                checkpoints: MemoryCheckpoints | None = None,
                privacy_level: str = "SELF_ONLY") -> PublishRequest:
    request = publish_request(emulator.account(), text, privacy_level=privacy_level)
    return dataclasses.replace(request,
                               media=[[media]], checkpoints=checkpoints or MemoryCheckpoints())


def test_chunking_follows_tiktoks_rules() -> None:
    for size in (1, 3 * MB, 5 * MB, 5 * MB + 1, 11 * MB, 64 * MB + 1, 700 * MB, 4096 * MB):
        for preferred in (MIN_CHUNK, 10 * MB, 64 * MB, 200 * MB):
            chunk, count = chunking(size, preferred)
            assert chunk_problem(size, chunk, count) == "", (size, preferred, chunk, count)


async def test_small_video_is_one_chunk_bytes_intact(provider: TikTokProvider,
                                                     emulator: TikTokEmulator) -> None:
    media = video(3 * MB)
    request = request_for(emulator, media, "one chunk", privacy_level="PUBLIC_TO_EVERYONE")
    published = await provider.publish(request)

    [post] = emulator.posts
    assert post["sha256"] == media.sha256 and post["text"] == "one chunk"
    assert published.platform_post_id == post["id"]
    assert published.url is not None and published.url.endswith(f"/video/{post['id']}")
    saved = request.checkpoints.get("tiktok_publish")
    assert saved["publish_id"] == post["publish_id"] and saved["chunk_count"] == 1


async def test_chunked_upload_resumes_after_a_cut_without_a_second_init(
        provider: TikTokProvider, emulator: TikTokEmulator,
        session: aiohttp.ClientSession) -> None:
    media = video(11 * MB + 123)
    async with session.post(f"{emulator.base_url}/_faults", json={"cut_next_chunk": 1}) as r:
        assert r.status == 200 and (await r.json())["cut_next_chunk"] == 1
    request = request_for(emulator, media)
    published = await provider.publish(request)

    assert emulator.cut_next_chunk == 0
    [post] = emulator.posts
    assert post["sha256"] == hashlib.sha256(media.data).hexdigest()
    assert emulator.init_calls == 1
    assert published.platform_post_id is None  # SELF_ONLY: TikTok names no public post


async def test_killed_after_init_is_reconciled_by_status_never_a_second_init(
        provider: TikTokProvider, emulator: TikTokEmulator) -> None:
    media = video(6 * MB)
    request = request_for(emulator, media, privacy_level="PUBLIC_TO_EVERYONE")
    # Every chunk fails: the publish gives up after its interruptions, after init.
    emulator.fail_next_chunk = 10
    with pytest.raises(Transient, match="interrupted"):
        await provider.publish(request)
    assert emulator.init_calls == 1 and emulator.posts == []
    assert await provider.lookup(request, datetime.now(UTC)) is None

    emulator.fail_next_chunk = 0
    again = await provider.publish(request)
    assert emulator.init_calls == 1
    [post] = emulator.posts
    assert post["sha256"] == media.sha256 and again.platform_post_id == post["id"]
    found = await provider.lookup(request, datetime.now(UTC))
    assert found == again


async def test_failed_publish_is_permanent(provider: TikTokProvider,
                                           emulator: TikTokEmulator) -> None:
    emulator.fail_next_publish = 1
    with pytest.raises(Permanent, match="video_pull_failed"):
        await provider.publish(request_for(emulator, video(MB)))


async def test_privacy_level_must_be_the_creators(provider: TikTokProvider,
                                                  emulator: TikTokEmulator) -> None:
    emulator.privacy_options = ["SELF_ONLY"]
    with pytest.raises(Permanent, match="PUBLIC_TO_EVERYONE is not allowed"):
        await provider.publish(request_for(emulator, video(MB),
                                           privacy_level="PUBLIC_TO_EVERYONE"))
    assert emulator.init_calls == 0


async def test_errors_are_mapped(provider: TikTokProvider, emulator: TikTokEmulator,
                                 session: aiohttp.ClientSession) -> None:
    await control(session, emulator, rate_limit_next=1, retry_after=30)
    with pytest.raises(RateLimited) as info:
        await provider.publish(request_for(emulator, video(MB)))
    assert info.value.retry_at.timestamp() >= datetime.now(UTC).timestamp() + 28
    await control(session, emulator, expire_next=1)
    with pytest.raises(AuthExpired):
        await provider.publish(request_for(emulator, video(MB)))
    await control(session, emulator, fail_next=1, fail_status=500)
    with pytest.raises(Transient):
        await provider.publish(request_for(emulator, video(MB)))


async def test_limits_at_check_content(provider: TikTokProvider) -> None:
    assert await provider.check_content(Content(text="text only"), {}) == [
        ("content.media", "tiktok: a post needs a video")]
    problems = await provider.check_content(Content(text="x"), {}, [[
        MediaInfo("image/jpeg", 100), MediaInfo("video/x-msvideo", 100)]])
    assert [f for f, _ in problems] == ["content.media", "content.media.0", "content.media.1"]
    long = await provider.check_content(Content(text="😀" * 1101), {},
                                        [[MediaInfo("video/mp4", 100)]])
    assert long == [("content.text", "tiktok: 2202 UTF-16 code units, at most 2200")]


async def test_connect_and_refresh(provider: TikTokProvider, emulator: TikTokEmulator,
                                   session: aiohttp.ClientSession) -> None:
    config = {"api_base": emulator.base_url, "auth_base": emulator.base_url}
    url = provider.authorization_url(config, APP, REDIRECT, "st", "unused")
    query = parse_qs(urlsplit(url).query)
    assert query["client_key"] == [CLIENT_ID] and query["scope"] == [
        "user.info.basic,video.publish"]
    async with session.get(url, allow_redirects=False) as page:
        assert page.status == 302
        back = parse_qs(urlsplit(page.headers["Location"]).query)
    connected = await provider.exchange_code(config, APP, REDIRECT, back["code"][0], "unused")
    credentials = connected.credentials
    assert credentials["open_id"].startswith("open-") and credentials["refresh_token"]

    refreshed = await provider.refresh(config, credentials, APP)
    assert refreshed["refresh_token"] != credentials["refresh_token"]  # rotated
    with pytest.raises(AuthRevoked):
        await provider.refresh(config, credentials, APP)  # the old one is spent
    with pytest.raises(Permanent, match="invalid_grant"):
        await provider.exchange_code(config, APP, REDIRECT, back["code"][0], "unused")
