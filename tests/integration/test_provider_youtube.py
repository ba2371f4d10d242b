"""The real YouTubeProvider against the YouTube emulator over loopback sockets: the resumable
upload protocol, the session checkpointed before the first byte."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
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
from shared.providers.youtube import CHUNK_UNIT, YouTubeProvider, next_quota_day
from tests.emulators.platform import s256
from tests.emulators.youtube import CLIENT_ID, CLIENT_SECRET, YouTubeEmulator
from tests.integration.platform_support import control, running
from tests.media_support import BytesMedia

APP = OAuthApp(CLIENT_ID, CLIENT_SECRET)
REDIRECT = "https://ops.example/api/v1/oauth/callback"
VERIFIER = "v" * 50


def video(size: int) -> BytesMedia:
    return BytesMedia("v1", bytes((i * 13) % 256 for i in range(size)), "video/mp4",
                      duration_seconds=61.0)


@pytest.fixture
async def emulator() -> AsyncIterator[YouTubeEmulator]:
    async with running(YouTubeEmulator) as e:
        yield e


@pytest.fixture
def provider(session: aiohttp.ClientSession) -> YouTubeProvider:
    p = YouTubeProvider(session)
    p.chunk_bytes = 2 * CHUNK_UNIT
    return p


def request_for(emulator: YouTubeEmulator, media: BytesMedia, *, title: str = "A video",
                text: str = "Its description", account: dict[str, Any] | None = None,
                checkpoints: MemoryCheckpoints | None = None) -> PublishRequest:
    account = account or emulator.account()
    return PublishRequest(
        job_id="job-1", post_id="post-1", account_id="acct-1",
        scheduled_for=datetime.now(UTC), content=Content(text=text, title=title),
        config=account["config"], credentials=account["credentials"],
        checkpoints=checkpoints or MemoryCheckpoints(), media=[[media]])


async def test_upload_in_chunks_gives_the_video_bytes_intact(
        provider: YouTubeProvider, emulator: YouTubeEmulator) -> None:
    media = video(5 * CHUNK_UNIT + 1000)
    request = request_for(emulator, media, title="Launch", text="Watch the launch")
    published = await provider.publish(request)

    [post] = emulator.posts
    assert post["sha256"] == media.sha256 and post["size"] == len(media.data)
    assert post["title"] == "Launch" and post["text"] == "Watch the launch"
    assert post["privacy"] == "private"
    assert published.platform_post_id == post["id"]
    assert published.url == f"https://www.youtube.com/watch?v={post['id']}"
    saved = request.checkpoints.get("youtube_upload")
    assert saved["session"].startswith(emulator.base_url) and saved["final_sent"] is True


async def test_interrupted_chunks_resume_from_the_sessions_range(
        provider: YouTubeProvider, emulator: YouTubeEmulator,
        session: aiohttp.ClientSession) -> None:
    media = video(7 * CHUNK_UNIT + 5)
    async with session.post(f"{emulator.base_url}/_faults",
                            json={"cut_next_chunk": 1, "fail_next_chunk": 1}) as r:
        assert r.status == 200
    async with session.post(f"{emulator.base_url}/_faults", json={"cut": 1}) as r:
        assert r.status == 400  # only the emulator's own faults
    await provider.publish(request_for(emulator, media))
    assert emulator.cut_next_chunk == 0 and emulator.fail_next_chunk == 0
    [post] = emulator.posts
    assert post["sha256"] == media.sha256
    assert len(emulator.sessions) == 1


async def test_a_retry_resumes_the_saved_session_and_never_uploads_twice(
        provider: YouTubeProvider, emulator: YouTubeEmulator) -> None:
    media = video(6 * CHUNK_UNIT)
    request = request_for(emulator, media)
    emulator.fail_next_chunk = 10
    with pytest.raises(Transient, match="interrupted"):
        await provider.publish(request)
    assert emulator.posts == [] and len(emulator.sessions) == 1
    assert await provider.lookup(request, datetime.now(UTC)) is None

    emulator.fail_next_chunk = 0
    emulator.lose_final_answer = 1
    # The final chunk's answer is lost: the probe finds the video.
    published = await provider.publish(request)
    [post] = emulator.posts
    assert published.platform_post_id == post["id"] and post["sha256"] == media.sha256
    assert len(emulator.sessions) == 1
    assert await provider.lookup(request, datetime.now(UTC)) == published
    assert await provider.publish(request) == published
    assert len(emulator.posts) == 1


async def test_a_session_gone_before_the_last_byte_starts_a_new_one(
        provider: YouTubeProvider, emulator: YouTubeEmulator) -> None:
    media = video(4 * CHUNK_UNIT)
    request = request_for(emulator, media)
    emulator.fail_next_chunk = 10
    with pytest.raises(Transient):
        await provider.publish(request)
    emulator.fail_next_chunk = 0
    emulator.expire_session(request.checkpoints.get("youtube_upload")["session"].split(
        "upload_id=")[1])
    await provider.publish(request)
    assert len(emulator.sessions) == 2 and len(emulator.posts) == 1
    assert emulator.posts[0]["sha256"] == media.sha256


async def test_a_session_gone_after_the_last_byte_stays_unknown(
        provider: YouTubeProvider, emulator: YouTubeEmulator) -> None:
    media = video(CHUNK_UNIT)
    checkpoints = MemoryCheckpoints()
    request = request_for(emulator, media, checkpoints=checkpoints)
    await provider.publish(request)
    saved = checkpoints.get("youtube_upload")
    emulator.expire_session(saved["session"].split("upload_id=")[1])
    with pytest.raises(Transient, match="cannot be told"):
        await provider.lookup(request, datetime.now(UTC))
    with pytest.raises(Transient, match="cannot be told"):
        await provider.publish(request)
    assert len(emulator.sessions) == 1 and len(emulator.posts) == 1


async def test_errors_are_mapped(provider: YouTubeProvider, emulator: YouTubeEmulator,
                                 session: aiohttp.ClientSession) -> None:
    media = video(CHUNK_UNIT)
    emulator.daily_inserts = 1
    account = emulator.account()
    await provider.publish(request_for(emulator, media, account=account))
    with pytest.raises(RateLimited) as info:
        await provider.publish(request_for(emulator, media, account=account))
    assert info.value.scope == "app"
    assert info.value.retry_at == next_quota_day(datetime.now(UTC))
    emulator.daily_inserts = 100
    emulator.channel_uploads = 1
    with pytest.raises(RateLimited) as info:
        await provider.publish(request_for(emulator, media, account=account))
    assert info.value.scope == "account"
    assert info.value.retry_at > datetime.now(UTC) + timedelta(hours=23)
    emulator.channel_uploads = 1000
    await control(session, emulator, rate_limit_next=1, retry_after=20)
    with pytest.raises(RateLimited) as info:
        await provider.publish(request_for(emulator, media))
    assert info.value.scope == "request"
    await control(session, emulator, expire_next=1)
    with pytest.raises(AuthExpired):
        await provider.publish(request_for(emulator, media))
    with pytest.raises(Permanent, match="invalidTitle"):
        await provider.publish(request_for(emulator, media, title="<b>bold</b>"))


def test_next_quota_day_is_midnight_pacific() -> None:
    now = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)  # 12:00 PST
    assert next_quota_day(now) == datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    summer = datetime(2026, 7, 1, 6, 59, tzinfo=UTC)  # 23:59 PDT
    assert next_quota_day(summer) == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)


async def test_limits_at_check_content(provider: YouTubeProvider) -> None:
    mp4 = [[MediaInfo("video/mp4", 1000)]]
    assert await provider.check_content(Content(text="d", title="t"), {}, mp4) == []
    problems = await provider.check_content(Content(text="no title <b>"), {}, [])
    assert {f for f, _ in problems} == {"content.title", "content.text", "content.media"}
    long = await provider.check_content(Content(text="é" * 2501, title="x" * 101), {}, mp4)
    assert long == [("content.text", "youtube: 5002 UTF-8 bytes, at most 5000"),
                    ("content.title", "youtube: 101 characters, at most 100")]
    image = await provider.check_content(Content(text="d", title="t"), {},
                                         [[MediaInfo("image/jpeg", 10)]])
    assert image == [("content.media.0", "youtube: image/jpeg is not a video")]


async def test_connect_and_refresh(provider: YouTubeProvider, emulator: YouTubeEmulator,
                                   session: aiohttp.ClientSession) -> None:
    config = {"auth_base": emulator.base_url, "token_base": emulator.base_url}
    url = provider.authorization_url(config, APP, REDIRECT, "st", s256(VERIFIER))
    query = parse_qs(urlsplit(url).query)
    assert query["access_type"] == ["offline"] and query["code_challenge_method"] == ["S256"]
    async with session.get(url, allow_redirects=False) as page:
        assert page.status == 302
        back = parse_qs(urlsplit(page.headers["Location"]).query)
    connected = await provider.exchange_code(config, APP, REDIRECT, back["code"][0], VERIFIER)
    credentials = connected.credentials
    assert credentials["refresh_token"] and credentials["expires_at"]

    refreshed = await provider.refresh(config, credentials, APP)
    assert refreshed["access_token"] != credentials["access_token"]
    assert refreshed["refresh_token"] == credentials["refresh_token"]  # not rotated
    emulator.tokens.refusing = True
    with pytest.raises(AuthRevoked):
        await provider.refresh(config, refreshed, APP)
    with pytest.raises(Permanent):
        await provider.exchange_code(config, APP, REDIRECT, back["code"][0], VERIFIER)
    account = {"config": {**emulator.account()["config"], **config},
               "credentials": refreshed}
    media = video(CHUNK_UNIT + 1)
    published = await provider.publish(dataclasses.replace(
        request_for(emulator, media, account=account)))
    assert published.platform_post_id == emulator.posts[0]["id"]
