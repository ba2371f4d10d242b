"""The real InstagramProvider against the Instagram emulator over loopback sockets: the
emulator fetches each container's media from a server of the test's own, as Instagram fetches
a signed public URL."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from shared.models import Content
from shared.providers.base import (
    AuthRevoked,
    MediaInfo,
    MemoryCheckpoints,
    OAuthApp,
    OutcomeUnknown,
    Permanent,
    PublishRequest,
    RateLimited,
    Transient,
)
from shared.providers.instagram import InstagramProvider
from tests.emulators.instagram import CLIENT_ID, CLIENT_SECRET, IG_USER_ID, InstagramEmulator
from tests.integration.platform_support import Serve, control, publish_request, running
from tests.media_support import BytesMedia

APP = OAuthApp(CLIENT_ID, CLIENT_SECRET)
REDIRECT = "https://ops.example/api/v1/oauth/callback"


def jpeg(width: int = 1080, height: int = 1080, colour: str = "teal") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG")
    return out.getvalue()


def mp4(size: int = 300_000) -> bytes:
    """Enough of an MP4 for the emulator's check: a `ftyp` box first."""
    head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    return head + bytes(i % 251 for i in range(size - len(head)))


Host = Callable[..., Awaitable[BytesMedia]]


@pytest.fixture
async def emulator() -> AsyncIterator[InstagramEmulator]:
    async with running(InstagramEmulator) as e:
        yield e


@pytest.fixture
def provider(session: aiohttp.ClientSession) -> InstagramProvider:
    p = InstagramProvider(session)
    p.poll_seconds = 0.05
    return p


@pytest.fixture
async def host(serve: Serve) -> Host:
    """Media served at a public URL, as the media store's signed URLs serve it."""
    files: dict[str, bytes] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        data = files.get(request.match_info["path"])
        return web.Response(body=data) if data is not None else web.Response(status=404)

    base = await serve(handler)

    async def add(data: bytes, content_type: str, **info: Any) -> BytesMedia:
        name = f"m{len(files)}"
        files[name] = data
        return BytesMedia(name, data, content_type, url=f"{base}/{name}", **info)

    return add


def request_for(emulator: InstagramEmulator, text: str, media: list[BytesMedia],
                checkpoints: MemoryCheckpoints | None = None) -> PublishRequest:
    request = publish_request(emulator.account(), text)
    return dataclasses.replace(request, media=[media],
                               checkpoints=checkpoints or MemoryCheckpoints())


async def test_image_post_publishes_the_fetched_bytes_intact(
        provider: InstagramProvider, emulator: InstagramEmulator, host: Host) -> None:
    image = await host(jpeg(), "image/jpeg", alt="a teal square")
    request = request_for(emulator, "Teal #herald", [image])
    published = await provider.publish(request)

    [post] = emulator.posts
    assert published.platform_post_id == post["id"] and published.url == post["permalink"]
    assert post["text"] == "Teal #herald" and post["media_type"] == "IMAGE"
    assert [m["sha256"] for m in post["media"]] == [hashlib.sha256(image.data).hexdigest()]
    # The container was checkpointed before it was polled.
    assert request.checkpoints.get("ig_container") == post["container"]


async def test_reel_and_carousel(provider: InstagramProvider, emulator: InstagramEmulator,
                                 host: Host) -> None:
    video = await host(mp4(), "video/mp4", duration_seconds=12.0)
    await provider.publish(request_for(emulator, "a reel", [video]))
    items = [await host(jpeg(colour=c), "image/jpeg") for c in ("red", "green")] + [
        await host(mp4(), "video/mp4")]
    request = request_for(emulator, "a carousel", items)
    await provider.publish(request)

    reel, carousel = emulator.posts
    assert reel["media_type"] == "REELS"
    assert reel["media"][0]["sha256"] == hashlib.sha256(video.data).hexdigest()
    assert carousel["media_type"] == "CAROUSEL"
    assert [m["sha256"] for m in carousel["media"]] == [
        hashlib.sha256(i.data).hexdigest() for i in items]
    assert [m["kind"] for m in carousel["media"]] == ["IMAGE", "IMAGE", "VIDEO"]
    assert len(request.checkpoints.get("media_0")) == 3


