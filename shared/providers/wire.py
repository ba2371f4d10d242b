"""What every provider does the same way on the wire: one bounded HTTP call whose network
failures are Transient, capped reading of answers, `Retry-After` in either form, a rate limit
that names its time, OAuth bearer headers and token answers, and error text scrubbed of the
secrets a platform URL or answer may carry."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from aiohttp.payload import AsyncIterablePayload
from multidict import CIMultiDict, CIMultiDictProxy

from shared.logging import REDACTED, redact
from shared.providers.base import OutcomeUnknown, Permanent, RateLimited, Transient

DEFAULT_TIMEOUT_SECONDS = 30.0
#: Getting a connection (from the pool, or a new one): a timeout here means nothing was sent.
CONNECT_TIMEOUT_SECONDS = 10.0
DEFAULT_RETRY_AFTER_SECONDS = 60
#: A broken or hostile reset time must not park a job for years.
MAX_RETRY_AFTER_SECONDS = 24 * 3600
#: Methods whose lost answer leaves unknown whether the platform acted.
ACTING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Enough for any answer a post call returns; a larger body is not read further.
MAX_RESPONSE_BYTES = 256 * 1024
EXCERPT_CHARS = 200

_URL_QUERY = re.compile(r"(?P<base>https?://[^\s'\"?#]*)[?#][^\s'\"]*")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None

    def object(self) -> dict[str, Any]:
        """The body as a JSON object, or {} when it is anything else."""
        document = self.json()
        return document if isinstance(document, dict) else {}

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def utc(value: datetime) -> datetime:
    """`value` in UTC; a naive value is taken as UTC, which is how MongoDB hands dates back."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rfc3339_utc(value: datetime) -> str:
    """`2026-11-23T08:00:00.000Z`, millisecond precision as MongoDB keeps it (`utc`)."""
    return utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def after_seconds(seconds: float, now: datetime) -> datetime:
    """`now + seconds`, bounded to [0, MAX_RETRY_AFTER_SECONDS]."""
    return now + timedelta(seconds=min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS))


def at_epoch(value: str | float | None, now: datetime) -> datetime | None:
    """A reset given as Unix epoch seconds, bounded; None when absent or unreadable."""
    try:
        epoch = float(value) if value is not None else None
    except ValueError:
        return None
    if epoch is None:
        return None
    return after_seconds(epoch - now.timestamp(), now)


def parse_retry_after(value: str | None, now: datetime) -> datetime:
    """When to try again: delay-seconds (an integer, RFC 9110) or an HTTP-date; 60 s when
    absent or unreadable."""
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
            delay = (when - now).total_seconds()
    return after_seconds(delay, now)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Error text without the given secrets, URL passwords or query strings (which carry
    tokens)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return str(redact(_URL_QUERY.sub(rf"\g<base>?{REDACTED}", text)))


def excerpt(body: bytes, secrets: Iterable[str] = ()) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return scrub(text, secrets)[:EXCERPT_CHARS]


def bearer(token: str) -> dict[str, str]:
    """The headers that present an OAuth 2.0 bearer token (RFC 6750)."""
    return {"Authorization": f"Bearer {token}"}


def is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


async def read_capped(response: aiohttp.ClientResponse, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    data = bytearray()
    async for chunk in response.content.iter_chunked(16 * 1024):
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data[:limit])


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    platform: str,
    secrets: Iterable[str] = (),
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> Answer:
    """One request, never redirected (a redirected POST would be re-sent as a GET). A failure
    to connect is Transient: nothing was sent. A timeout or a connection lost after sending a
    POST, PUT, PATCH or DELETE is OutcomeUnknown: the platform may have acted. `secrets` are
    scrubbed from every message, and aiohttp's own exception is not chained: its text carries
    the URL, which for some platforms holds the token (Telegram, Discord, Slack)."""
    hidden = list(secrets)
    lost = OutcomeUnknown if method.upper() in ACTING_METHODS else Transient
    try:
        async with session.request(
            method, url, headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_seconds,
                                          connect=min(CONNECT_TIMEOUT_SECONDS, timeout_seconds)),
            allow_redirects=False, **kwargs,
        ) as response:
            body = await read_capped(response)
            return Answer(response.status, CIMultiDictProxy(CIMultiDict(response.headers)), body)
    except aiohttp.ConnectionTimeoutError:
        raise Transient(f"{platform}: no connection within {timeout_seconds:g}s") from None
    except TimeoutError:
        raise lost(f"{platform} timed out after {timeout_seconds:g}s") from None
    except aiohttp.InvalidURL as exc:
        raise Permanent(f"{platform}: not a valid URL: {scrub(str(exc), hidden)}") from None
    except aiohttp.ClientConnectorError as exc:
        detail = scrub(str(exc), hidden)
        raise Transient(f"{platform} unreachable: {type(exc).__name__}: {detail}") from None
    except aiohttp.ClientError as exc:
        detail = scrub(str(exc), hidden)
        raise lost(f"{platform}: connection lost: {type(exc).__name__}: {detail}") from None


class Streamed(AsyncIterablePayload):
    """A request body (or one multipart part) sent from `chunks` as they come, never held whole
    in memory, with its `size` declared: the request then carries a Content-Length instead of
    chunked transfer encoding, which some upload endpoints refuse. Sent once: a retry makes a
    new one."""

    def __init__(self, chunks: AsyncIterable[bytes], size: int, content_type: str) -> None:
        super().__init__(chunks, content_type=content_type)
        self._declared = size

    @property
    def size(self) -> int:
        return self._declared


def answer_error(platform: str, answer: Answer, secrets: Iterable[str] = ()) -> str:
    """`<platform> answered <status>: <excerpt of the body>`."""
    return f"{platform} answered {answer.status}: {excerpt(answer.body, secrets)}"


def retry_later(message: str, retry_at: datetime,
                scope: Literal["request", "account", "app"] = "request") -> RateLimited:
    """RateLimited whose message names the time too: the message is what a job's attempt
    records and an operator reads."""
    return RateLimited(f"{message} (retry at {rfc3339_utc(retry_at)})", retry_at, scope=scope)


def oauth_credentials(platform: str, answer: Answer, old: dict[str, Any]) -> dict[str, Any]:
    """`old` updated from an OAuth 2.0 token answer: the new access token, the refresh token
    when one is sent (kept otherwise), and `expires_at` from `expires_in`. An answer without
    an access token is Transient: a broken answer, not a refusal."""
    document = answer.object()
    access_token = document.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise Transient(f"{platform}: the token endpoint answered without an access_token")
    new = {**old, "access_token": access_token}
    refresh_token = document.get("refresh_token")
    if isinstance(refresh_token, str) and refresh_token:
        new["refresh_token"] = refresh_token
    expires_in = document.get("expires_in")
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        new["expires_at"] = rfc3339_utc(datetime.now(UTC) + timedelta(seconds=expires_in))
    return new
