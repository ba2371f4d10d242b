"""The real WebhookProvider against the real receiver emulator over loopback sockets."""

from __future__ import annotations

import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from shared.models import Content
from shared.providers.base import (
    Permanent,
    Published,
    PublishRequest,
    RateLimited,
    Transient,
)
from shared.providers.webhook import WebhookProvider
from tests.emulators.webhook import WebhookReceiver
from tests.integration.platform_support import Serve, control

SECRET = "hook-secret-9f2c"


@pytest.fixture
def receiver_secret() -> str:
    return SECRET


@pytest.fixture
def provider(session: aiohttp.ClientSession) -> WebhookProvider:
    return WebhookProvider(session)


def request_for(url: str, *, job_id: str | None = None, secret: str = SECRET,
                **config: Any) -> PublishRequest:
    return PublishRequest(
        job_id=job_id or uuid.uuid4().hex,
        post_id="post-7",
        account_id="acct-3",
        scheduled_for=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
        content=Content.model_validate({
            "text": "Hello",
            "media": [{"url": "https://cdn.example/cat.png", "alt": "cat"}],
            "thread": [{"text": "more"}],
        }),
        config={"url": url, **config},
        credentials={"secret": secret},
    )


async def deliveries(session: aiohttp.ClientSession, receiver: WebhookReceiver) -> Any:
    async with session.get(f"{receiver.base_url}/_deliveries") as response:
        return await response.json()


async def test_success_keeps_id_and_url(
    provider: WebhookProvider, receiver: WebhookReceiver, session: aiohttp.ClientSession
) -> None:
    request = request_for(receiver.hook_url)
    published = await provider.publish(request)

    seen = await deliveries(session, receiver)
    [delivery] = seen["deliveries"]
    assert delivery["outcome"] == "accepted" and delivery["status"] == 201
    assert published == Published(delivery["response"]["id"], delivery["response"]["url"])
    assert published.url == f"{receiver.base_url}/posts/{published.platform_post_id}"
    assert delivery["key"] == request.job_id
    assert delivery["body"] == {
        "post_id": "post-7", "job_id": request.job_id, "account_id": "acct-3",
        "scheduled_for": "2026-11-23T08:00:00.000Z", "text": "Hello",
        "media": [{"url": "https://cdn.example/cat.png", "alt": "cat", "mime_type": None}],
        "thread": [{"text": "more", "media": []}],
    }
    assert abs(int(delivery["headers"]["X-Herald-Timestamp"]) - time.time()) < 5
    async with session.get(published.url or "") as response:  # the URL resolves
        assert (await response.json())["body"]["job_id"] == request.job_id


