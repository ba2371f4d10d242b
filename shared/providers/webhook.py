"""The `webhook` platform: a signed JSON POST to an operator's endpoint (API.md, "webhook").

The receiver deduplicates on `Idempotency-Key` (the job id), so a retry after an unknown
outcome is safe; that is why this provider declares `honours_idempotency_key`.
Metrics are recorded by the executor around `publish`, not here, so they live in one place.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from shared.logging import REDACTED, redact
from shared.providers.base import (
    Permanent,
    Provider,
    Published,
    PublishRequest,
    RateLimited,
    Transient,
)

DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_TIMEOUT_SECONDS = 300.0
DEFAULT_RETRY_AFTER_SECONDS = 60
#: A broken or hostile `Retry-After` must not park a job for years.
MAX_RETRY_AFTER_SECONDS = 24 * 3600
#: Enough for any `{"id", "url"}` answer; a larger body is not read further.
MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_CHARS = 200

CONFIG_KEYS = frozenset({"url", "timeout_seconds"})
CREDENTIAL_KEYS = frozenset({"secret"})

_URL_QUERY = re.compile(r"(?P<base>https?://[^\s'\"?#]*)[?#][^\s'\"]*")


def rfc3339_utc(value: datetime) -> str:
    """`2026-11-23T08:00:00.000Z`, millisecond precision as MongoDB keeps it; a naive value
    is taken as UTC, which is how MongoDB hands dates back."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_body(request: PublishRequest) -> bytes:
    """The exact bytes sent and signed; compact and UTF-8 so receivers can re-sign them."""
    content = request.content.model_dump(mode="json")
    document = {
        "post_id": request.post_id,
        "job_id": request.job_id,
        "account_id": request.account_id,
        "scheduled_for": rfc3339_utc(request.scheduled_for),
        "text": content["text"],
        "media": content["media"],
        "thread": content["thread"],
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`; the timestamp defeats replays."""
    message = str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(request: PublishRequest, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Idempotency-Key": request.idempotency_key,
        "X-Herald-Timestamp": str(timestamp),
        "X-Herald-Signature": sign(request.credentials["secret"], timestamp, body),
    }


def parse_retry_after(value: str | None, now: datetime) -> datetime:
    """When to try again: delay-seconds or an HTTP-date; 60 s when absent or unreadable."""
    delay: float = DEFAULT_RETRY_AFTER_SECONDS
    text = (value or "").strip()
    if text.isascii() and text.isdigit():
        delay = int(text)
    elif text:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            pass
        else:
            if when.tzinfo is None:  # RFC 9110 dates are GMT
                when = when.replace(tzinfo=UTC)
            delay = max(0.0, (when - now).total_seconds())
    return now + timedelta(seconds=min(delay, MAX_RETRY_AFTER_SECONDS))


def _published(body: bytes) -> Published:
    """`id` and `url` of a JSON object answer; any other body still means success."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return Published()
    if not isinstance(document, dict):
        return Published()
    post_id = document.get("id")
    url = document.get("url")
    return Published(
        platform_post_id=(
            str(post_id) if isinstance(post_id, str | int) and not isinstance(post_id, bool)
            else None
        ),
        url=url if isinstance(url, str) else None,
    )


def _scrub(text: str, secret: str) -> str:
    """Error text without the secret, URL passwords or query strings (which carry tokens)."""
    if secret:
        text = text.replace(secret, REDACTED)
    return str(redact(_URL_QUERY.sub(rf"\g<base>?{REDACTED}", text)))


def _excerpt(body: bytes, secret: str) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return _scrub(text, secret)[:EXCERPT_CHARS]


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    data = bytearray()
    async for chunk in response.content.iter_chunked(16 * 1024):
        data += chunk
        if len(data) >= MAX_RESPONSE_BYTES:
            break
    return bytes(data[:MAX_RESPONSE_BYTES])


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class WebhookProvider(Provider):
    platform = "webhook"
    honours_idempotency_key = True
    supports_lookup = False

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    def validate_account(
        self, config: dict[str, Any], credentials: dict[str, Any]
    ) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for key in sorted(set(config) - CONFIG_KEYS):
            problems.append((f"config.{key}", "unknown field for the webhook platform"))
        for key in sorted(set(credentials) - CREDENTIAL_KEYS):
            problems.append((f"credentials.{key}", "unknown field for the webhook platform"))
        if "url" not in config:
            problems.append(("config.url", "required"))
        elif not _is_http_url(config["url"]):
            problems.append(("config.url", "must be an http or https URL with a host"))
        if "timeout_seconds" in config:
            timeout = config["timeout_seconds"]
            if (
                isinstance(timeout, bool)
                or not isinstance(timeout, int | float)
                or not 0 < timeout <= MAX_TIMEOUT_SECONDS
            ):
                problems.append(
                    ("config.timeout_seconds", f"must be a number in (0, {MAX_TIMEOUT_SECONDS:g}]")
                )
        secret = credentials.get("secret")
        if "secret" not in credentials:
            problems.append(("credentials.secret", "required"))
        elif not isinstance(secret, str) or not secret:
            problems.append(("credentials.secret", "must be a non-empty string"))
        return problems

    async def publish(self, request: PublishRequest) -> Published:
        """One signed POST. A timeout after sending leaves the outcome unknown; it is still
        Transient, because a retry carries the same Idempotency-Key."""
        problems = self.validate_account(request.config, request.credentials)
        if problems:
            raise Permanent(
                "webhook account is invalid: " + "; ".join(f"{f}: {m}" for f, m in problems)
            )
        secret: str = request.credentials["secret"]
        body = build_body(request)
        headers = signed_headers(request, body, int(time.time()))
        timeout = aiohttp.ClientTimeout(
            total=float(request.config.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
        )
        try:
            async with self._session.post(
                request.config["url"],
                data=body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,  # a redirected POST would be re-sent as a GET
            ) as response:
                status = response.status
                payload = await _read_capped(response)
                retry_after = response.headers.get("Retry-After")
        except TimeoutError as exc:
            raise Transient(f"webhook timed out after {timeout.total:g}s") from exc
        except aiohttp.InvalidURL as exc:
            raise Permanent("webhook config.url is not a valid URL") from exc
        except aiohttp.ClientError as exc:
            detail = _scrub(str(exc), secret)
            raise Transient(f"webhook unreachable: {type(exc).__name__}: {detail}") from exc

        if 200 <= status < 300:
            return _published(payload)
        if status == 429:
            retry_at = parse_retry_after(retry_after, datetime.now(UTC))
            raise RateLimited(f"webhook answered 429, retry at {rfc3339_utc(retry_at)}", retry_at)
        message = f"webhook answered {status}: {_excerpt(payload, secret)}"
        if status >= 500:
            raise Transient(message)
        raise Permanent(message)
