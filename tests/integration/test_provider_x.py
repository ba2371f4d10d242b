"""The real XProvider against the real X emulator over loopback sockets."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from shared.models import Content
from shared.providers.base import (
    AuthExpired,
    AuthRevoked,
    OAuthApp,
    OutcomeUnknown,
    Permanent,
    Published,
    RateLimited,
    Transient,
)
from shared.providers.x import XProvider
from tests.emulators.platform import s256
from tests.emulators.x import CLIENT_ID, CLIENT_SECRET, XEmulator
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
                     "scope": "tweet.read tweet.write users.read offline.access",
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
