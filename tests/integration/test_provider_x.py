"""The real XProvider against the real X emulator over loopback sockets."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from shared.models import Content, Media, ThreadItem
from shared.providers.base import (
    AuthExpired,
    AuthRevoked,
    MediaInfo,
    MemoryCheckpoints,
    OAuthApp,
    OutcomeUnknown,
    Permanent,
    Published,
    RateLimited,
    Transient,
)
from shared.providers.x import SEGMENT_BYTES, XProvider
from tests.emulators.platform import s256
from tests.emulators.x import CLIENT_ID, CLIENT_SECRET, XEmulator
from tests.integration.media_threads import Scripted, image, media_request, video
from tests.integration.platform_support import control, publish_request, running

APP = OAuthApp(CLIENT_ID, CLIENT_SECRET)
REDIRECT = "https://ops.example/api/v1/oauth/callback"


@pytest.fixture
async def emulator() -> AsyncIterator[XEmulator]:
    async with running(XEmulator) as e:
        yield e


@pytest.fixture
def provider(session: aiohttp.ClientSession) -> XProvider:
    return XProvider(session)


async def test_publish_returns_the_post_id_and_url(provider: XProvider,
                                                   emulator: XEmulator) -> None:
    account = emulator.account()
    published = await provider.publish(publish_request(account, "Hello & welcome"))

    [post] = emulator.posts
    assert post["text"] == "Hello & welcome"
    assert post["author"] == emulator.tokens.subject(account["credentials"]["access_token"])
    assert published == Published(post["id"], f"https://x.com/i/web/status/{post['id']}")


async def test_429_waits_until_x_rate_limit_reset(provider: XProvider, emulator: XEmulator,
                                                  session: aiohttp.ClientSession) -> None:
    await control(session, emulator, rate_limit_next=1, retry_after=30)
    before = time.time()
    with pytest.raises(RateLimited) as info:
        await provider.publish(publish_request(emulator.account()))
    assert info.value.scope == "request"
    assert before + 29 <= info.value.retry_at.timestamp() <= time.time() + 31
    assert emulator.posts == []


async def test_spent_user_24_hour_limit_holds_the_account(provider: XProvider,
                                                          emulator: XEmulator) -> None:
    emulator.user_day_limit = 1
    account = emulator.account()
    await provider.publish(publish_request(account, "first"))
    with pytest.raises(RateLimited) as info:
        await provider.publish(publish_request(account, "second"))
    assert info.value.scope == "account"
    first = emulator.posts[0]["at"]
    assert first + 24 * 3600 - 1 <= info.value.retry_at.timestamp() <= first + 24 * 3600 + 1
    assert [p["text"] for p in emulator.posts] == ["first"]


async def test_spent_app_24_hour_limit_holds_the_app(provider: XProvider,
                                                     emulator: XEmulator) -> None:
    emulator.app_day_limit = 1
    await provider.publish(publish_request(emulator.account(), "one user"))
    with pytest.raises(RateLimited) as info:
        await provider.publish(publish_request(emulator.account(), "another user"))
    assert info.value.scope == "app"
    assert info.value.retry_at > datetime.now(UTC) + timedelta(hours=23)


async def test_server_error_is_transient(provider: XProvider, emulator: XEmulator,
                                         session: aiohttp.ClientSession) -> None:
    await control(session, emulator, fail_next=1, fail_status=503)
    request = publish_request(emulator.account())
    with pytest.raises(Transient, match="503"):
        await provider.publish(request)
    assert (await provider.publish(request)).platform_post_id == emulator.posts[0]["id"]


async def test_dropped_connection_leaves_the_outcome_unknown(
        provider: XProvider, emulator: XEmulator, session: aiohttp.ClientSession) -> None:
    await control(session, emulator, drop_next=1)
    with pytest.raises(OutcomeUnknown, match="connection lost"):
        await provider.publish(publish_request(emulator.account()))
    assert emulator.posts == []


async def test_retry_after_a_lost_answer_finds_the_earlier_post(
        provider: XProvider, emulator: XEmulator, session: aiohttp.ClientSession) -> None:
    text = "Launch day & more: https://example.com/launch?utm=x <3"
    request = publish_request(emulator.account(), text)
    await control(session, emulator, drop_after_next=1)
    with pytest.raises(OutcomeUnknown):
        await provider.publish(request)
    [post] = emulator.posts
    assert post["rendered"] != text  # X gives it back escaped, with a t.co link

    again = await provider.publish(request)  # X: 403 duplicate content, then the lookup
    assert again == Published(post["id"], f"https://x.com/i/web/status/{post['id']}")
    assert len(emulator.posts) == 1


async def test_duplicate_of_an_older_post_is_permanent(provider: XProvider,
                                                       emulator: XEmulator) -> None:
    account = emulator.account()
    await provider.publish(publish_request(account, "Daily reminder"))
    emulator.posts[0]["at"] -= 2 * 3600  # another job's post, two hours ago
    with pytest.raises(Permanent, match="duplicate"):
        await provider.publish(publish_request(account, "Daily reminder"))
    assert len(emulator.posts) == 1


async def test_expired_token_then_refresh_rotates(provider: XProvider, emulator: XEmulator,
                                                  session: aiohttp.ClientSession) -> None:
    account = emulator.account()
    old = account["credentials"]
    await control(session, emulator, expire_tokens=True)
    with pytest.raises(AuthExpired) as info:
        await provider.publish(publish_request(account))
    assert old["access_token"] not in str(info.value)

    new = await provider.refresh(account["config"], old, APP)
    assert new["access_token"] != old["access_token"]
    assert new["refresh_token"] != old["refresh_token"]
    expires = datetime.fromisoformat(new["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=119) < expires - datetime.now(UTC) <= timedelta(hours=2)
    await provider.publish(publish_request(account, credentials=new))
    assert len(emulator.posts) == 1

    with pytest.raises(AuthRevoked) as refused:  # the old refresh token was spent
        await provider.refresh(account["config"], old, APP)
    assert old["refresh_token"] not in str(refused.value)
    assert CLIENT_SECRET not in str(refused.value)
    assert emulator.tokens.refresh_calls == 2


async def test_refused_refresh_is_auth_revoked(provider: XProvider, emulator: XEmulator,
                                               session: aiohttp.ClientSession) -> None:
    account = emulator.account()
    await control(session, emulator, refuse_refresh=True)
    with pytest.raises(AuthRevoked, match="400"):
        await provider.refresh(account["config"], account["credentials"], APP)
    without = {k: v for k, v in account["credentials"].items() if k != "refresh_token"}
    with pytest.raises(AuthRevoked, match=r"offline.access"):
        await provider.refresh(account["config"], without, APP)


async def test_token_endpoint_wants_basic_auth_from_a_confidential_client(
        provider: XProvider, emulator: XEmulator, session: aiohttp.ClientSession) -> None:
    account = emulator.account()
    form = {"grant_type": "refresh_token", "client_id": CLIENT_ID,
            "refresh_token": account["credentials"]["refresh_token"]}
    async with session.post(f"{emulator.base_url}/2/oauth2/token", data=form) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "unauthorized_client"
    with pytest.raises(Permanent, match="401") as info:
        await provider.refresh(account["config"], account["credentials"],
                               OAuthApp(CLIENT_ID, "wrong-secret"))
    assert "wrong-secret" not in str(info.value)
    assert emulator.tokens.refresh_calls == 0


async def test_emulator_refuses_what_x_refuses(provider: XProvider, emulator: XEmulator,
                                               session: aiohttp.ClientSession) -> None:
    account = emulator.account()
    url = f"{emulator.base_url}/2/tweets"
    auth = {"Authorization": f"Bearer {account['credentials']['access_token']}"}
    async with session.post(url, json={"text": "hi", "visibility": "all"},
                            headers=auth) as response:
        assert response.status == 400
        document = await response.json()
        assert document["title"] == "Invalid Request"
        assert "$.visibility" in document["errors"][0]["message"]
    async with session.post(url, json={"text": "hi"}) as response:
        assert response.status == 401
        assert (await response.json())["title"] == "Unauthorized"
    with pytest.raises(Permanent, match=r"400.*too long"):
        await provider.publish(publish_request(account, "a" * 281))
    assert emulator.posts == []


async def test_text_is_measured_in_weighted_characters(provider: XProvider) -> None:
    async def problems(text: str) -> list[tuple[str, str]]:
        return await provider.check_content(Content(text=text), {})

    assert await problems("a" * 280) == []
    assert await problems("a" * 281) == [("content.text",
                                          "x: 281 weighted characters, at most 280")]
    assert await problems("日本" * 70) == []  # CJK weighs 2
    assert await problems("日本" * 70 + "a") == [("content.text",
                                                "x: 281 weighted characters, at most 280")]
    assert await problems("a" * 256 + " https://example.com/" + "p" * 200) == []  # URL = 23


async def test_authorization_url_asks_for_pkce_and_offline_access(provider: XProvider) -> None:
    url = provider.authorization_url({}, APP, REDIRECT, "state-1", "challenge-1")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://x.com/i/oauth2/authorize"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT,
                     "scope": "tweet.read tweet.write users.read offline.access media.write",
                     "state": "state-1", "code_challenge": "challenge-1",
                     "code_challenge_method": "S256"}
    assert "%20" in parts.query and "+" not in parts.query


async def authorize(session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    async with session.get(url, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def test_oauth_round_trip_with_pkce(provider: XProvider, emulator: XEmulator,
                                          session: aiohttp.ClientSession) -> None:
    config = {"api_base": emulator.base_url, "auth_base": emulator.base_url}
    verifier = secrets.token_urlsafe(48)
    url = provider.authorization_url(config, APP, REDIRECT, "state-7", s256(verifier))
    redirected = await authorize(session, url)
    assert redirected["state"] == "state-7"

    connected = await provider.exchange_code(config, APP, REDIRECT, redirected["code"],
                                             verifier)
    assert set(connected.credentials) == {"access_token", "refresh_token", "expires_at"}
    assert connected.config == {}
    published = await provider.publish(publish_request({"config": config,
                                                        "credentials": connected.credentials}))
    assert published.platform_post_id == emulator.posts[0]["id"]
    with pytest.raises(Permanent, match="400"):  # a code works once
        await provider.exchange_code(config, APP, REDIRECT, redirected["code"], verifier)


async def test_exchange_with_the_wrong_verifier_is_refused(
        provider: XProvider, emulator: XEmulator, session: aiohttp.ClientSession) -> None:
    config = {"api_base": emulator.base_url, "auth_base": emulator.base_url}
    url = provider.authorization_url(config, APP, REDIRECT, "s", s256("right-verifier" * 4))
    code = (await authorize(session, url))["code"]
    with pytest.raises(Permanent, match="authorization code was invalid"):
        await provider.exchange_code(config, APP, REDIRECT, code, "wrong-verifier" * 4)
    plain = url.replace("code_challenge=", "x=").replace("code_challenge_method=S256", "")
    async with session.get(plain, allow_redirects=False) as response:
        assert response.status == 400  # PKCE is required


async def test_lookup_finds_this_jobs_post_only(provider: XProvider,
                                                emulator: XEmulator) -> None:
    account = emulator.account()
    before = datetime.now(UTC) - timedelta(seconds=2)
    text = "Read more at example.com/news & tell us <what> you think"
    published = await provider.publish(publish_request(account, text))

    assert await provider.lookup(publish_request(account, text), before) == published
    assert await provider.lookup(publish_request(account, "another text"), before) is None
    later = datetime.now(UTC) + timedelta(minutes=2)  # past the skew allowance
    assert await provider.lookup(publish_request(account, text), later) is None


async def test_lookup_pages_through_the_timeline(provider: XProvider,
                                                 emulator: XEmulator) -> None:
    emulator.window_limit = 1000
    account = emulator.account()
    before = datetime.now(UTC) - timedelta(seconds=2)
    first = await provider.publish(publish_request(account, "the oldest one"))
    for n in range(150):
        await provider.publish(publish_request(account, f"filler {n}"))
    assert await provider.lookup(publish_request(account, "the oldest one"), before) == first


# --- media and threads ----------------------------------------------------------------------


def fast(provider: XProvider) -> XProvider:
    provider.poll_scale = 0.01
    return provider


async def test_images_are_uploaded_in_chunks_with_alt_text(provider: XProvider,
                                                           emulator: XEmulator) -> None:
    first, second = image("a", alt="a red kite"), image("b", 300_000, content_type="image/jpeg")
    request = media_request(emulator.account(), "two pictures", media=[first, second])
    published = await fast(provider).publish(request)

    media = emulator.state()["media"]
    assert [m["sha256"] for m in media] == [first.sha256, second.sha256]
    [post] = emulator.posts
    assert post["media_ids"] == [m["id"] for m in media] == request.checkpoints.get("media_0")
    assert post["alts"] == ["a red kite", None]
    assert published.platform_post_id == post["id"]
    assert "status" not in emulator.calls  # images have no processing to wait for


async def test_a_video_goes_up_in_segments_and_is_polled_until_processed(
        provider: XProvider, emulator: XEmulator) -> None:
    clip = video(size=2 * SEGMENT_BYTES + 12_345)
    await fast(provider).publish(media_request(emulator.account(), "a clip", media=[clip]))
    [media] = emulator.state()["media"]
    assert media["sha256"] == clip.sha256 and media["ready"]
    assert emulator.calls.count("append") == 3
    assert emulator.calls.count("status") == emulator.processing_polls
    assert emulator.posts[0]["media_ids"] == [media["id"]]


async def test_the_emulator_refuses_what_x_refuses_of_media(
        emulator: XEmulator, session: aiohttp.ClientSession) -> None:
    token = emulator.account()["credentials"]["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    base = emulator.base_url

    async def init(**body: Any) -> tuple[int, Any]:
        async with session.post(f"{base}/2/media/upload/initialize", json=body,
                                headers=headers) as response:
            return response.status, await response.json()

    assert (await init(media_type="application/pdf", total_bytes=10))[0] == 400
    assert (await init(media_type="image/png", total_bytes=6 * 1024 * 1024))[0] == 400
    assert (await init(media_type="video/mp4", total_bytes=10, media_category="tweet_image")
            )[0] == 400
    status, document = await init(media_type="video/mp4", total_bytes=10)
    assert status == 200
    media_id = document["data"]["id"]
    form = aiohttp.FormData()
    form.add_field("segment_index", "1")
    form.add_field("media", b"0123456789", filename="blob")
    async with session.post(f"{base}/2/media/upload/{media_id}/append", data=form,
                            headers=headers) as response:
        assert response.status == 200
    async with session.post(f"{base}/2/media/upload/{media_id}/finalize",
                            headers=headers) as response:
        assert response.status == 400  # segment 0 is missing
    async with session.post(f"{base}/2/tweets", json={"text": "x", "media": {
            "media_ids": [media_id]}}, headers=headers) as response:
        assert response.status == 400  # not finalized


async def test_a_three_part_thread_survives_a_failure_on_part_two(
        provider: XProvider, emulator: XEmulator) -> None:
    def fail_part_two(key: str, value: Any) -> None:
        if key == "parts" and len(value) == 1:
            emulator.faults.fail_next = 1

    checkpoints = Scripted(fail_part_two)
    request = media_request(emulator.account(), "one/3", media=[image("a")],
                            thread=[("two/3", []), ("three/3", [video("b", 100_000)])],
                            checkpoints=checkpoints)
    with pytest.raises(Transient):
        await fast(provider).publish(request)
    assert [p["text"] for p in emulator.posts] == ["one/3"]

    published = await provider.publish(request)
    first, second, third = emulator.posts
    assert [p["text"] for p in emulator.posts] == ["one/3", "two/3", "three/3"]
    assert emulator.calls.count("tweets") == 4  # part one once, part two twice, part three
    assert second["in_reply_to"] == first["id"] and third["in_reply_to"] == second["id"]
    assert published.platform_post_id == first["id"]
    assert emulator.calls.count("initialize") == 2


async def test_a_thread_part_whose_answer_was_lost_is_found_not_posted_again(
        provider: XProvider, emulator: XEmulator) -> None:
    def lose_part_two(key: str, value: Any) -> None:
        if key == "parts" and len(value) == 1:
            emulator.faults.drop_after_next = 1

    request = media_request(emulator.account(), "first", thread=[("second", [])],
                            checkpoints=Scripted(lose_part_two))
    with pytest.raises(OutcomeUnknown):
        await provider.publish(request)
    await provider.publish(request)  # X: 403 duplicate content, then the lookup finds it
    assert [p["text"] for p in emulator.posts] == ["first", "second"]
    assert [p["n"] for p in request.checkpoints.get("parts")] == [0, 1]


async def test_a_failure_after_the_upload_does_not_upload_again(
        provider: XProvider, emulator: XEmulator) -> None:
    def fail_next_call(key: str, _value: Any) -> None:
        if key == "media_0":
            emulator.faults.fail_next = 1

    clip = video(size=500_000)
    request = media_request(emulator.account(), "after a failure", media=[clip],
                            checkpoints=Scripted(fail_next_call))
    with pytest.raises(Transient):
        await fast(provider).publish(request)  # the first STATUS read fails
    await provider.publish(request)
    assert emulator.calls.count("initialize") == 1 and emulator.calls.count("finalize") == 1
    [media] = emulator.state()["media"]
    assert emulator.posts[0]["media_ids"] == [media["id"]] and media["sha256"] == clip.sha256


async def test_an_upload_cut_off_mid_way_starts_again(
        provider: XProvider, emulator: XEmulator) -> None:
    emulator.drop_segment = 1  # the connection drops when the second segment arrives
    clip = video(size=SEGMENT_BYTES + 1000)
    request = media_request(emulator.account(), "retried upload", media=[clip])
    with pytest.raises(Transient):
        await fast(provider).publish(request)
    assert emulator.posts == [] and request.checkpoints.get("media_0") is None
    await provider.publish(request)
    [media] = emulator.state()["media"]  # the first session was never finalized
    assert media["sha256"] == clip.sha256
    assert emulator.posts[0]["media_ids"] == [media["id"]]
    assert emulator.calls.count("initialize") == 2


async def test_media_limits_are_checked_at_scheduling(provider: XProvider) -> None:
    content = Content(text="x", thread=[ThreadItem(text="y"), ThreadItem(text="z")])
    five = [image(str(n), 1000).info for n in range(5)]
    mixed = [video().info, image().info]
    odd = [MediaInfo("application/pdf", 10), image(size=5 * 1024 * 1024 + 1).info,
           video(size=1000, duration=1201).info,
           MediaInfo("video/mp4", 1000, 4000, 1000, 30.0)]
    problems = await provider.check_content(content, {}, [five, mixed, odd])
    assert problems == [
        ("content.media", "x: 5 images, at most 4"),
        ("content.thread.0.media", "x: an animated GIF or a video must be a post's only media"),
        ("content.thread.1.media", "x: an animated GIF or a video must be a post's only media"),
        ("content.thread.1.media.0",
         "x: application/pdf cannot be posted (JPEG, PNG, WEBP, GIF, MP4 or MOV)"),
        ("content.thread.1.media.1", "x: 5242881 bytes, at most 5242880"),
        ("content.thread.1.media.2", "x: video longer than 1200 s (1201 s)"),
        ("content.thread.1.media.3", "x: video aspect ratio 4000:1000, between 1:3 and 3:1 "
                                     "wanted"),
    ]
    described = Content(text="x", media=[Media.model_validate(
        {"url": "https://m.example/1", "alt": "a" * 1001})])
    assert await provider.check_content(described, {}, [[image().info]]) == [
        ("content.media.0.alt", "x: 1001 characters of alt text, at most 1000")]
    assert await provider.check_content(content, {}, [[video().info], [], []]) == []


async def test_lookup_of_a_thread_wants_its_last_part(provider: XProvider,
                                                      emulator: XEmulator) -> None:
    request = media_request(emulator.account(), "head", thread=[("tail", [])])
    since = datetime.now(UTC) - timedelta(seconds=5)
    await provider.publish(dataclasses.replace(request, content=Content(text="head"),
                                               checkpoints=MemoryCheckpoints()))
    assert await provider.lookup(request, since) is None
    published = await provider.publish(request)
    fresh = dataclasses.replace(request, checkpoints=MemoryCheckpoints())
    assert await provider.lookup(fresh, since) == published
