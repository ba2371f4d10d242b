"""The real BlueskyProvider against the real PDS emulator over loopback sockets."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from bson import ObjectId

from shared.models import Content, ThreadItem
from shared.providers.base import (
    AuthExpired,
    AuthRevoked,
    MediaInfo,
    MemoryCheckpoints,
    OutcomeUnknown,
    Permanent,
    Published,
    RateLimited,
    Transient,
)
from shared.providers.bluesky import TID, BlueskyProvider, record_key
from tests.emulators.bluesky import BlueskyEmulator
from tests.integration.media_threads import Scripted, image, media_request, video
from tests.integration.platform_support import control, publish_request, running

#: A TID's base32-sortable digits, to decode what the provider sent independently.
DIGITS = "234567abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
async def emulator() -> AsyncIterator[BlueskyEmulator]:
    async with running(BlueskyEmulator) as e:
        yield e


@pytest.fixture
def provider(session: aiohttp.ClientSession) -> BlueskyProvider:
    return BlueskyProvider(session)


def decode_tid(value: str) -> tuple[int, int]:
    number = 0
    for char in value:
        number = number * 32 + DIGITS.index(char)
    return number >> 10, number & 0x3FF


# --- sessions -----------------------------------------------------------------------------


async def test_connect_trades_the_app_password_for_a_session(
    provider: BlueskyProvider, emulator: BlueskyEmulator
) -> None:
    sent = {"identifier": emulator.handle, "app_password": emulator.app_password}
    connected = await provider.connect({"api_base": emulator.base_url}, sent)
    credentials = connected.credentials
    assert credentials["identifier"] == emulator.handle
    assert credentials["app_password"] == emulator.app_password
    assert credentials["did"] == emulator.did
    assert emulator.tokens.check(credentials["access_jwt"]) == "ok"
    assert credentials["refresh_jwt"] in emulator.tokens.by_refresh
    assert connected.config == {"did": emulator.did, "handle": emulator.handle}
    assert provider.validate_account({"api_base": emulator.base_url, **connected.config},
                                     credentials) == []
    assert emulator.calls == ["createSession"]


async def test_a_wrong_app_password_is_refused_for_good(
    provider: BlueskyProvider, emulator: BlueskyEmulator
) -> None:
    with pytest.raises(AuthRevoked, match=r"401.*AuthenticationRequired") as info:
        await provider.connect({"api_base": emulator.base_url},
                               {"identifier": emulator.handle, "app_password": "wrong-pass-1234"})
    assert "wrong-pass-1234" not in str(info.value)


async def test_refresh_rotates_the_session_and_the_old_refresh_token_is_refused(
    provider: BlueskyProvider, emulator: BlueskyEmulator, session: aiohttp.ClientSession
) -> None:
    account = emulator.account()
    old = account["credentials"]
    fresh = await provider.refresh(account["config"], old, None)
    assert fresh["access_jwt"] != old["access_jwt"]
    assert fresh["refresh_jwt"] != old["refresh_jwt"]
    assert {k: fresh[k] for k in ("identifier", "app_password", "did")} == {
        k: old[k] for k in ("identifier", "app_password", "did")}
    assert emulator.tokens.refresh_calls == 1 and emulator.calls == ["refreshSession"]

    url = f"{emulator.base_url}/xrpc/com.atproto.server.refreshSession"
    async with session.post(url, headers={"Authorization": f"Bearer {old['refresh_jwt']}"}
                            ) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "ExpiredToken"
    assert (await provider.publish(publish_request(account, credentials=fresh))).url


async def test_a_refused_refresh_token_falls_back_to_the_app_password(
    provider: BlueskyProvider, emulator: BlueskyEmulator
) -> None:
    account = emulator.account()
    await provider.refresh(account["config"], account["credentials"], None)
    # The stored copy still holds the refresh JWT that was just rotated away.
    fresh = await provider.refresh(account["config"], account["credentials"], None)
    assert emulator.calls == ["refreshSession", "refreshSession", "createSession"]
    assert emulator.tokens.check(fresh["access_jwt"]) == "ok"


async def test_a_refresh_refused_for_good_is_auth_revoked(
    provider: BlueskyProvider, emulator: BlueskyEmulator, session: aiohttp.ClientSession
) -> None:
    account = emulator.account()
    await control(session, emulator, refuse_refresh=True)
    with pytest.raises(AuthRevoked, match="401") as info:
        await provider.refresh(account["config"], account["credentials"], None)
    assert emulator.calls == ["refreshSession", "createSession"]
    for secret in (emulator.app_password, account["credentials"]["refresh_jwt"]):
        assert secret not in str(info.value)


async def test_a_refresh_that_cannot_be_asked_is_transient(
    provider: BlueskyProvider, emulator: BlueskyEmulator, session: aiohttp.ClientSession
) -> None:
    account = emulator.account()
    await control(session, emulator, fail_next=1, fail_status=502)
    with pytest.raises(Transient, match="502"):
        await provider.refresh(account["config"], account["credentials"], None)


# --- publishing ---------------------------------------------------------------------------


async def test_publish_creates_the_post_under_the_jobs_record_key(
    provider: BlueskyProvider, emulator: BlueskyEmulator
) -> None:
    account = emulator.account()
    text = "Café ☕ news: https://example.com/ä?x=1 and bsky.app"
    request = publish_request(account, text, langs=["en", "fr"])
    before = datetime.now(UTC)
    published = await provider.publish(request)

    [post] = emulator.posts
    rkey = record_key(request.job_id)
    assert post["rkey"] == rkey and TID.match(rkey)
    assert published == Published(f"at://{emulator.did}/app.bsky.feed.post/{rkey}",
                                  f"https://bsky.app/profile/{emulator.did}/post/{rkey}")
    assert post["id"] == published.platform_post_id
    assert post["text"] == text and post["langs"] == ["en", "fr"]
    created = datetime.fromisoformat(post["created_at"].replace("Z", "+00:00"))
    assert before.replace(microsecond=0) <= created <= datetime.now(UTC)
    raw = text.encode("utf-8")
    linked = [(raw[f["index"]["byteStart"]:f["index"]["byteEnd"]].decode(),
               f["features"][0]["uri"]) for f in post["facets"]]
    assert linked == [("https://example.com/ä?x=1", "https://example.com/ä?x=1"),
                      ("bsky.app", "https://bsky.app")]


def test_the_record_key_is_a_tid_of_the_jobs_own_time_and_counter() -> None:
    job_id = "6b10513b" + "3e32d67aed" + "1e218c"
    seconds, counter = 0x6B10513B, 0x1E218C
    micros, clock_id = decode_tid(record_key(job_id))
    assert micros == seconds * 1_000_000 + counter % 1_000_000
    assert clock_id == 0x3E32D67AED & 0x3FF
    assert record_key(job_id) == record_key(job_id.upper())
    # Consecutive ids of one process (the counter steps) get distinct keys.
    first = ObjectId()
    keys = {record_key(str(ObjectId())) for _ in range(1000)} | {record_key(str(first))}
    assert len(keys) == 1001 and all(TID.match(k) for k in keys)
    with pytest.raises(Permanent, match="not an ObjectId"):
        record_key("job-twice")


async def test_the_same_job_twice_is_one_post(
    provider: BlueskyProvider, emulator: BlueskyEmulator
) -> None:
    account = emulator.account()
    request = publish_request(account)
    first = await provider.publish(request)
    # a retry whose `parts` checkpoint was not saved: the record key is taken, so no 2nd post
    second = await provider.publish(dataclasses.replace(request, checkpoints=MemoryCheckpoints()))
    assert first == second
    assert await provider.publish(request) == first  # the saved checkpoint: no call at all
    assert len(emulator.posts) == 1
    # The second createRecord was refused (the PDS's 500 for a taken key), getRecord found it.
    assert emulator.calls == ["createRecord", "createRecord", "getRecord"]
    other = await provider.publish(publish_request(account))
    assert other != first and len(emulator.posts) == 2


async def test_a_lost_answer_is_unknown_and_the_retry_finds_the_post(
    provider: BlueskyProvider, emulator: BlueskyEmulator, session: aiohttp.ClientSession
) -> None:
    account = emulator.account()
    request = publish_request(account)
    await control(session, emulator, drop_after_next=1)
    with pytest.raises(OutcomeUnknown):
        await provider.publish(request)
    assert len(emulator.posts) == 1
    assert await provider.lookup(request, datetime.now(UTC)) == Published(
        emulator.posts[0]["id"],
        f"https://bsky.app/profile/{emulator.did}/post/{record_key(request.job_id)}")
    retried = await provider.publish(request)
    assert retried.platform_post_id == emulator.posts[0]["id"]
    assert len(emulator.posts) == 1


async def test_lookup_of_a_job_that_never_posted_is_none(
    provider: BlueskyProvider, emulator: BlueskyEmulator
) -> None:
    assert await provider.lookup(publish_request(emulator.account()), datetime.now(UTC)) is None
    assert emulator.calls == ["getRecord"]


async def test_a_dropped_connection_is_transient(
    provider: BlueskyProvider, emulator: BlueskyEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, drop_next=1)
    with pytest.raises(Transient):
        await provider.publish(publish_request(emulator.account()))
    assert emulator.posts == []


async def test_429_waits_until_the_epoch_reset_for_the_whole_account(
    provider: BlueskyProvider, emulator: BlueskyEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, rate_limit_next=1, retry_after=90)
    before = datetime.now(UTC).timestamp()
    with pytest.raises(RateLimited, match=r"429.*RateLimitExceeded") as info:
        await provider.publish(publish_request(emulator.account()))
    after = datetime.now(UTC).timestamp()
    reset = info.value.retry_at.timestamp()
    assert reset == int(reset)  # whole epoch seconds, as RateLimit-Reset gives them
    assert math.ceil(before + 90) <= reset <= math.ceil(after + 90)
    assert info.value.scope == "account"
    assert emulator.posts == []


async def test_a_server_error_is_transient_once_no_post_is_found(
    provider: BlueskyProvider, emulator: BlueskyEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, fail_next=1, fail_status=503)
    request = publish_request(emulator.account())
    with pytest.raises(Transient, match=r"503.*NotEnoughResources"):
        await provider.publish(request)
    assert emulator.calls == ["createRecord", "getRecord"]
    assert (await provider.publish(request)).platform_post_id


async def test_an_expired_access_token_is_auth_expired(
    provider: BlueskyProvider, emulator: BlueskyEmulator, session: aiohttp.ClientSession
) -> None:
    account = emulator.account()
    await control(session, emulator, expire_tokens=True)
    with pytest.raises(AuthExpired, match=r"400.*ExpiredToken") as info:
        await provider.publish(publish_request(account))
    assert account["credentials"]["access_jwt"] not in str(info.value)
    fresh = await provider.refresh(account["config"], account["credentials"], None)
    assert (await provider.publish(publish_request(account, credentials=fresh))).platform_post_id
    assert len(emulator.posts) == 1


async def test_without_a_session_the_publish_asks_for_one(
    provider: BlueskyProvider, emulator: BlueskyEmulator
) -> None:
    credentials = {"identifier": emulator.handle, "app_password": emulator.app_password}
    with pytest.raises(AuthExpired, match="no session"):
        await provider.publish(publish_request(emulator.account(), credentials=credentials))
    assert emulator.calls == []


async def test_the_pds_refuses_malformed_records_as_it_does(
    emulator: BlueskyEmulator, session: aiohttp.ClientSession
) -> None:
    token = emulator.account()["credentials"]["access_jwt"]
    url = f"{emulator.base_url}/xrpc/com.atproto.repo.createRecord"
    record = {"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2026-11-23T08:00:00Z"}
    body = {"repo": emulator.did, "collection": "app.bsky.feed.post", "record": record}

    async with session.post(url, json=body) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "AuthMissing"
    auth = {"Authorization": f"Bearer {token}"}
    for rkey in ("3jzf-cij-pj2z-2a", "kjzfcijpj2z2a", "self"):
        async with session.post(url, json={**body, "rkey": rkey}, headers=auth) as response:
            assert response.status == 400
            answer = await response.json()
            assert answer["error"] == "InvalidRequest" and "record key" in answer["message"]
    no_date = {**body, "record": {k: v for k, v in record.items() if k != "createdAt"}}
    async with session.post(url, json=no_date, headers=auth) as response:
        assert response.status == 400
        assert "createdAt" in (await response.json())["message"]
    assert emulator.posts == []


async def test_text_over_300_graphemes_is_refused_by_the_pds_and_permanent(
    provider: BlueskyProvider, emulator: BlueskyEmulator
) -> None:
    with pytest.raises(Permanent, match=r"400.*InvalidRequest.*300 graphemes"):
        await provider.publish(publish_request(emulator.account(), "a" * 301))
    assert emulator.posts == []
    # The refusal was checked against the key: nothing is there, so it stays a refusal.
    assert emulator.calls == ["createRecord", "getRecord"]


# --- limits -------------------------------------------------------------------------------


async def test_text_at_and_over_300_graphemes(provider: BlueskyProvider) -> None:
    config: dict[str, Any] = {}
    family = "👨‍👩‍👧‍👦"  # one grapheme, 7 code points, 25 bytes
    assert await provider.check_content(Content(text="e\u0301" * 300), config) == []
    assert await provider.check_content(Content(text="e\u0301" * 301), config) == [
        ("content.text", "bluesky: 301 graphemes, at most 300")]
    assert await provider.check_content(Content(text=family * 120), config) == []
    assert await provider.check_content(Content(text=family * 121), config) == [
        ("content.text", "bluesky: 3025 bytes, at most 3000")]
    limit = await provider.text_limit(config)
    assert (limit.maximum, limit.unit) == (300, "graphemes")


# --- media and threads ----------------------------------------------------------------------


async def test_images_are_uploaded_as_blobs_and_embedded_with_alt_text(
    provider: BlueskyProvider, emulator: BlueskyEmulator
) -> None:
    first, second = image("a", 900_000, alt="a heron"), image("b", 300_000, width=600,
                                                             height=900)
    request = media_request(emulator.account(), "two pictures", media=[first, second])
    await provider.publish(request)

    blobs = emulator.state()["blobs"]
    assert [b["sha256"] for b in blobs] == [first.sha256, second.sha256]
    [post] = emulator.posts
    embed = post["embed"]
    assert embed["$type"] == "app.bsky.embed.images"
    assert [i["alt"] for i in embed["images"]] == ["a heron", ""]
    assert [i["aspectRatio"] for i in embed["images"]] == [{"width": 1200, "height": 800},
                                                          {"width": 600, "height": 900}]
    assert [i["image"]["ref"]["$link"] for i in embed["images"]] == [b["id"] for b in blobs]
    assert [json.loads(b)["size"] for b in request.checkpoints.get("media_0")] == [
        900_000, 300_000]


async def test_a_video_is_embedded(provider: BlueskyProvider, emulator: BlueskyEmulator) -> None:
    clip = video()
    await provider.publish(media_request(emulator.account(), "a clip", media=[clip]))
    [blob] = emulator.state()["blobs"]
    assert blob["sha256"] == clip.sha256 and blob["content_type"] == "video/mp4"
    embed = emulator.posts[0]["embed"]
    assert embed["$type"] == "app.bsky.embed.video"
    assert embed["video"]["ref"]["$link"] == blob["id"]
    assert embed["aspectRatio"] == {"width": 1280, "height": 720}


async def test_a_three_part_thread_survives_a_failure_on_part_two(
    provider: BlueskyProvider, emulator: BlueskyEmulator
) -> None:
    def fail_part_two(key: str, value: Any) -> None:
        if key == "parts" and len(value) == 1:
            emulator.faults.fail_next = 1

    checkpoints = Scripted(fail_part_two)
    request = media_request(emulator.account(), "one/3", media=[image("a")],
                            thread=[("two/3", []), ("three/3", [image("b")])],
                            checkpoints=checkpoints)
    with pytest.raises(Transient):
        await provider.publish(request)
    assert [p["text"] for p in emulator.posts] == ["one/3"]

    published = await provider.publish(request)
    first, second, third = emulator.posts
    assert [p["text"] for p in emulator.posts] == ["one/3", "two/3", "three/3"]
    assert emulator.calls.count("createRecord") == 4  # part one once, part two twice
    root = {"uri": first["id"], "cid": first["cid"]}
    assert second["reply"] == {"root": root, "parent": root}
    assert third["reply"] == {"root": root,
                              "parent": {"uri": second["id"], "cid": second["cid"]}}
    assert [p["rkey"] for p in emulator.posts] == [record_key(request.job_id, n)
                                                  for n in range(3)]
    assert published.platform_post_id == first["id"]
    assert [p["cid"] for p in checkpoints.get("parts")] == [first["cid"], second["cid"],
                                                           third["cid"]]
    assert emulator.calls.count("uploadBlob") == 2


async def test_a_failure_after_the_upload_does_not_upload_again(
    provider: BlueskyProvider, emulator: BlueskyEmulator
) -> None:
    def fail_next_call(key: str, _value: Any) -> None:
        if key == "media_0":
            emulator.faults.fail_next = 1

    picture = image()
    request = media_request(emulator.account(), "after a failure", media=[picture],
                            checkpoints=Scripted(fail_next_call))
    with pytest.raises(Transient):
        await provider.publish(request)
    await provider.publish(request)
    assert emulator.calls.count("uploadBlob") == 1
    [blob] = emulator.state()["blobs"]
    assert emulator.posts[0]["embed"]["images"][0]["image"]["ref"]["$link"] == blob["id"]


async def test_an_upload_cut_off_is_retried_and_arrives_whole(
    provider: BlueskyProvider, emulator: BlueskyEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, drop_next=1)
    picture = image(size=700_000)
    request = media_request(emulator.account(), "retried upload", media=[picture])
    with pytest.raises(Transient):
        await provider.publish(request)
    assert emulator.state()["blobs"] == [] and emulator.posts == []
    await provider.publish(request)
    assert [b["sha256"] for b in emulator.state()["blobs"]] == [picture.sha256]


async def test_the_pds_refuses_a_blob_it_does_not_hold(
    provider: BlueskyProvider, emulator: BlueskyEmulator
) -> None:
    forged = json.dumps({"$type": "blob", "ref": {"$link": "bafkreinotuploaded"},
                         "mimeType": "image/png", "size": 10})
    request = media_request(emulator.account(), "forged", media=[image()],
                            checkpoints=MemoryCheckpoints({"media_0": [forged]}))
    with pytest.raises(Permanent, match="Could not find blob"):
        await provider.publish(request)
    assert emulator.posts == []


async def test_media_limits_are_checked_at_scheduling(provider: BlueskyProvider) -> None:
    content = Content(text="x", thread=[ThreadItem(text="y"), ThreadItem(text="z")])
    five = [image(str(n), 1000).info for n in range(5)]
    mixed = [video().info, image().info]
    odd = [MediaInfo("application/pdf", 10), image(size=1_000_001).info]
    problems = await provider.check_content(content, {}, [five, mixed, odd])
    assert problems == [
        ("content.media", "bluesky: 5 images, at most 4"),
        ("content.thread.0.media", "bluesky: a video must be a post's only media"),
        ("content.thread.1.media.0",
         "bluesky: application/pdf cannot be posted (images, or video/mp4 video)"),
        ("content.thread.1.media.1", "bluesky: 1000001 bytes, at most 1000000 for an image"),
    ]
    long = video(size=1000, duration=181).info
    assert await provider.check_content(Content(text="x"), {}, [[long]]) == [
        ("content.media.0", "bluesky: video of 181 s, at most 180 s")]
    assert await provider.check_content(content, {}, [[image().info], [], []]) == []


async def test_lookup_of_a_thread_wants_its_last_part(
    provider: BlueskyProvider, emulator: BlueskyEmulator
) -> None:
    request = media_request(emulator.account(), "head", thread=[("tail", [])])
    await provider.publish(dataclasses.replace(request, content=Content(text="head")))
    assert await provider.lookup(request, datetime.now(UTC)) is None
    published = await provider.publish(request)
    assert await provider.lookup(request, datetime.now(UTC)) == published
