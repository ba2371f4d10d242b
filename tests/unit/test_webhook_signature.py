"""The webhook wire format: body bytes, signature, headers, Retry-After, account validation."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest

from shared.models import Content
from shared.providers.base import Permanent, PublishRequest
from shared.providers.registry import UnknownPlatform, available_platforms, provider_for
from shared.providers.webhook import WebhookProvider, build_body, sign, signed_headers
from shared.providers.wire import (
    DEFAULT_RETRY_AFTER_SECONDS,
    MAX_RETRY_AFTER_SECONDS,
    parse_retry_after,
    rfc3339_utc,
)

NOW = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)


def make_request(**content: Any) -> PublishRequest:
    return PublishRequest(
        job_id="job-1",
        post_id="post-1",
        account_id="acct-1",
        scheduled_for=datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1))),
        content=Content.model_validate(content or {"text": "Hello"}),
        config={"url": "http://127.0.0.1:9000/hook"},
        credentials={"secret": "s3cr3t"},
    )


def test_signature_matches_an_independent_vector() -> None:
    # printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cr3t
    expected = "8dbbbbf4523b10bbb793e74d854144c45acccc2d233667b1c06b805b6ded8a84"
    assert sign("s3cr3t", 1700000000, b'{"a":1}') == f"sha256={expected}"


def test_signature_depends_on_secret_timestamp_and_body() -> None:
    base = sign("s3cr3t", 1700000000, b"{}")
    assert sign("other", 1700000000, b"{}") != base
    assert sign("s3cr3t", 1700000001, b"{}") != base
    assert sign("s3cr3t", 1700000000, b"{ }") != base


def test_body_has_the_contract_fields_in_utc() -> None:
    request = make_request(
        text="Grüße 👋",
        media=[{"url": "https://cdn.example/a.png", "alt": "a cat", "mime_type": "image/png"}],
        thread=[{"text": "second"}],
    )
    body = build_body(request)
    document = json.loads(body)
    assert document == {
        "post_id": "post-1",
        "job_id": "job-1",
        "account_id": "acct-1",
        "scheduled_for": "2026-11-23T08:00:00.123Z",
        "text": "Grüße 👋",
        "media": [{"url": "https://cdn.example/a.png", "alt": "a cat", "mime_type": "image/png"}],
        "thread": [{"text": "second", "media": []}],
    }
    assert "Grüße 👋".encode() in body  # UTF-8 on the wire, not \\u escapes
    assert b": " not in body and b", " not in body  # compact: what is signed is what is sent


def test_naive_times_are_taken_as_utc() -> None:
    assert rfc3339_utc(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"


def test_headers_sign_the_exact_body() -> None:
    request = make_request()
    body = build_body(request)
    headers = signed_headers(request, body, 1700000000)
    assert headers["Idempotency-Key"] == "job-1"
    assert headers["X-Herald-Timestamp"] == "1700000000"
    assert headers["Content-Type"] == "application/json"
    mac = hmac.new(b"s3cr3t", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert headers["X-Herald-Signature"] == f"sha256={mac}"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120),
        (" 0 ", 0),
        (None, DEFAULT_RETRY_AFTER_SECONDS),
        ("", DEFAULT_RETRY_AFTER_SECONDS),
        ("soon", DEFAULT_RETRY_AFTER_SECONDS),
        ("-5", DEFAULT_RETRY_AFTER_SECONDS),
        ("1.5", DEFAULT_RETRY_AFTER_SECONDS),
        ("²", DEFAULT_RETRY_AFTER_SECONDS),
        ("9" * 40, MAX_RETRY_AFTER_SECONDS),
    ],
)
def test_retry_after_seconds(value: str | None, seconds: int) -> None:
    retry_at = parse_retry_after(value, NOW)
    assert retry_at == NOW + timedelta(seconds=seconds)
    assert retry_at.tzinfo is not None and retry_at.utcoffset() == timedelta(0)


def test_retry_after_http_date() -> None:
    later = NOW + timedelta(seconds=90)
    assert parse_retry_after(format_datetime(later, usegmt=True), NOW) == later
    assert parse_retry_after("Mon, 23 Nov 2026 08:01:30 GMT", NOW) == later
    # obsolete RFC 850 form, still allowed by RFC 9110
    assert parse_retry_after("Monday, 23-Nov-26 08:01:30 GMT", NOW) == later


def test_retry_after_date_in_the_past_means_now() -> None:
    assert parse_retry_after("Mon, 23 Nov 2026 07:00:00 GMT", NOW) == NOW


def fields(problems: list[tuple[str, str]]) -> set[str]:
    return {f for f, _ in problems}


async def test_account_validation() -> None:
    async with aiohttp.ClientSession() as session:
        provider = WebhookProvider(session)
        ok = provider.validate_account
        assert ok({"url": "https://hooks.example/x"}, {"secret": "s"}) == []
        assert ok({"url": "http://127.0.0.1:9000/h", "timeout_seconds": 2.5}, {"secret": "s"}) == []
        assert fields(ok({}, {})) == {"config.url", "credentials.secret"}
        for url in ("ftp://x/y", "not a url", "http://", 42, "http://h:99999/"):
            assert fields(ok({"url": url}, {"secret": "s"})) == {"config.url"}, url
        for secret in ("", None, 7):
            assert fields(ok({"url": "http://h/"}, {"secret": secret})) == {"credentials.secret"}
        for timeout in (0, -1, True, "5", 301):
            problems = ok({"url": "http://h/", "timeout_seconds": timeout}, {"secret": "s"})
            assert fields(problems) == {"config.timeout_seconds"}, timeout
        problems = ok({"url": "http://h/", "api_base": "http://x/"}, {"secret": "s", "token": "t"})
        assert fields(problems) == {"config.api_base", "credentials.token"}
        assert not any("s3cr3t" in m for _, m in ok({"url": "s3cr3t"}, {"secret": "s3cr3t"}))


async def test_invalid_account_is_permanent_without_a_request() -> None:
    async with aiohttp.ClientSession() as session:
        request = make_request()
        bad = PublishRequest(**{**request.__dict__, "config": {"url": "ftp://nowhere/"}})
        with pytest.raises(Permanent, match=r"config\.url"):
            await WebhookProvider(session).publish(bad)


async def test_registry() -> None:
    assert available_platforms() == ["bluesky", "discord", "facebook", "instagram", "linkedin",
                                     "mastodon", "slack", "telegram", "tiktok", "webhook", "x",
                                     "youtube"]
    async with aiohttp.ClientSession() as session:
        provider = provider_for("webhook", session)
        assert isinstance(provider, WebhookProvider)
        assert provider.honours_idempotency_key and not provider.supports_lookup
        with pytest.raises(UnknownPlatform, match="myspace") as info:
            provider_for("myspace", session)
        assert isinstance(info.value, Permanent) and info.value.platform == "myspace"
