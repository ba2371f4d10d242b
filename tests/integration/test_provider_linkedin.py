"""The real LinkedInProvider against the real LinkedIn emulator over loopback sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

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
from shared.providers.linkedin import DEFAULT_API_VERSION, LinkedInProvider, escape_little_text
from tests.emulators.linkedin import CLIENT_ID, CLIENT_SECRET, ORGANIZATION, LinkedInEmulator
from tests.integration.media_threads import Scripted, image, media_request, video
from tests.integration.platform_support import Serve, control, publish_request, running

APP = OAuthApp(CLIENT_ID, CLIENT_SECRET)
REDIRECT = "https://ops.example/api/v1/oauth/callback"
RESERVED_TEXT = r"Big news (v2.0) [beta] {x} <y> @team #launch *b* _i_ ~s~ a|b back\slash"


@pytest.fixture
async def emulator() -> AsyncIterator[LinkedInEmulator]:
    async with running(LinkedInEmulator) as e:
        yield e


@pytest.fixture
def provider(session: aiohttp.ClientSession) -> LinkedInProvider:
    return LinkedInProvider(session)


async def test_publish_sends_linkedins_contract_and_keeps_the_urn(
        provider: LinkedInProvider, emulator: LinkedInEmulator) -> None:
    account = emulator.account()
    published = await provider.publish(publish_request(account))

    [post] = emulator.posts
    assert published == Published(post["id"], f"https://www.linkedin.com/feed/update/{post['id']}/")
    assert post["id"].startswith("urn:li:share:")
    assert post["headers"] == {"LinkedIn-Version": DEFAULT_API_VERSION,
                               "X-Restli-Protocol-Version": "2.0.0",
                               "Content-Type": "application/json"}
    assert post["body"] == {
        "author": account["config"]["author_urn"], "commentary": "Hello from Herald",
        "visibility": "PUBLIC",
        "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                         "thirdPartyDistributionChannels": []},
        "lifecycleState": "PUBLISHED", "isReshareDisabledByAuthor": False,
    }


async def test_reserved_characters_are_escaped_and_shown_as_written(
        provider: LinkedInProvider, emulator: LinkedInEmulator,
        session: aiohttp.ClientSession) -> None:
    assert escape_little_text("a(b)\\c") == "a\\(b\\)\\\\c"
    for char in "|{}@[]()<>#\\*_~":
        assert escape_little_text(char) == "\\" + char
    account = emulator.account()
    await provider.publish(publish_request(account, RESERVED_TEXT))
    [post] = emulator.posts
    assert post["commentary"] == escape_little_text(RESERVED_TEXT)
    assert (post["text"], post["mangled"]) == (RESERVED_TEXT, False)

    # The emulator does catch an unescaped reserved character, as LinkedIn cuts the text.
    body = {**post["body"], "commentary": "Sale (today only) ends soon"}
    headers = {"Authorization": f"Bearer {account['credentials']['access_token']}",
               "LinkedIn-Version": DEFAULT_API_VERSION, "X-Restli-Protocol-Version": "2.0.0"}
    async with session.post(f"{emulator.base_url}/rest/posts", json=body,
                            headers=headers) as response:
        assert response.status == 201
    assert (emulator.posts[1]["text"], emulator.posts[1]["mangled"]) == ("Sale ", True)


async def test_429_waits_for_midnight_utc_and_holds_the_account(
        provider: LinkedInProvider, emulator: LinkedInEmulator,
        session: aiohttp.ClientSession) -> None:
    await control(session, emulator, rate_limit_next=1)
    with pytest.raises(RateLimited) as info:
        await provider.publish(publish_request(emulator.account()))
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    assert info.value.retry_at == datetime(tomorrow.year, tomorrow.month, tomorrow.day,
                                           tzinfo=UTC)
    assert info.value.scope == "account"
    assert emulator.posts == []


async def test_other_429s_wait_a_minute_or_retry_after(
        provider: LinkedInProvider, emulator: LinkedInEmulator,
        serve: Serve) -> None:
    async def throttled(request: web.Request) -> web.Response:
        headers = {"Retry-After": "5"} if request.path.startswith("/after/") else {}
        return web.json_response({"status": 429, "message": "Too Many Requests"}, status=429,
                                 headers=headers)

    base = await serve(throttled)
    account = emulator.account()
    with pytest.raises(RateLimited) as info:
        await provider.publish(publish_request(account, api_base=base))
    wait = (info.value.retry_at - datetime.now(UTC)).total_seconds()
    assert 55 < wait <= 60 and info.value.scope == "request"
    with pytest.raises(RateLimited) as info:
        await provider.publish(publish_request(account, api_base=base + "/after"))
    assert 0 < (info.value.retry_at - datetime.now(UTC)).total_seconds() <= 5


async def test_server_error_is_transient_and_a_drop_leaves_the_outcome_unknown(
        provider: LinkedInProvider, emulator: LinkedInEmulator,
        session: aiohttp.ClientSession) -> None:
    request = publish_request(emulator.account())
    await control(session, emulator, fail_next=1, fail_status=500)
    with pytest.raises(Transient, match="500"):
        await provider.publish(request)
    await control(session, emulator, drop_next=1)
    with pytest.raises(OutcomeUnknown):
        await provider.publish(request)
    assert emulator.posts == []
    assert (await provider.publish(request)).platform_post_id == emulator.posts[0]["id"]


async def test_expired_token_is_refreshed_with_the_same_refresh_token(
        provider: LinkedInProvider, emulator: LinkedInEmulator,
        session: aiohttp.ClientSession) -> None:
    account = emulator.account()
    old = account["credentials"]
    await control(session, emulator, expire_tokens=True)
    with pytest.raises(AuthExpired, match="401") as info:
        await provider.publish(publish_request(account))
    assert old["access_token"] not in str(info.value)

    new = await provider.refresh(account["config"], old, APP)
    assert new["access_token"] != old["access_token"]
    assert new["refresh_token"] == old["refresh_token"]  # LinkedIn does not rotate it
    expires = datetime.fromisoformat(new["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=59, hours=23) < expires - datetime.now(UTC) <= timedelta(days=60)
    await provider.publish(publish_request(account, credentials=new))
    again = await provider.refresh(account["config"], new, APP)
    assert again["refresh_token"] == old["refresh_token"]
    assert emulator.tokens.refresh_calls == 2


async def test_expired_token_without_a_refresh_token_is_revoked(
        provider: LinkedInProvider, emulator: LinkedInEmulator,
        session: aiohttp.ClientSession) -> None:
    account = emulator.account(refresh_token=False)
    await control(session, emulator, expire_tokens=True)
    with pytest.raises(AuthRevoked, match="reconnect"):
        await provider.publish(publish_request(account))
    with pytest.raises(AuthRevoked):
        await provider.refresh(account["config"], account["credentials"], APP)


async def test_refused_refresh_is_auth_revoked(
        provider: LinkedInProvider, emulator: LinkedInEmulator,
        session: aiohttp.ClientSession) -> None:
    account = emulator.account()
    await control(session, emulator, refuse_refresh=True)
    with pytest.raises(AuthRevoked, match="400") as info:
        await provider.refresh(account["config"], account["credentials"], APP)
    message = str(info.value)
    assert account["credentials"]["refresh_token"] not in message
    assert CLIENT_SECRET not in message


async def test_emulator_refuses_requests_without_linkedins_headers(
        provider: LinkedInProvider, emulator: LinkedInEmulator,
        session: aiohttp.ClientSession) -> None:
    account = emulator.account()
    await provider.publish(publish_request(account))
    body = emulator.posts[0]["body"]
    url = f"{emulator.base_url}/rest/posts"
    auth = {"Authorization": f"Bearer {account['credentials']['access_token']}"}
    async with session.post(url, json=body, headers=auth) as response:
        assert response.status == 400
        assert (await response.json())["code"] == "VERSION_MISSING"
    async with session.post(url, json=body, headers={
            **auth, "LinkedIn-Version": DEFAULT_API_VERSION}) as response:
        assert response.status == 400
    async with session.post(url, json={**body, "text": "x"}, headers={
            **auth, "LinkedIn-Version": DEFAULT_API_VERSION,
            "X-Restli-Protocol-Version": "2.0.0"}) as response:
        assert response.status == 400
        assert "Unpermitted fields" in (await response.json())["message"]
    with pytest.raises(Permanent, match=r"426.*NONEXISTENT_VERSION.*api_version"):
        await provider.publish(publish_request(account, "another", api_version="202001"))
    assert len(emulator.posts) == 1


async def test_text_is_measured_in_utf16_characters_before_escaping(
        provider: LinkedInProvider, emulator: LinkedInEmulator) -> None:
    async def problems(text: str) -> list[tuple[str, str]]:
        return await provider.check_content(Content(text=text), {})

    assert await problems("a" * 3000) == []
    assert await problems("a" * 3001) == [("content.text",
                                           "linkedin: 3001 characters, at most 3000")]
    assert await problems("🎉" * 1500) == []
    assert await problems("🎉" * 1501) == [("content.text",
                                            "linkedin: 3002 characters, at most 3000")]
    account = emulator.account()
    await provider.publish(publish_request(account, "(" * 3000))  # 6,000 escaped, 3,000 shown
    assert emulator.posts[0]["text"] == "(" * 3000
    with pytest.raises(Permanent, match="422"):
        await provider.publish(publish_request(account, "b" * 3001))
    assert len(emulator.posts) == 1


async def test_authorization_url_names_client_redirect_state_and_scopes(
        provider: LinkedInProvider) -> None:
    url = provider.authorization_url({}, APP, REDIRECT, "state-1", "unused-challenge")
    parts = urlsplit(url)
    assert (f"{parts.scheme}://{parts.netloc}{parts.path}"
            == "https://www.linkedin.com/oauth/v2/authorization")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT,
                     "state": "state-1", "scope": "openid profile w_member_social"}
    organization = provider.authorization_url({"author_urn": ORGANIZATION}, APP, REDIRECT,
                                              "s", "c")
    assert parse_qs(urlsplit(organization).query)["scope"] == [
        "w_organization_social r_organization_social"]


async def authorize(session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    async with session.get(url, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def test_oauth_round_trip_reads_the_member_urn(
        provider: LinkedInProvider, emulator: LinkedInEmulator,
        session: aiohttp.ClientSession) -> None:
    config = {"api_base": emulator.base_url, "auth_base": emulator.base_url}
    redirected = await authorize(
        session, provider.authorization_url(config, APP, REDIRECT, "state-9", "c"))
    assert redirected["state"] == "state-9"
    connected = await provider.exchange_code(config, APP, REDIRECT, redirected["code"], "")

    assert set(connected.credentials) == {"access_token", "refresh_token", "expires_at"}
    member = emulator.tokens.subject(connected.credentials["access_token"])
    assert connected.config == {"author_urn": f"urn:li:person:{member}"}
    assert emulator.userinfo_calls == 1
    account = {"config": {**config, **connected.config}, "credentials": connected.credentials}
    await provider.publish(publish_request(account))
    assert emulator.posts[0]["author"] == f"urn:li:person:{member}"
    with pytest.raises(Permanent, match="400"):  # a code works once
        await provider.exchange_code(config, APP, REDIRECT, redirected["code"], "")


async def test_oauth_for_an_organization_keeps_its_urn(
        provider: LinkedInProvider, emulator: LinkedInEmulator,
        session: aiohttp.ClientSession) -> None:
    config = {"api_base": emulator.base_url, "auth_base": emulator.base_url,
              "author_urn": ORGANIZATION}
    redirected = await authorize(
        session, provider.authorization_url(config, APP, REDIRECT, "s", "c"))
    connected = await provider.exchange_code(config, APP, REDIRECT, redirected["code"], "")
    assert connected.config == {} and emulator.userinfo_calls == 0
    request = publish_request({"config": config, "credentials": connected.credentials})
    published = await provider.publish(request)
    assert emulator.posts[0]["author"] == ORGANIZATION
    assert await provider.lookup(request, datetime.now(UTC) - timedelta(minutes=1)) == published


async def test_connect_fills_in_the_author_of_a_token_sent_directly(
        provider: LinkedInProvider, emulator: LinkedInEmulator) -> None:
    account = emulator.account()
    config = {k: v for k, v in account["config"].items() if k != "author_urn"}
    connected = await provider.connect(config, account["credentials"])
    assert connected.config == {"author_urn": account["config"]["author_urn"]}
    assert connected.credentials == account["credentials"]
    assert (await provider.connect(account["config"], account["credentials"])).config == {}
    with pytest.raises(Permanent, match="author_urn"):
        await provider.publish(publish_request({"config": config,
                                                "credentials": account["credentials"]}))


async def test_lookup_needs_read_permission(provider: LinkedInProvider,
                                            emulator: LinkedInEmulator) -> None:
    account = emulator.account()
    before = datetime.now(UTC) - timedelta(seconds=2)
    published = await provider.publish(publish_request(account, RESERVED_TEXT))
    assert await provider.lookup(publish_request(account, RESERVED_TEXT), before) == published
    assert await provider.lookup(publish_request(account, "other"), before) is None
    later = datetime.now(UTC) + timedelta(minutes=2)  # past the skew allowance
    assert await provider.lookup(publish_request(account, RESERVED_TEXT), later) is None

    writer = emulator.account(scope="openid profile w_member_social")
    with pytest.raises(Permanent, match=r"403.*r_member_social"):
        await provider.lookup(publish_request(writer), before)


async def test_emulator_wants_urns_in_queries_encoded(emulator: LinkedInEmulator,
                                                     session: aiohttp.ClientSession) -> None:
    account = emulator.account()
    headers = {"Authorization": f"Bearer {account['credentials']['access_token']}",
               "LinkedIn-Version": DEFAULT_API_VERSION, "X-Restli-Protocol-Version": "2.0.0"}
    url = f"{emulator.base_url}/rest/posts?q=author&author={account['config']['author_urn']}"
    async with session.get(url, headers=headers) as response:  # aiohttp leaves ':' as is
        assert response.status == 400
        assert "URL-encoded" in (await response.json())["message"]


async def test_retry_after_a_lost_answer_is_confirmed_by_lookup(
        provider: LinkedInProvider, emulator: LinkedInEmulator,
        session: aiohttp.ClientSession) -> None:
    request = publish_request(emulator.account(), RESERVED_TEXT)
    await control(session, emulator, drop_after_next=1)
    with pytest.raises(OutcomeUnknown):
        await provider.publish(request)
    [post] = emulator.posts
    again = await provider.publish(request)  # 422 DUPLICATE_POST, confirmed by the lookup
    assert again.platform_post_id == post["id"]
    assert len(emulator.posts) == 1


async def test_unconfirmable_duplicate_is_permanent_and_names_the_post(
        provider: LinkedInProvider, emulator: LinkedInEmulator,
        session: aiohttp.ClientSession) -> None:
    writer = emulator.account(scope="openid profile w_member_social")
    request = publish_request(writer, "Quarterly results are out")
    await control(session, emulator, drop_after_next=1)
    with pytest.raises(OutcomeUnknown):
        await provider.publish(request)
    [post] = emulator.posts
    with pytest.raises(Permanent, match=f"duplicate of {post['id']}.*could not be checked"):
        await provider.publish(request)

    reader = emulator.account()
    await provider.publish(publish_request(reader, "Weekly digest"))
    emulator.posts[-1]["created_ms"] -= 2 * 3600 * 1000  # another job's post, 2 hours ago
    with pytest.raises(Permanent, match="no post with this text since"):
        await provider.publish(publish_request(reader, "Weekly digest"))
    assert len(emulator.posts) == 2


# --- media ------------------------------------------------------------------------------------


def fast(provider: LinkedInProvider) -> LinkedInProvider:
    provider.poll_scale = 0.01
    return provider


async def test_an_image_is_uploaded_processed_and_posted_with_its_alt_text(
        provider: LinkedInProvider, emulator: LinkedInEmulator) -> None:
    picture = image(alt="a lighthouse", content_type="image/jpeg")
    request = media_request(emulator.account(), "with an image", media=[picture])
    published = await fast(provider).publish(request)
    [asset] = emulator.state()["assets"]
    assert (asset["sha256"], asset["size"]) == (picture.sha256, len(picture.data))
    assert asset["status"] == "AVAILABLE"  # polled through PROCESSING
    [post] = emulator.posts
    assert post["body"]["content"] == {"media": {"id": asset["urn"], "altText": "a lighthouse"}}
    assert published.platform_post_id == post["id"]
    assert request.checkpoints.get("media_0") == [asset["urn"]]


async def test_several_images_are_a_multi_image_post(
        provider: LinkedInProvider, emulator: LinkedInEmulator) -> None:
    files = [image("a"), image("b", content_type="image/gif"), image("c")]
    await fast(provider).publish(media_request(emulator.account(), "three", media=files))
    assets = emulator.state()["assets"]
    assert [a["sha256"] for a in assets] == [f.sha256 for f in files]
    assert emulator.posts[0]["body"]["content"] == {
        "multiImage": {"images": [{"id": a["urn"]} for a in assets]}}


async def test_a_video_is_put_in_parts_and_finalized_with_their_etags(
        provider: LinkedInProvider, emulator: LinkedInEmulator) -> None:
    emulator.video_part_size = 1_000_000
    clip = video(size=2_500_000)
    request = media_request(emulator.account(), "a video", media=[clip])
    await fast(provider).publish(request)
    [asset] = emulator.state()["assets"]
    assert (asset["kind"], asset["parts"], asset["sha256"]) == ("video", 3, clip.sha256)
    assert emulator.puts == 3
    assert emulator.posts[0]["body"]["content"] == {"media": {"id": asset["urn"]}}
    session = request.checkpoints.get("upload_0_0")
    assert session["urn"] == asset["urn"] and len(session["etags"]) == 3


async def test_a_video_upload_cut_off_goes_on_from_the_last_part_sent(
        provider: LinkedInProvider, emulator: LinkedInEmulator) -> None:
    emulator.video_part_size = 1_000_000
    clip = video(size=2_500_000)

    def drop_part_two(key: str, value: Any) -> None:
        if key == "upload_0_0" and len(value["etags"]) == 1:
            emulator.faults.drop_next = 1

    request = media_request(emulator.account(), "resumed", media=[clip],
                            checkpoints=Scripted(drop_part_two))
    with pytest.raises(Transient) as info:
        await fast(provider).publish(request)
    assert not isinstance(info.value, OutcomeUnknown)  # an upload's lost answer makes no post
    assert emulator.posts == []
    await provider.publish(request)
    [asset] = emulator.state()["assets"]  # one session, resumed
    assert asset["sha256"] == clip.sha256
    assert emulator.puts == 3  # part one once, part two cut off then sent, part three
    assert len(emulator.posts) == 1


async def test_a_finalize_whose_answer_was_lost_is_not_repeated_into_a_failure(
        provider: LinkedInProvider, emulator: LinkedInEmulator) -> None:
    emulator.video_part_size = 1_000_000
    clip = video(size=1_500_000)

    def lose_the_finalize_answer(key: str, value: Any) -> None:
        if key == "upload_0_0" and len(value["etags"]) == 2:
            emulator.faults.drop_after_next = 1

    request = media_request(emulator.account(), "finalized once", media=[clip],
                            checkpoints=Scripted(lose_the_finalize_answer))
    with pytest.raises(Transient):
        await fast(provider).publish(request)
    [asset] = emulator.state()["assets"]
    assert asset["status"] == "PROCESSING"  # LinkedIn did finalize it
    await provider.publish(request)  # a second finalize is refused; the status says it is done
    assert emulator.puts == 2 and len(emulator.posts) == 1
    assert emulator.posts[0]["media"] == [asset["urn"]]


async def test_a_failure_after_the_upload_does_not_upload_again(
        provider: LinkedInProvider, emulator: LinkedInEmulator) -> None:
    def fail_next_call(key: str, _value: Any) -> None:
        if key == "media_0":
            emulator.faults.fail_next = 1

    picture = image()
    request = media_request(emulator.account(), "after a failure", media=[picture],
                            checkpoints=Scripted(fail_next_call))
    with pytest.raises(Transient):
        await fast(provider).publish(request)
    await provider.publish(request)
    assert emulator.puts == 1 and len(emulator.state()["assets"]) == 1
    assert emulator.posts[0]["media"] == request.checkpoints.get("media_0")


async def test_linkedin_refuses_media_that_is_not_the_authors_or_not_ready(
        provider: LinkedInProvider, emulator: LinkedInEmulator) -> None:
    theirs = media_request(emulator.account(), "theirs", media=[image()])
    await fast(provider).publish(theirs)
    mine = media_request(emulator.account(), "mine", media=[image()],
                         checkpoints=MemoryCheckpoints({"media_0": theirs.checkpoints.get(
                             "media_0")}))
    with pytest.raises(Permanent, match="404"):  # its status cannot be read by another member
        await provider.publish(mine)
    account = emulator.account()
    author = account["config"]["author_urn"]
    headers = {"Authorization": f"Bearer {account['credentials']['access_token']}",
               "LinkedIn-Version": DEFAULT_API_VERSION, "X-Restli-Protocol-Version": "2.0.0"}

    async def post_naming(urn: str) -> str:
        body = {"author": author, "commentary": "x", "visibility": "PUBLIC",
                "lifecycleState": "PUBLISHED", "distribution": {"feedDistribution": "MAIN_FEED"},
                "content": {"media": {"id": urn}}}
        async with provider.session.post(f"{emulator.base_url}/rest/posts", json=body,
                                         headers=headers) as response:
            assert response.status == 422
            return str((await response.json())["message"])

    assert "does not exist or is not the author's" in await post_naming("urn:li:image:C4E9")
    async with provider.session.post(
            f"{emulator.base_url}/rest/images", params={"action": "initializeUpload"},
            json={"initializeUploadRequest": {"owner": author}}, headers=headers) as response:
        value = (await response.json())["value"]
    assert "is WAITING_UPLOAD, not AVAILABLE" in await post_naming(value["image"])
    async with provider.session.put(value["uploadUrl"], data=b"bytes",
                                    headers=headers) as response:
        assert response.status == 201 and response.headers["ETag"]
    assert "is PROCESSING, not AVAILABLE" in await post_naming(value["image"])
    assert len(emulator.posts) == 1


async def test_media_limits_are_checked_at_scheduling(provider: LinkedInProvider) -> None:
    def content(n: int = 1, alt: str = "") -> Content:
        return Content(text="x", media=[Media.model_validate({"url": "https://m.example/a",
                                                     "alt": alt}) for _ in range(n)])

    png = MediaInfo("image/png", 1000, 1200, 800)
    mp4 = MediaInfo("video/mp4", 3_000_000, 1280, 720, 12.0)
    assert await provider.check_content(content(), {}, [[png]]) == []
    assert await provider.check_content(content(), {}, [[mp4]]) == []
    assert await provider.check_content(content(2), {}, [[png, mp4]]) == [
        ("content.media", "linkedin: a video must be a post's only file")]
    assert await provider.check_content(content(20), {}, [[png] * 21]) == [
        ("content.media", "linkedin: 21 images, at most 20")]
    problems = await provider.check_content(content(4), {}, [[
        MediaInfo("image/webp", 10), MediaInfo("image/png", 10, 7000, 6000),
        MediaInfo("video/mp4", 1000, duration_seconds=1.0), png]])
    assert problems == [
        ("content.media", "linkedin: a video must be a post's only file"),
        ("content.media.0", "linkedin: image/webp is not an image (JPEG, PNG, GIF) or an MP4 "
                            "video"),
        ("content.media.1", "linkedin: 7000x6000 pixels, at most 36152320 in all"),
        ("content.media.2", "linkedin: 1000 bytes, a video takes 76800 to 524288000"),
        ("content.media.2", "linkedin: 1 s, a video lasts 3 s to 1800 s")]
    threaded = Content(text="x", thread=[ThreadItem(text="y")])
    assert await provider.check_content(threaded, {}, [[], []]) == [
        ("content.thread", "linkedin: threads are not supported")]
