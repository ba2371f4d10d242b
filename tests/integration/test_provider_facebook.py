"""The real FacebookProvider against the Graph API emulator over loopback sockets."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from shared.models import Content, Media, ThreadItem
from shared.providers.base import (
    AuthRevoked,
    MediaInfo,
    MemoryCheckpoints,
    OAuthApp,
    OutcomeUnknown,
    Permanent,
    Published,
    PublishRequest,
    RateLimited,
    Transient,
)
from shared.providers.facebook import FacebookProvider
from tests.emulators.facebook import (
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_PAGE_ID,
    PAGE_ID,
    FacebookEmulator,
)
from tests.emulators.platform import s256
from tests.integration.media_threads import Scripted, image, media_request, video
from tests.integration.platform_support import Serve, control, publish_request, running

REDIRECT_URI = "https://herald.example/api/v1/oauth/callback"
VERIFIER = "v" * 64
APP = OAuthApp(CLIENT_ID, CLIENT_SECRET)


@pytest.fixture
async def emulator() -> AsyncIterator[FacebookEmulator]:
    async with running(FacebookEmulator) as e:
        yield e


@pytest.fixture
def provider(session: aiohttp.ClientSession) -> FacebookProvider:
    return FacebookProvider(session)


def request_for(emulator: FacebookEmulator, text: str = "Hello, Page", *,
                token: str | None = None, **config: Any) -> PublishRequest:
    account = emulator.account()
    token = token or account["credentials"]["page_access_token"]
    return publish_request(account, text, credentials={"page_access_token": token}, **config)


# --- publishing -------------------------------------------------------------------------------


async def test_publish_posts_to_the_page_feed(
    provider: FacebookProvider, emulator: FacebookEmulator
) -> None:
    request = request_for(emulator, "Launch day 🚀")
    published = await provider.publish(request)

    [post] = emulator.posts
    assert post["text"] == "Launch day 🚀" and post["page_id"] == PAGE_ID
    assert post["access_token"] == request.credentials["page_access_token"]
    assert published == Published(post["id"], f"https://www.facebook.com/{post['id']}")
    assert published.platform_post_id and published.platform_post_id.startswith(f"{PAGE_ID}_")
    [call] = [r for r in emulator.received if r["path"].endswith("/feed")]
    assert call["method"] == "POST" and call["path"] == f"/v26.0/{PAGE_ID}/feed"
    assert call["params"] == {"message": "Launch day 🚀",
                              "access_token": request.credentials["page_access_token"]}


async def test_api_version_is_configurable(
    provider: FacebookProvider, emulator: FacebookEmulator
) -> None:
    await provider.publish(request_for(emulator, api_version="v25.0"))
    assert [r["path"] for r in emulator.received] == [f"/v25.0/{PAGE_ID}/feed"]


async def test_page_throttle_waits_the_minutes_graph_names(
    provider: FacebookProvider, emulator: FacebookEmulator, session: aiohttp.ClientSession
) -> None:
    # 150 s is rendered as estimated_time_to_regain_access = 3 (minutes, rounded up).
    await control(session, emulator, rate_limit_next=1, retry_after=150)
    before = datetime.now(UTC)
    with pytest.raises(RateLimited, match="#32") as info:
        await provider.publish(request_for(emulator))
    assert info.value.scope == "account"
    assert before + timedelta(minutes=3) <= info.value.retry_at
    assert info.value.retry_at <= datetime.now(UTC) + timedelta(minutes=3)
    assert emulator.posts == []
    assert (await provider.publish(request_for(emulator))).platform_post_id


async def test_business_use_case_throttle_is_the_pages(
    provider: FacebookProvider, emulator: FacebookEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.throttle_code = 80001
    await control(session, emulator, rate_limit_next=1, retry_after=600)
    before = datetime.now(UTC)
    with pytest.raises(RateLimited, match="80001") as info:
        await provider.publish(request_for(emulator))
    assert info.value.scope == "account"
    assert before + timedelta(minutes=10) <= info.value.retry_at
    assert info.value.retry_at <= datetime.now(UTC) + timedelta(minutes=10)


async def test_app_throttle_without_a_regain_time_waits_an_hour_for_the_whole_app(
    provider: FacebookProvider, emulator: FacebookEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.throttle_code = 4
    await control(session, emulator, rate_limit_next=1, retry_after=150)
    before = datetime.now(UTC)
    with pytest.raises(RateLimited, match="#4") as info:
        await provider.publish(request_for(emulator))
    assert info.value.scope == "app"
    assert before + timedelta(minutes=60) <= info.value.retry_at
    assert info.value.retry_at <= datetime.now(UTC) + timedelta(minutes=60)


async def test_server_error_is_transient(
    provider: FacebookProvider, emulator: FacebookEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, fail_next=1, fail_status=503)
    with pytest.raises(Transient, match="503"):
        await provider.publish(request_for(emulator))
    assert emulator.posts == []


async def test_dropped_connection_is_an_unknown_outcome(
    provider: FacebookProvider, emulator: FacebookEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, drop_next=1)
    with pytest.raises(OutcomeUnknown, match="connection lost"):
        await provider.publish(request_for(emulator))
    assert emulator.posts == []
    assert await provider.lookup(request_for(emulator), datetime.now(UTC)) is None


async def test_unreachable_graph_is_transient(
    provider: FacebookProvider, emulator: FacebookEmulator
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(Transient, match="unreachable") as info:
        await provider.publish(request_for(emulator, api_base=f"http://127.0.0.1:{port}"))
    assert not isinstance(info.value, OutcomeUnknown)


async def test_lost_answer_is_an_unknown_outcome_and_lookup_finds_the_post(
    provider: FacebookProvider, emulator: FacebookEmulator, session: aiohttp.ClientSession
) -> None:
    since = datetime.now(UTC)
    request = request_for(emulator, "Only once, please")
    await control(session, emulator, drop_after_next=1)
    with pytest.raises(OutcomeUnknown):
        await provider.publish(request)
    [post] = emulator.posts  # Facebook made it; only the answer was lost

    found = await provider.lookup(request, since)
    assert found is not None and found.platform_post_id == post["id"]
    assert found.url == f"https://www.facebook.com/{PAGE_ID}/posts/{post['id'].split('_')[1]}"
    [call] = [r for r in emulator.received if r["path"].endswith("/published_posts")]
    assert call["params"]["since"] == str(int(since.timestamp()) - 60)


async def test_lookup_matches_the_exact_message_after_since_only(
    provider: FacebookProvider, emulator: FacebookEmulator
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    published = await provider.publish(request_for(emulator, "exact text"))
    await provider.publish(request_for(emulator, "exact text, but longer"))

    found = await provider.lookup(request_for(emulator, "exact text"), since)
    assert found is not None and found.platform_post_id == published.platform_post_id
    assert await provider.lookup(request_for(emulator, "exact"), since) is None
    # Facebook may tidy whitespace; the post is still this job's.
    tidied = await provider.lookup(request_for(emulator, " exact  text\n"), since)
    assert tidied is not None and tidied.platform_post_id == published.platform_post_id
    # Posts from before `since` (less a minute for clock skew) are not this attempt's.
    later = datetime.now(UTC) + timedelta(seconds=65)
    assert await provider.lookup(request_for(emulator, "exact text"), later) is None
    # A naive datetime, as MongoDB hands them back, is UTC.
    naive = since.astimezone(UTC).replace(tzinfo=None)
    assert await provider.lookup(request_for(emulator, "exact text"), naive) is not None


async def test_lookup_follows_cursor_pages(
    provider: FacebookProvider, emulator: FacebookEmulator
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    first = await provider.publish(request_for(emulator, "the oldest"))
    for n in range(120):
        emulator.record(f"filler {n}", id=f"{PAGE_ID}_{n + 1}", page_id=PAGE_ID)
    found = await provider.lookup(request_for(emulator, "the oldest"), since)
    assert found is not None and found.platform_post_id == first.platform_post_id
    pages = [r for r in emulator.received if r["path"].endswith("/published_posts")]
    assert len(pages) == 2 and "after" in pages[1]["params"]


async def test_expired_page_token_is_revoked_and_the_token_is_never_shown(
    provider: FacebookProvider, emulator: FacebookEmulator, session: aiohttp.ClientSession
) -> None:
    request = request_for(emulator)
    await control(session, emulator, expire_tokens=True)
    with pytest.raises(AuthRevoked, match="190") as info:
        await provider.publish(request)
    assert request.credentials["page_access_token"] not in str(info.value)
    with pytest.raises(AuthRevoked, match="190"):
        await provider.lookup(request, datetime.now(UTC))
    assert emulator.posts == []


async def test_expired_answer_is_revoked(
    provider: FacebookProvider, emulator: FacebookEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, expire_next=1)
    with pytest.raises(AuthRevoked, match="463"):
        await provider.publish(request_for(emulator))


async def test_refresh_is_impossible(provider: FacebookProvider) -> None:
    with pytest.raises(AuthRevoked):
        await provider.refresh({}, {"page_access_token": "x"}, APP)


async def test_token_of_another_page_is_refused_as_a_missing_permission(
    provider: FacebookProvider, emulator: FacebookEmulator
) -> None:
    other = emulator.page_token(OTHER_PAGE_ID)
    with pytest.raises(AuthRevoked, match="#200"):
        await provider.publish(request_for(emulator, token=other))
    assert emulator.posts == []


async def test_unknown_token_is_revoked(
    provider: FacebookProvider, emulator: FacebookEmulator
) -> None:
    with pytest.raises(AuthRevoked, match="Cannot parse access token"):
        await provider.publish(request_for(emulator, token="EAAnot-a-token"))


async def test_invalid_account_is_permanent_before_any_call(
    provider: FacebookProvider, emulator: FacebookEmulator
) -> None:
    with pytest.raises(Permanent, match="page_id"):
        await provider.publish(request_for(emulator, page_id="my-page"))
    assert emulator.received == []


async def test_emulator_refuses_malformed_requests_as_graph_does(
    emulator: FacebookEmulator, session: aiohttp.ClientSession
) -> None:
    feed = f"{emulator.base_url}/v26.0/{PAGE_ID}/feed"
    token = emulator.page_token(PAGE_ID)
    async with session.post(feed, data={"message": "no token"}) as response:
        error = (await response.json())["error"]
        assert response.status == 400
        assert error["code"] == 104 and error["type"] == "OAuthException"
        assert isinstance(error["fbtrace_id"], str)
    async with session.post(feed, data={"access_token": token}) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == 100
    async with session.post(feed, data={"access_token": token,
                                        "message": "😀" * 31_604}) as response:
        assert response.status == 400  # 63,208 UTF-16 code units
    async with session.post(feed, headers={"Authorization": f"Bearer {token}"},
                            json={"message": "JSON and a Bearer token also do"}) as response:
        assert response.status == 200
    async with session.get(f"{emulator.base_url}/v26.0/{PAGE_ID}/nonsense") as response:
        assert (await response.json())["error"]["code"] == 2500
    assert [p["text"] for p in emulator.posts] == ["JSON and a Bearer token also do"]


# --- limits -----------------------------------------------------------------------------------


async def test_text_limit_in_utf16_code_units(provider: FacebookProvider) -> None:
    assert await provider.check_content(Content(text="x" * 63_206), {}) == []
    assert await provider.check_content(Content(text="😀" * 31_603), {}) == []
    assert await provider.check_content(Content(text="x" * 63_207), {}) == [
        ("content.text", "facebook: 63207 UTF-16 code units, at most 63206")]
    assert await provider.check_content(Content(text="😀" * 31_604), {}) == [
        ("content.text", "facebook: 63208 UTF-16 code units, at most 63206")]


async def test_account_fields_are_validated(provider: FacebookProvider) -> None:
    good = {"page_id": PAGE_ID}
    assert provider.validate_account(good, {"page_access_token": "EAAB"}) == []
    problems = provider.validate_account(
        {"page_id": 123, "api_version": "26", "extra": 1}, {"token": "x"})
    assert {field for field, _ in problems} == {
        "config.page_id", "config.api_version", "config.extra",
        "credentials.page_access_token", "credentials.token"}


# --- connecting -------------------------------------------------------------------------------


async def test_authorization_url_names_app_scopes_state_and_pkce(
    provider: FacebookProvider, emulator: FacebookEmulator
) -> None:
    url = provider.authorization_url({"auth_base": emulator.base_url}, APP, REDIRECT_URI,
                                     "state-123", s256(VERIFIER))
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == emulator.base_url
    assert parts.path == "/v26.0/dialog/oauth"
    query = {k: v for k, [v] in parse_qs(parts.query).items()}
    assert query == {
        "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "state": "state-123",
        "response_type": "code",
        "scope": "pages_manage_posts,pages_read_engagement,pages_show_list",
        "code_challenge": s256(VERIFIER), "code_challenge_method": "S256",
    }
    default = urlsplit(provider.authorization_url({}, APP, REDIRECT_URI, "s", "c"))
    assert (default.netloc, default.path) == ("www.facebook.com", "/v26.0/dialog/oauth")


async def authorize(session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    """Follow the Login dialog as the browser does, up to the redirect back to Herald."""
    async with session.get(url, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    return {k: v for k, [v] in parse_qs(location.query).items()}


async def test_connect_round_trip_gives_a_page_token_that_publishes(
    provider: FacebookProvider, emulator: FacebookEmulator, session: aiohttp.ClientSession
) -> None:
    config = {"api_base": emulator.base_url, "auth_base": emulator.base_url,
              "page_id": PAGE_ID}
    url = provider.authorization_url(config, APP, REDIRECT_URI, "state-9", s256(VERIFIER))
    back = await authorize(session, url)
    assert back["state"] == "state-9"

    connected = await provider.exchange_code(config, APP, REDIRECT_URI, back["code"], VERIFIER)
    assert connected.config == {"page_id": PAGE_ID}
    page_token = connected.credentials["page_access_token"]
    assert list(connected.credentials) == ["page_access_token"]
    # The page token came from a long-lived user token: it does not expire.
    grant = emulator.tokens.by_access[page_token]
    assert emulator.kinds[page_token] == "page" and grant.subject == PAGE_ID
    assert grant.expires_at > datetime.now(UTC).timestamp() + 365 * 86400
    grants = [r["params"] for r in emulator.received if r["path"].endswith("/access_token")]
    assert grants[0]["code_verifier"] == VERIFIER and grants[0]["code"] == back["code"]
    assert grants[0]["client_secret"] == CLIENT_SECRET
    assert grants[1]["grant_type"] == "fb_exchange_token"
    assert emulator.tokens.refresh_calls == 1

    request = request_for(emulator, "Connected through OAuth", token=page_token)
    assert (await provider.publish(request)).platform_post_id == emulator.posts[0]["id"]


async def test_connect_without_a_page_id_needs_one_page_or_a_choice(
    provider: FacebookProvider, emulator: FacebookEmulator, session: aiohttp.ClientSession
) -> None:
    config = {"api_base": emulator.base_url, "auth_base": emulator.base_url}
    back = await authorize(session, provider.authorization_url(
        config, APP, REDIRECT_URI, "s", s256(VERIFIER)))
    with pytest.raises(Permanent, match=f"set config.page_id.*{PAGE_ID}.*{OTHER_PAGE_ID}"):
        await provider.exchange_code(config, APP, REDIRECT_URI, back["code"], VERIFIER)


async def test_code_with_the_wrong_verifier_is_refused(
    provider: FacebookProvider, emulator: FacebookEmulator, session: aiohttp.ClientSession
) -> None:
    config = {"api_base": emulator.base_url, "auth_base": emulator.base_url,
              "page_id": PAGE_ID}
    back = await authorize(session, provider.authorization_url(
        config, APP, REDIRECT_URI, "s", s256(VERIFIER)))
    with pytest.raises(Permanent, match="code_verifier") as info:
        await provider.exchange_code(config, APP, REDIRECT_URI, back["code"], "w" * 64)
    assert back["code"] not in str(info.value) and CLIENT_SECRET not in str(info.value)
    # The code is spent: a second try with the right verifier is refused too.
    with pytest.raises(Permanent, match="36009"):
        await provider.exchange_code(config, APP, REDIRECT_URI, back["code"], VERIFIER)


async def test_wrong_app_secret_is_refused_not_transient(
    provider: FacebookProvider, emulator: FacebookEmulator, session: aiohttp.ClientSession
) -> None:
    config = {"api_base": emulator.base_url, "page_id": PAGE_ID}
    back = await authorize(session, provider.authorization_url(
        {"auth_base": emulator.base_url}, APP, REDIRECT_URI, "s", s256(VERIFIER)))
    with pytest.raises(Permanent, match="client secret") as info:
        await provider.exchange_code(config, OAuthApp(CLIENT_ID, "wrong-secret"),
                                     REDIRECT_URI, back["code"], VERIFIER)
    assert not isinstance(info.value, Transient) and "wrong-secret" not in str(info.value)


async def test_refused_extension_fails_the_connect(
    provider: FacebookProvider, emulator: FacebookEmulator, session: aiohttp.ClientSession
) -> None:
    config = {"api_base": emulator.base_url, "page_id": PAGE_ID}
    back = await authorize(session, provider.authorization_url(
        {"auth_base": emulator.base_url}, APP, REDIRECT_URI, "s", s256(VERIFIER)))
    await control(session, emulator, refuse_refresh=True)
    with pytest.raises(Permanent, match="190"):
        await provider.exchange_code(config, APP, REDIRECT_URI, back["code"], VERIFIER)


async def test_dialog_refuses_unknown_app_and_unknown_scope(
    emulator: FacebookEmulator, session: aiohttp.ClientSession
) -> None:
    base = f"{emulator.base_url}/v26.0/dialog/oauth"
    common = {"redirect_uri": REDIRECT_URI, "state": "s", "response_type": "code"}
    async with session.get(base, params={**common, "client_id": "nobody"},
                           allow_redirects=False) as response:
        assert response.status == 400
    async with session.get(base, params={**common, "client_id": CLIENT_ID,
                                         "scope": "publish_everything"},
                           allow_redirects=False) as response:
        assert response.status == 400 and "publish_everything" in await response.text()


# --- Graph errors the emulator does not play ------------------------------------------------


@pytest.mark.parametrize(("status", "error", "headers", "expected", "scope", "minutes"), [
    (400, {"code": 17, "message": "(#17) User request limit reached"},
     {"X-Page-Usage": json.dumps({"call_count": 100, "estimated_time_to_regain_access": 7})},
     RateLimited, "account", 7),
    (400, {"code": 613, "message": "(#613) Calls to this api have exceeded the rate limit."},
     {}, RateLimited, "request", 60),
    (500, {"code": 1, "message": "An unknown error occurred"}, {}, Transient, None, None),
    (400, {"code": 100, "message": "(#100) Try again", "is_transient": True}, {}, Transient,
     None, None),
    (400, {"code": 10, "message": "(#10) Permission denied"}, {}, AuthRevoked, None, None),
    (400, {"code": 368, "message": "(#368) Temporarily blocked for policies violations"}, {},
     Permanent, None, None),
    (400, {"code": 506, "message": "(#506) Duplicate status message"}, {}, Permanent, None,
     None),
])
async def test_graph_error_codes_are_mapped(
    provider: FacebookProvider, emulator: FacebookEmulator,
    serve: Serve, status: int, error: dict[str, Any],
    headers: dict[str, str], expected: type[Exception], scope: str | None,
    minutes: int | None,
) -> None:
    async def graph(_request: web.Request) -> web.Response:
        return web.json_response({"error": {**error, "type": "OAuthException",
                                             "fbtrace_id": "Ab1"}},
                                 status=status, headers=headers)

    base = await serve(graph)
    before = datetime.now(UTC)
    with pytest.raises(expected) as info:
        await provider.publish(request_for(emulator, api_base=base))
    assert type(info.value) is expected
    if isinstance(info.value, RateLimited):
        assert info.value.scope == scope and minutes is not None
        assert before + timedelta(minutes=minutes) <= info.value.retry_at
        assert info.value.retry_at <= datetime.now(UTC) + timedelta(minutes=minutes)



# --- media ------------------------------------------------------------------------------------


async def test_one_photo_is_a_photo_post_with_its_caption_and_alt_text(
    provider: FacebookProvider, emulator: FacebookEmulator
) -> None:
    picture = image(alt="a lighthouse", content_type="image/jpeg")
    published = await provider.publish(media_request(emulator.account(), "a photo",
                                                     media=[picture]))
    [photo] = emulator.state()["media"]
    assert (photo["sha256"], photo["size"]) == (picture.sha256, len(picture.data))
    assert photo["alt_text"] == "a lighthouse" and photo["published"] is True
    [post] = emulator.posts
    assert post["text"] == "a photo" and post["media"] == [photo["id"]]
    assert published == Published(post["id"], f"https://www.facebook.com/{post['id']}")


async def test_several_photos_are_attached_to_one_feed_post(
    provider: FacebookProvider, emulator: FacebookEmulator
) -> None:
    files = [image("a"), image("b", content_type="image/gif"), image("c")]
    request = media_request(emulator.account(), "three photos", media=files)
    published = await provider.publish(request)
    photos = emulator.state()["media"]
    assert [p["sha256"] for p in photos] == [f.sha256 for f in files]
    assert not any(p["published"] for p in photos)
    [post] = emulator.posts
    assert post["media"] == [p["id"] for p in photos] == request.checkpoints.get("media_0")
    assert published.platform_post_id == post["id"]


async def test_a_failure_after_the_uploads_does_not_upload_again(
    provider: FacebookProvider, emulator: FacebookEmulator
) -> None:
    def fail_the_post(key: str, value: Any) -> None:
        if key == "media_0" and len(value) == 2:
            emulator.faults.fail_next = 1

    request = media_request(emulator.account(), "after a failure", media=[image("a"),
                                                                         image("b")],
                            checkpoints=Scripted(fail_the_post))
    with pytest.raises(Transient):
        await provider.publish(request)
    assert emulator.posts == []
    await provider.publish(request)
    assert len(emulator.state()["media"]) == 2
    assert emulator.posts[0]["media"] == request.checkpoints.get("media_0")


async def test_a_video_is_uploaded_in_the_ranges_graph_names(
    provider: FacebookProvider, emulator: FacebookEmulator
) -> None:
    emulator.video_chunk_size = 1_000_000
    clip = video(size=2_500_000)
    request = media_request(emulator.account(), "a video", media=[clip])
    published = await provider.publish(request)
    [stored] = emulator.state()["media"]
    assert (stored["kind"], stored["sha256"]) == ("video", clip.sha256)
    [post] = emulator.posts
    assert post["text"] == "a video"
    assert published == Published(stored["id"], f"https://www.facebook.com/{PAGE_ID}/videos/"
                                                f"{stored['id']}")
    phases = [c["params"].get("upload_phase") for c in emulator.received]
    assert phases == ["start", "transfer", "transfer", "transfer", "finish"]


async def test_a_video_transfer_cut_off_goes_on_from_the_saved_range(
    provider: FacebookProvider, emulator: FacebookEmulator
) -> None:
    emulator.video_chunk_size = 1_000_000
    clip = video(size=2_500_000)

    def drop_second_range(key: str, value: Any) -> None:
        if key == "video_0" and value["start"] == 1_000_000:
            emulator.faults.drop_next = 1

    request = media_request(emulator.account(), "resumed", media=[clip],
                            checkpoints=Scripted(drop_second_range))
    with pytest.raises(Transient) as info:
        await provider.publish(request)
    assert not isinstance(info.value, OutcomeUnknown)  # only `finish` publishes
    assert emulator.posts == []
    await provider.publish(request)
    [stored] = emulator.state()["media"]
    assert stored["sha256"] == clip.sha256
    assert [c["params"].get("upload_phase") for c in emulator.received].count("start") == 1


async def test_graph_refuses_photos_that_are_not_the_pages_or_already_used(
    provider: FacebookProvider, emulator: FacebookEmulator
) -> None:
    first = media_request(emulator.account(), "first", media=[image("a"), image("b")])
    await provider.publish(first)
    again = media_request(emulator.account(), "again", media=[image("a"), image("b")],
                          checkpoints=MemoryCheckpoints({"media_0": first.checkpoints.get(
                              "media_0")}))
    with pytest.raises(Permanent, match=r"attached_media\[0\] must be a valid"):
        await provider.publish(again)
    with pytest.raises(Permanent, match="324"):
        await provider.publish(media_request(emulator.account(), "big", media=[
            image(size=4 * 1024 * 1024 + 1)]))
    assert len(emulator.posts) == 1


async def test_media_limits_are_checked_at_scheduling(provider: FacebookProvider) -> None:
    def content(n: int = 1) -> Content:
        return Content(text="x", media=[Media.model_validate({"url": "https://m.example/a"})
                                        for _ in range(n)])

    png = MediaInfo("image/png", 1000)
    mp4 = MediaInfo("video/mp4", 3_000_000, duration_seconds=12.0)
    config = {"page_id": PAGE_ID}
    assert await provider.check_content(content(2), config, [[png, png]]) == []
    assert await provider.check_content(content(), config, [[mp4]]) == []
    assert await provider.check_content(content(3), config, [[
        png, mp4, MediaInfo("image/webp", 10)]]) == [
        ("content.media", "facebook: a video must be a post's only file"),
        ("content.media.2", "facebook: image/webp is not a photo (JPEG, PNG, GIF, BMP, TIFF) "
                            "or a video")]
    assert await provider.check_content(content(), config, [[
        MediaInfo("image/png", 4 * 1024 * 1024 + 1)]]) == [
        ("content.media.0", "facebook: 4194305 bytes, at most 4194304 for a photo")]
    assert await provider.check_content(content(), config, [[
        MediaInfo("video/mp4", 10, duration_seconds=14_401)]]) == [
        ("content.media.0", "facebook: 14401 s, at most 14400 s")]
    threaded = Content(text="x", thread=[ThreadItem(text="y")])
    assert await provider.check_content(threaded, config, [[], []]) == [
        ("content.thread", "facebook: threads are not supported")]