async def test_lost_publish_answer_is_resumed_by_the_containers_status(
        provider: InstagramProvider, emulator: InstagramEmulator, host: Host) -> None:
    image = await host(jpeg(), "image/jpeg")
    request = request_for(emulator, "answer lost", [image])
    emulator.lose_next_publish = 1
    with pytest.raises(OutcomeUnknown):
        await provider.publish(request)
    assert len(emulator.posts) == 1

    found = await provider.lookup(request, datetime.now(UTC) - timedelta(minutes=1))
    assert found is not None and found.platform_post_id == emulator.posts[0]["id"]
    again = await provider.publish(request)
    assert again.platform_post_id == emulator.posts[0]["id"]
    assert len(emulator.posts) == 1 and emulator.publish_calls == 1
    assert len(emulator.containers) == 1


async def test_a_retry_after_a_failure_reuses_the_container(
        provider: InstagramProvider, emulator: InstagramEmulator, host: Host) -> None:
    image = await host(jpeg(), "image/jpeg")
    request = request_for(emulator, "slow", [image])
    emulator.processing_seconds = 0.5
    provider.processing_timeout_seconds = 0.0
    with pytest.raises(Transient, match="still processing"):
        await provider.publish(request)
    assert emulator.posts == [] and len(emulator.containers) == 1
    assert await provider.lookup(request, datetime.now(UTC)) is None

    provider.processing_timeout_seconds = 10.0
    await provider.publish(request)
    assert len(emulator.containers) == 1 and len(emulator.posts) == 1


async def test_a_carousel_retried_after_a_failure_creates_no_child_twice(
        provider: InstagramProvider, emulator: InstagramEmulator, host: Host) -> None:
    items = [await host(jpeg(colour=c), "image/jpeg") for c in ("red", "blue")]
    request = request_for(emulator, "two", items)
    emulator.fail_next_carousel = 1
    with pytest.raises(Transient):
        await provider.publish(request)
    await provider.publish(request)
    assert len(emulator.containers) == 3  # two children, one parent
    assert len(emulator.posts) == 1


async def test_expired_container_is_made_again(
        provider: InstagramProvider, emulator: InstagramEmulator, host: Host) -> None:
    image = await host(jpeg(), "image/jpeg")
    request = request_for(emulator, "expired", [image])
    emulator.processing_seconds = 0.3
    provider.processing_timeout_seconds = 0.0
    with pytest.raises(Transient):
        await provider.publish(request)
    emulator.expire_container(request.checkpoints.get("ig_container"))
    provider.processing_timeout_seconds = 10.0
    await provider.publish(request)
    assert len(emulator.containers) == 2 and len(emulator.posts) == 1


async def test_an_expired_carousel_child_is_made_again(
        provider: InstagramProvider, emulator: InstagramEmulator, host: Host) -> None:
    items = [await host(jpeg(colour=c), "image/jpeg") for c in ("red", "blue")]
    request = request_for(emulator, "late carousel", items)
    emulator.processing_seconds = 0.3
    provider.processing_timeout_seconds = 0.0
    with pytest.raises(Transient):
        await provider.publish(request)
    [first] = request.checkpoints.get("media_0")
    emulator.expire_container(first)
    provider.processing_timeout_seconds = 10.0
    await provider.publish(request)
    assert first not in request.checkpoints.get("media_0")
    assert len(emulator.containers) == 4 and len(emulator.posts) == 1


async def test_media_instagram_refuses_fails_the_container(
        provider: InstagramProvider, emulator: InstagramEmulator, host: Host) -> None:
    wide = await host(jpeg(1000, 400), "image/jpeg")
    with pytest.raises(Permanent, match="aspect ratio"):
        await provider.publish(request_for(emulator, "too wide", [wide]))
    png = await host(b"\x89PNG\r\n\x1a\n" + b"0" * 100, "image/jpeg")
    with pytest.raises(Permanent, match="JPEG"):
        await provider.publish(request_for(emulator, "not a jpeg", [png]))
    assert emulator.posts == []


async def test_publishing_limit_holds_the_account(
        provider: InstagramProvider, emulator: InstagramEmulator, host: Host) -> None:
    emulator.publish_limit = 2
    image = await host(jpeg(), "image/jpeg")
    await provider.publish(request_for(emulator, "one", [image]))
    # A second post's container is made, then left processing ...
    emulator.processing_seconds = 0.3
    provider.processing_timeout_seconds = 0.0
    waiting = request_for(emulator, "two", [image])
    with pytest.raises(Transient):
        await provider.publish(waiting)
    provider.processing_timeout_seconds = 10.0
    await provider.publish(request_for(emulator, "three", [image]))
    # ... and the allowance is spent meanwhile: media_publish refuses it (2207042).
    with pytest.raises(RateLimited) as refused:
        await provider.publish(waiting)
    assert refused.value.scope == "account"
    assert refused.value.retry_at > datetime.now(UTC) + timedelta(minutes=59)
    # A new post is held at content_publishing_limit, before any container is made.
    made = len(emulator.containers)
    with pytest.raises(RateLimited, match="content_publishing_limit") as held:
        await provider.publish(request_for(emulator, "four", [image]))
    assert held.value.scope == "account" and len(emulator.containers) == made
    assert [p["text"] for p in emulator.posts] == ["one", "three"]