async def test_wrong_secret_is_rejected_by_the_receiver_and_permanent(
    provider: WebhookProvider, receiver: WebhookReceiver, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(Permanent, match="401") as info:
        await provider.publish(request_for(receiver.hook_url, secret="not-the-secret"))
    assert "not-the-secret" not in str(info.value)
    seen = await deliveries(session, receiver)
    assert [d["outcome"] for d in seen["deliveries"]] == ["bad_signature"]
    assert seen["accepted"] == {}


async def test_server_error_is_transient(
    provider: WebhookProvider, receiver: WebhookReceiver, session: aiohttp.ClientSession
) -> None:
    await control(session, receiver, fail_next=1, fail_status=503)
    request = request_for(receiver.hook_url)
    with pytest.raises(Transient, match="503"):
        await provider.publish(request)
    assert (await provider.publish(request)).platform_post_id  # the script is spent


async def test_429_honours_retry_after_seconds(
    provider: WebhookProvider, receiver: WebhookReceiver, session: aiohttp.ClientSession
) -> None:
    await control(session, receiver, rate_limit_next=1, retry_after=120)
    before = datetime.now(UTC)
    with pytest.raises(RateLimited) as info:
        await provider.publish(request_for(receiver.hook_url))
    retry_at = info.value.retry_at
    assert retry_at.utcoffset() == timedelta(0)
    assert before + timedelta(seconds=120) <= retry_at <= datetime.now(UTC) + timedelta(seconds=120)


async def test_429_honours_retry_after_http_date(
    provider: WebhookProvider, receiver: WebhookReceiver, session: aiohttp.ClientSession
) -> None:
    when = (datetime.now(UTC) + timedelta(minutes=10)).replace(microsecond=0)
    await control(session, receiver, rate_limit_next=1,
                  retry_after=format_datetime(when, usegmt=True))
    with pytest.raises(RateLimited) as info:
        await provider.publish(request_for(receiver.hook_url))
    assert info.value.retry_at == when


async def test_429_without_retry_after_waits_a_minute(
    provider: WebhookProvider, receiver: WebhookReceiver, session: aiohttp.ClientSession
) -> None:
    await control(session, receiver, rate_limit_next=1, retry_after=None)
    with pytest.raises(RateLimited) as info:
        await provider.publish(request_for(receiver.hook_url))
    wait = (info.value.retry_at - datetime.now(UTC)).total_seconds()
    assert 55 < wait <= 60


async def test_client_error_is_permanent(
    provider: WebhookProvider, receiver: WebhookReceiver, session: aiohttp.ClientSession
) -> None:
    await control(session, receiver, permanent_next=1)
    with pytest.raises(Permanent, match=r"400.*scripted rejection"):
        await provider.publish(request_for(receiver.hook_url))


async def test_connection_refused_is_transient(provider: WebhookProvider) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(Transient, match="unreachable"):
        await provider.publish(request_for(f"http://127.0.0.1:{port}/hook"))


async def test_timeout_is_transient_and_the_retry_is_deduplicated(
    provider: WebhookProvider, receiver: WebhookReceiver, session: aiohttp.ClientSession
) -> None:
    await control(session, receiver, delay=1.0)
    request = request_for(receiver.hook_url, timeout_seconds=0.2)
    started = time.monotonic()
    with pytest.raises(Transient, match="timed out"):
        await provider.publish(request)
    assert time.monotonic() - started < 0.9
    # The receiver accepted before the answer was lost; the retry gets the same post back.
    await control(session, receiver, delay=0)
    published = await provider.publish(request)
    seen = await deliveries(session, receiver)
    assert seen["counts"] == {request.job_id: 2}
    assert seen["accepted"][request.job_id]["id"] == published.platform_post_id


async def test_same_job_twice_is_one_post(
    provider: WebhookProvider, receiver: WebhookReceiver, session: aiohttp.ClientSession
) -> None:
    request = request_for(receiver.hook_url, job_id="job-twice")
    first = await provider.publish(request)
    second = await provider.publish(request)
    assert first == second and first.platform_post_id
    seen = await deliveries(session, receiver)
    assert seen["counts"] == {"job-twice": 2}
    assert list(seen["accepted"]) == ["job-twice"]
    assert [d["outcome"] for d in seen["deliveries"]] == ["accepted", "repeat"]
    other = await provider.publish(request_for(receiver.hook_url, job_id="job-other"))
    assert other.platform_post_id != first.platform_post_id


async def test_non_json_success_is_still_success(
    provider: WebhookProvider, serve: Serve
) -> None:
    async def plain(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    base = await serve(plain)
    assert await provider.publish(request_for(base + "/hook")) == Published()


async def test_redirect_is_not_followed(
    provider: WebhookProvider, serve: Serve
) -> None:
    methods: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        methods.append(request.method)
        if request.path == "/hook":
            raise web.HTTPFound("/elsewhere")
        return web.Response(text="ok")

    base = await serve(redirect)
    with pytest.raises(Permanent, match="302"):
        await provider.publish(request_for(base + "/hook"))
    assert methods == ["POST"]


async def test_error_excerpt_is_short_and_secret_free(
    provider: WebhookProvider, serve: Serve
) -> None:
    async def echo(_request: web.Request) -> web.Response:
        return web.Response(status=422, text=f"bad: key={SECRET} " + "x" * 5000)

    base = await serve(echo)
    with pytest.raises(Permanent) as info:
        await provider.publish(request_for(base + "/hook?token=abc"))
    message = str(info.value)
    assert "422" in message and SECRET not in message and len(message) < 300
