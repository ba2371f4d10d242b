"""The real MastodonProvider against the real Mastodon emulator over loopback sockets."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from shared.models import Content, Media, ThreadItem
from shared.providers.base import (
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
from shared.providers.mastodon import MastodonProvider, count_characters
from tests.emulators.mastodon import MastodonEmulator
from tests.integration.media_threads import Scripted, image, media_request, video
from tests.integration.platform_support import control, publish_request, running

REDIRECT_URI = "https://ops.example/api/v1/oauth/callback"


@pytest.fixture
async def emulator() -> AsyncIterator[MastodonEmulator]:
    async with running(MastodonEmulator) as e:
        yield e


@pytest.fixture
def provider(session: aiohttp.ClientSession) -> MastodonProvider:
    return MastodonProvider(session)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# --- publishing ---------------------------------------------------------------------------


async def test_publish_returns_the_status_id_and_url(
    provider: MastodonProvider, emulator: MastodonEmulator
) -> None:
    account = emulator.account()
    request = publish_request(account)
    published = await provider.publish(request)

    [post] = emulator.posts
    assert post["text"] == "Hello from Herald"
    assert post["idempotency_key"] == request.job_id
    assert post["visibility"] == "public"
    assert published == Published(post["id"], f"{emulator.base_url}/@user-1/{post['id']}")


async def test_visibility_comes_from_the_config(
    provider: MastodonProvider, emulator: MastodonEmulator
) -> None:
    await provider.publish(publish_request(emulator.account(), visibility="unlisted"))
    assert [p["visibility"] for p in emulator.posts] == ["unlisted"]


async def test_the_same_job_twice_is_one_status(
    provider: MastodonProvider, emulator: MastodonEmulator
) -> None:
    account = emulator.account()
    request = publish_request(account)
    first = await provider.publish(request)
    # a retry whose checkpoint was not saved: the Idempotency-Key answers with the first status
    second = await provider.publish(dataclasses.replace(request, checkpoints=MemoryCheckpoints()))
    assert first == second
    assert await provider.publish(request) == first  # the saved checkpoint: no call at all
    other = await provider.publish(publish_request(account))
    assert other.platform_post_id != first.platform_post_id
    assert len(emulator.posts) == 2
    assert emulator.calls.count("statuses") == 3


async def test_a_lost_answer_is_transient_and_the_retry_gets_the_first_status(
    provider: MastodonProvider, emulator: MastodonEmulator, session: aiohttp.ClientSession
) -> None:
    request = publish_request(emulator.account())
    await control(session, emulator, drop_after_next=1)
    with pytest.raises(OutcomeUnknown):
        await provider.publish(request)
    assert len(emulator.posts) == 1  # the instance posted; the answer was lost
    published = await provider.publish(request)
    assert published.platform_post_id == emulator.posts[0]["id"]
    assert len(emulator.posts) == 1


async def test_a_connection_dropped_before_posting_is_transient(
    provider: MastodonProvider, emulator: MastodonEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, drop_next=1)
    with pytest.raises(Transient) as info:
        await provider.publish(publish_request(emulator.account()))
    assert emulator.posts == []
    # The request was sent: from here the instance might have acted, so the outcome is unknown
    # and the executor retries under the same Idempotency-Key.
    assert isinstance(info.value, OutcomeUnknown)


async def test_429_waits_until_the_iso_8601_reset_for_the_whole_account(
    provider: MastodonProvider, emulator: MastodonEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, rate_limit_next=1, retry_after=90)
    before = datetime.now(UTC)
    with pytest.raises(RateLimited, match="429") as info:
        await provider.publish(publish_request(emulator.account()))
    after = datetime.now(UTC)
    tick = timedelta(milliseconds=1)
    assert before + timedelta(seconds=90) - tick <= info.value.retry_at
    assert info.value.retry_at <= after + timedelta(seconds=90) + tick
    assert info.value.scope == "account"
    assert emulator.posts == []


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_server_error_is_transient(
    provider: MastodonProvider, emulator: MastodonEmulator, session: aiohttp.ClientSession,
    status: int,
) -> None:
    await control(session, emulator, fail_next=1, fail_status=status)
    request = publish_request(emulator.account())
    with pytest.raises(Transient, match=str(status)):
        await provider.publish(request)
    assert (await provider.publish(request)).platform_post_id  # the script is spent


async def test_a_revoked_token_is_auth_revoked_without_the_token_in_the_message(
    provider: MastodonProvider, emulator: MastodonEmulator, session: aiohttp.ClientSession
) -> None:
    account = emulator.account()
    await control(session, emulator, expire_tokens=True)
    with pytest.raises(AuthRevoked, match=r"401.*access token is invalid") as info:
        await provider.publish(publish_request(account))
    assert account["credentials"]["access_token"] not in str(info.value)
    assert emulator.posts == []


async def test_tokens_cannot_be_refreshed(
    provider: MastodonProvider, emulator: MastodonEmulator
) -> None:
    account = emulator.account()
    with pytest.raises(AuthRevoked):
        await provider.refresh(account["config"], account["credentials"], None)


async def test_the_instance_refuses_malformed_statuses_as_mastodon_does(
    emulator: MastodonEmulator, session: aiohttp.ClientSession
) -> None:
    url = f"{emulator.base_url}/api/v1/statuses"
    async with session.post(url, data={"status": "no token"}) as response:
        assert response.status == 401
        assert await response.json() == {"error": "The access token is invalid"}
        assert "invalid_token" in response.headers["WWW-Authenticate"]
    token = emulator.account()["credentials"]["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(url, data={"status": "  "}, headers=headers) as response:
        assert response.status == 422
        assert await response.json() == {"error": "Validation failed: Text can't be blank"}
    async with session.post(url, data={"status": "x", "visibility": "everyone"},
                            headers=headers) as response:
        assert response.status == 422
    assert emulator.posts == []


async def test_an_over_long_status_is_refused_by_the_instance_and_permanent(
    provider: MastodonProvider, emulator: MastodonEmulator
) -> None:
    with pytest.raises(Permanent, match=r"422.*character limit of 500"):
        await provider.publish(publish_request(emulator.account(), "y" * 501))
    assert emulator.posts == []


# --- limits -------------------------------------------------------------------------------


async def test_text_at_and_over_the_default_limit(
    provider: MastodonProvider, emulator: MastodonEmulator
) -> None:
    config = {"api_base": emulator.base_url}
    assert await provider.check_content(Content(text="é" * 500), config) == []
    assert await provider.check_content(Content(text="👍🏽" * 501), config) == [
        ("content.text", "mastodon: 501 characters, at most 500")]
    limit = await provider.text_limit(config)
    assert (limit.maximum, limit.unit) == (500, "characters")


async def test_the_instance_limits_are_read_once_and_urls_count_as_it_says(
    provider: MastodonProvider, emulator: MastodonEmulator
) -> None:
    emulator.max_characters, emulator.url_characters = 100, 30
    config = {"api_base": emulator.base_url}
    url = "https://example.com/" + "a" * 200
    at_limit = "b" * 69 + " " + url  # 69 + 1 + 30
    assert await provider.check_content(Content(text=at_limit), config) == []
    assert await provider.check_content(Content(text="b" + at_limit), config) == [
        ("content.text", "mastodon: 101 characters, at most 100")]
    assert emulator.calls.count("instance") == 1
    assert provider.measure(url) == 23  # without an instance: Mastodon's own 23


async def test_an_unreadable_instance_means_mastodons_defaults(
    provider: MastodonProvider, emulator: MastodonEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.max_characters = 1000
    await control(session, emulator, fail_next=1)
    config = {"api_base": emulator.base_url}
    assert (await provider.text_limit(config)).maximum == 500
    assert emulator.calls == ["instance"]


def test_measure_counts_as_mastodon_does() -> None:
    assert count_characters("hi @alice@social.example.org") == len("hi @alice")
    assert count_characters("see https://example.com/a/very/long/path?x=1 now") == 4 + 23 + 4
    assert count_characters("example.com is counted as text") == 30
    assert count_characters("👨‍👩‍👧‍👦") == 1


# --- OAuth --------------------------------------------------------------------------------


async def test_register_authorize_and_exchange_round_trip(
    provider: MastodonProvider, emulator: MastodonEmulator, session: aiohttp.ClientSession
) -> None:
    config = {"api_base": emulator.base_url}
    app = await provider.register_app(config, REDIRECT_URI)
    registered = emulator.apps[app.client_id]
    assert registered["name"] == "Herald"
    assert registered["redirect_uris"] == {REDIRECT_URI}
    assert {"write:statuses", "read:statuses", "read:accounts"} <= registered["scopes"]

    verifier, challenge = pkce()
    url = provider.authorization_url(config, app, REDIRECT_URI, "state-42", challenge)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{emulator.base_url}/oauth/authorize"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {
        "response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT_URI,
        "scope": "write:statuses write:media read:accounts read:statuses",
        "state": "state-42", "code_challenge": challenge, "code_challenge_method": "S256"}

    async with session.get(url, allow_redirects=False) as response:
        assert response.status == 302
        location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    back = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert back["state"] == "state-42"

    connected = await provider.exchange_code(config, app, REDIRECT_URI, back["code"], verifier)
    assert set(connected.credentials) == {"access_token"}
    assert provider.validate_account(config, connected.credentials) == []
    published = await provider.publish(publish_request(
        {"config": config, "credentials": connected.credentials}, "connected"))
    assert published.platform_post_id == emulator.posts[0]["id"]


async def test_the_exchange_is_refused_without_the_right_pkce_verifier(
    provider: MastodonProvider, emulator: MastodonEmulator, session: aiohttp.ClientSession
) -> None:
    config = {"api_base": emulator.base_url}
    app = await provider.register_app(config, REDIRECT_URI)
    _verifier, challenge = pkce()
    url = provider.authorization_url(config, app, REDIRECT_URI, "s", challenge)
    async with session.get(url, allow_redirects=False) as response:
        code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    with pytest.raises(Permanent, match=r"400.*invalid_grant") as info:
        await provider.exchange_code(config, app, REDIRECT_URI, code, "not-the-verifier")
    assert code not in str(info.value) and str(app.client_secret) not in str(info.value)


async def test_an_unknown_client_is_refused_at_the_token_endpoint(
    provider: MastodonProvider, emulator: MastodonEmulator
) -> None:
    with pytest.raises(Permanent, match=r"401.*invalid_client"):
        await provider.exchange_code({"api_base": emulator.base_url},
                                     OAuthApp("nobody", "not-a-secret-at-all"), REDIRECT_URI,
                                     "some-code-0123456789", "some-verifier-0123456789")


async def test_registration_is_refused_for_a_relative_redirect_uri(
    provider: MastodonProvider, emulator: MastodonEmulator
) -> None:
    with pytest.raises(Permanent, match=r"422.*absolute URI"):
        await provider.register_app({"api_base": emulator.base_url}, "/callback")


# --- lookup -------------------------------------------------------------------------------


async def test_lookup_finds_the_jobs_status_by_its_source_text(
    provider: MastodonProvider, emulator: MastodonEmulator
) -> None:
    account = emulator.account()
    since = datetime.now(UTC)
    request = publish_request(account, "the one & only <post>")
    published = await provider.publish(request)
    await provider.publish(publish_request(account, "another post after it"))
    assert await provider.lookup(request, since) == published  # from the `parts` checkpoint

    unsaved = dataclasses.replace(request, checkpoints=MemoryCheckpoints())
    assert await provider.lookup(unsaved, since) == published
    assert await provider.lookup(publish_request(account, "never posted"), since) is None
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert await provider.lookup(unsaved, later) is None
    assert "source" in emulator.calls


# --- media and threads ----------------------------------------------------------------------


def fast(provider: MastodonProvider) -> MastodonProvider:
    provider.poll_scale = 0.01
    return provider


async def test_an_image_is_streamed_processed_and_attached_with_its_alt_text(
    provider: MastodonProvider, emulator: MastodonEmulator
) -> None:
    picture = image(alt="a lighthouse at dusk")
    request = media_request(emulator.account(), "with a picture", media=[picture])
    published = await fast(provider).publish(request)

    [received] = emulator.state()["media"]
    assert received["sha256"] == picture.sha256 and received["size"] == len(picture.data)
    assert received["description"] == "a lighthouse at dusk"
    assert received["content_type"] == "image/png"
    [post] = emulator.posts
    assert post["media_ids"] == [received["id"]] and published.platform_post_id == post["id"]
    assert emulator.calls.count("media_status") == 1  # an image is processed at once (200)
    assert request.checkpoints.get("media_0") == [received["id"]]


async def test_a_video_is_published(
    provider: MastodonProvider, emulator: MastodonEmulator
) -> None:
    clip = video()
    await fast(provider).publish(media_request(emulator.account(), "", media=[clip]))
    [received] = emulator.state()["media"]
    assert received["sha256"] == clip.sha256
    assert emulator.posts[0]["media_ids"] == [received["id"]]
    # 202, then polled: 206 while processing, 200 with a url when done
    assert emulator.calls.count("media_status") == emulator.processing_polls


async def test_a_status_is_not_posted_before_its_media_is_processed(
    emulator: MastodonEmulator, session: aiohttp.ClientSession
) -> None:
    """The emulator refuses an unprocessed file as Mastodon does, so the provider's polling
    is what makes the publish work."""
    account = emulator.account()
    token = account["credentials"]["access_token"]
    clip = video(size=100_000)
    form = aiohttp.FormData()
    form.add_field("file", clip.data, filename="a.mp4", content_type="video/mp4")
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(f"{emulator.base_url}/api/v2/media", data=form,
                            headers=headers) as response:
        assert response.status == 202
        media_id = (await response.json())["id"]
        assert (await response.json())["url"] is None
    async with session.post(f"{emulator.base_url}/api/v1/statuses", headers=headers,
                            data=[("status", "x"), ("media_ids[]", media_id)]) as response:
        assert response.status == 422
        assert "not finished processing" in (await response.json())["error"]


async def test_a_three_part_thread_survives_a_failure_on_part_two(
    provider: MastodonProvider, emulator: MastodonEmulator
) -> None:
    def fail_part_two(key: str, value: Any) -> None:
        if key == "parts" and len(value) == 1:
            emulator.faults.fail_next = 1

    checkpoints = Scripted(fail_part_two)
    request = media_request(emulator.account(), "one/3", media=[image("a")],
                            thread=[("two/3", []), ("three/3", [image("b")])],
                            checkpoints=checkpoints)
    with pytest.raises(Transient):
        await fast(provider).publish(request)
    assert [p["text"] for p in emulator.posts] == ["one/3"]

    published = await provider.publish(request)
    first, second, third = emulator.posts
    assert [p["text"] for p in emulator.posts] == ["one/3", "two/3", "three/3"]
    assert emulator.calls.count("statuses") == 4  # part one once, part two twice, part three
    assert second["in_reply_to_id"] == first["id"] and third["in_reply_to_id"] == second["id"]
    assert [p["idempotency_key"] for p in emulator.posts] == [
        request.job_id, f"{request.job_id}-1", f"{request.job_id}-2"]
    assert published.platform_post_id == first["id"]
    assert [p["n"] for p in checkpoints.get("parts")] == [0, 1, 2]
    assert emulator.calls.count("media") == 2


async def test_a_failure_after_the_upload_does_not_upload_again(
    provider: MastodonProvider, emulator: MastodonEmulator
) -> None:
    emulator.processing_polls = 0

    def fail_next_call(key: str, _value: Any) -> None:
        if key == "media_0":
            emulator.faults.fail_next = 1

    picture = image()
    request = media_request(emulator.account(), "after a failure", media=[picture],
                            checkpoints=Scripted(fail_next_call))
    with pytest.raises(Transient):
        await fast(provider).publish(request)
    await provider.publish(request)
    assert emulator.calls.count("media") == 1
    [received] = emulator.state()["media"]
    assert emulator.posts[0]["media_ids"] == [received["id"]]
    assert received["sha256"] == picture.sha256


async def test_an_upload_cut_off_is_retried_and_arrives_whole(
    provider: MastodonProvider, emulator: MastodonEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, drop_next=1)
    picture = image(size=600_000)
    request = media_request(emulator.account(), "retried upload", media=[picture])
    with pytest.raises(Transient):
        await fast(provider).publish(request)
    assert emulator.state()["media"] == [] and emulator.posts == []
    await provider.publish(request)
    [received] = emulator.state()["media"]
    assert received["sha256"] == picture.sha256


async def test_the_instance_refuses_media_ids_that_are_not_the_accounts(
    provider: MastodonProvider, emulator: MastodonEmulator
) -> None:
    other = emulator.tokens.issue("user-2", "write:statuses write:media")
    theirs = media_request({"config": {"api_base": emulator.base_url},
                            "credentials": {"access_token": other.access_token}},
                           "theirs", media=[image()])
    emulator.processing_polls = 0
    await fast(provider).publish(theirs)
    their_media = theirs.checkpoints.get("media_0")
    mine = media_request(emulator.account(), "mine", media=[image()],
                         checkpoints=MemoryCheckpoints({"media_0": their_media}))
    with pytest.raises(Permanent, match="not found or already attached to another post"):
        await provider.publish(mine)


async def test_media_limits_are_the_instances_and_checked_at_scheduling(
    provider: MastodonProvider, emulator: MastodonEmulator
) -> None:
    config = {"api_base": emulator.base_url}
    emulator.image_size_limit = 1_000_000
    five = [image(str(n)) for n in range(5)]
    content = Content(text="x", media=[Media.model_validate({"url": f"https://m.example/{n}"})
                                       for n in range(5)])
    problems = await provider.check_content(content, config, [[f.info for f in five]])
    assert ("content.media", "mastodon: 5 files, at most 4") in problems

    infos = [image(size=1_000_001).info, video().info]
    found = dict(await provider.check_content(content, config, [infos]))
    assert found["content.media"] == (
        "mastodon: a video or audio file must be a status' only file")
    assert found["content.media.0"] == "mastodon: 1000001 bytes, at most 1000000 for an image"

    pdf = MediaInfo("application/pdf", 10)
    threaded = Content(text="x", thread=[ThreadItem(text="y")])
    problems = await provider.check_content(threaded, config, [[], [pdf]])
    assert problems == [("content.thread.0.media.0",
                         "mastodon: application/pdf is not a type this instance takes")]
    assert await provider.check_content(threaded, config, [[image().info], []]) == []


async def test_lookup_of_a_thread_wants_its_last_part(
    provider: MastodonProvider, emulator: MastodonEmulator
) -> None:
    account = emulator.account()
    since = datetime.now(UTC)
    request = media_request(account, "head", thread=[("tail", [])])
    await fast(provider).publish(dataclasses.replace(
        request, content=Content(text="head")))  # only the first part was made
    assert await provider.lookup(request, since) is None
    published = await provider.publish(request)
    fresh = dataclasses.replace(request, checkpoints=MemoryCheckpoints())
    assert await provider.lookup(fresh, since) == published