async def test_throttle_and_server_errors(provider: InstagramProvider,
                                          emulator: InstagramEmulator, host: Host,
                                          session: aiohttp.ClientSession) -> None:
    image = await host(jpeg(), "image/jpeg")
    await control(session, emulator, rate_limit_next=1)
    with pytest.raises(RateLimited) as info:
        await provider.publish(request_for(emulator, "throttled", [image]))
    assert info.value.scope == "app"
    await control(session, emulator, fail_next=1, fail_status=503)
    with pytest.raises(Transient, match="503"):
        await provider.publish(request_for(emulator, "down", [image]))


async def test_expired_token_is_revoked_and_never_shown(
        provider: InstagramProvider, emulator: InstagramEmulator, host: Host) -> None:
    image = await host(jpeg(), "image/jpeg")
    request = request_for(emulator, "expired token", [image])
    emulator.tokens.expire_all()
    with pytest.raises(AuthRevoked) as info:
        await provider.publish(request)
    assert request.credentials["access_token"] not in str(info.value)


async def test_limits_are_refused_at_check_content(provider: InstagramProvider) -> None:
    def info(kind: str, **extra: Any) -> MediaInfo:
        return MediaInfo(kind, 1000, **extra)

    assert await provider.check_content(Content(text="no media"), {}) == [
        ("content.media", "instagram: a post needs an image or a video")]
    problems = await provider.check_content(Content(text="bad"), {}, [[
        info("image/png", width=100, height=100),
        info("image/jpeg", width=100, height=200),
        info("video/mp4", duration_seconds=901.0),
    ]])
    assert [f for f, _ in problems] == ["content.media.0", "content.media.1",
                                        "content.media.2"]
    assert "only JPEG" in problems[0][1] and "4:5 to 1.91:1" in problems[1][1]
    many = await provider.check_content(Content(text="many"), {},
                                        [[info("image/jpeg")] * 11])
    assert ("content.media", "instagram: 11 media, at most 10 (a carousel)") in many
    fine = await provider.check_content(Content(text="ok " * 10), {}, [[
        info("image/jpeg", width=1080, height=1350)]])
    assert fine == []
    long_caption = await provider.check_content(Content(text="x" * 2201), {},
                                                [[info("image/jpeg")]])
    assert long_caption == [("content.text", "instagram: 2201 characters, at most 2200")]


async def test_connect_refresh_and_publish(provider: InstagramProvider,
                                           emulator: InstagramEmulator, host: Host,
                                           session: aiohttp.ClientSession) -> None:
    config = {"api_base": emulator.base_url, "auth_base": emulator.base_url,
              "token_base": emulator.base_url}
    url = provider.authorization_url(config, APP, REDIRECT, "st", "challenge")
    query = parse_qs(urlsplit(url).query)
    assert query["scope"] == ["instagram_business_basic,instagram_business_content_publish"]
    async with session.get(url, allow_redirects=False) as page:
        assert page.status == 302
        back = parse_qs(urlsplit(page.headers["Location"]).query)
    connected = await provider.exchange_code(config, APP, REDIRECT, back["code"][0], "v")
    assert connected.config == {"ig_user_id": IG_USER_ID}
    token = connected.credentials["access_token"]
    assert emulator.kinds[token] == "long"
    assert provider.needs_refresh(connected.credentials, datetime.now(UTC)) is False
    assert provider.needs_refresh(connected.credentials,
                                  datetime.now(UTC) + timedelta(days=31)) is True

    refreshed = await provider.refresh({**config, **connected.config}, connected.credentials,
                                       APP)
    assert refreshed["access_token"] != token and emulator.tokens.refresh_calls == 1
    image = await host(jpeg(), "image/jpeg")
    request = dataclasses.replace(
        publish_request({"config": {**config, **connected.config}, "credentials": refreshed},
                        "connected"), media=[[image]])
    await provider.publish(request)
    assert emulator.posts[0]["text"] == "connected"

    with pytest.raises(Permanent, match="invalid or used"):
        await provider.exchange_code(config, APP, REDIRECT, back["code"][0], "v")
    emulator.tokens.refusing = True
    with pytest.raises(AuthRevoked):
        await provider.refresh({**config, **connected.config}, refreshed, APP)
