"""The real BlueskyProvider against the real PDS emulator over loopback sockets."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from bson import ObjectId

from shared.models import Content
from shared.providers.base import (
    AuthExpired,
    AuthRevoked,
    OutcomeUnknown,
    Permanent,
    Published,
    RateLimited,
    Transient,
)
from shared.providers.bluesky import TID, BlueskyProvider, record_key
from tests.emulators.bluesky import BlueskyEmulator
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
    second = await provider.publish(request)
    assert first == second
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
