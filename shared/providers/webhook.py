"""The `webhook` platform: a signed JSON POST to an operator's endpoint (API.md, "webhook").

The receiver deduplicates on `Idempotency-Key` (the job id), so a retry after an unknown
outcome is safe; that is why this provider declares `honours_idempotency_key`.
Metrics are recorded by the executor around `publish`, not here, so they live in one place.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import Field

from shared.models import Strict
from shared.providers.base import (
    Permanent,
    Problems,
    Provider,
    Published,
    PublishRequest,
    Transient,
)
from shared.providers.wire import (
    DEFAULT_TIMEOUT_SECONDS,
    call,
    excerpt,
    is_http_url,
    parse_retry_after,
    retry_later,
    rfc3339_utc,
)

MAX_TIMEOUT_SECONDS = 300.0
#: What `is_http_url` accepts, as a pattern the OpenAPI document can carry: a scheme, a host
#: and an optional valid port.
HTTP_URL = (r"^https?://[A-Za-z0-9._~%!$&'()*+,;=-]+"
            r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|"
            r"[0-9]{1,4}))?([/?#]\S*)?$")

CONFIG_KEYS = frozenset({"url", "timeout_seconds"})
CREDENTIAL_KEYS = frozenset({"secret"})


class WebhookConfig(Strict):
    url: Annotated[str, Field(pattern=HTTP_URL, description="the receiver's URL")]
    timeout_seconds: Annotated[float, Field(gt=0, le=MAX_TIMEOUT_SECONDS)] | None = None


class WebhookCredentials(Strict):
    secret: Annotated[str, Field(min_length=1, description="HMAC-SHA256 signing key")]


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


class WebhookProvider(Provider):
    platform = "webhook"
    honours_idempotency_key = True
    supports_lookup = False

    Config = WebhookConfig
    Credentials = WebhookCredentials

    def validate_account(
        self, config: dict[str, Any], credentials: dict[str, Any]
    ) -> Problems:
        """Hand-written rather than the models' messages, which the API has always given."""
        problems: Problems = []
        for key in sorted(set(config) - CONFIG_KEYS):
            problems.append((f"config.{key}", "unknown field for the webhook platform"))
        for key in sorted(set(credentials) - CREDENTIAL_KEYS):
            problems.append((f"credentials.{key}", "unknown field for the webhook platform"))
        if "url" not in config:
            problems.append(("config.url", "required"))
        elif not is_http_url(config["url"]):
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
        answer = await call(
            self.session, "POST", request.config["url"], platform="webhook", secrets=[secret],
            timeout_seconds=float(request.config.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)),
            data=body, headers=headers,
        )
        if answer.ok:
            return _published(answer.body)
        if answer.status == 429:
            retry_at = parse_retry_after(answer.headers.get("Retry-After"), datetime.now(UTC))
            raise retry_later("webhook answered 429", retry_at)
        message = f"webhook answered {answer.status}: {excerpt(answer.body, [secret])}"
        if answer.status >= 500:
            raise Transient(message)
        raise Permanent(message)
