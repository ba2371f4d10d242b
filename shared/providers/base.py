"""The provider interface, and the error taxonomy the executor maps to decisions (DESIGN §6, §8)."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.models import Content


class ProviderError(Exception):
    """Base of the taxonomy; `error_class` labels the provider-errors metric."""

    error_class = "error"


class RateLimited(ProviderError):
    """The platform said "not now": reschedule at `retry_at`, consuming no attempt."""

    error_class = "rate_limited"

    def __init__(self, message: str, retry_at: datetime) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class Transient(ProviderError):
    """5xx, timeout, connection failure: retry with backoff."""

    error_class = "transient"


class AuthExpired(ProviderError):
    """The access token expired: refresh once, then retry at once."""

    error_class = "auth_expired"


class Permanent(ProviderError):
    """Validation, revoked access, forbidden: fail at once and notify."""

    error_class = "permanent"


@dataclass(frozen=True)
class PublishRequest:
    """Everything a provider needs to publish one job; `idempotency_key` is the job id."""

    job_id: str
    post_id: str
    account_id: str
    scheduled_for: datetime
    content: Content
    config: dict[str, Any]
    credentials: dict[str, Any]

    @property
    def idempotency_key(self) -> str:
        return self.job_id


@dataclass(frozen=True)
class Published:
    platform_post_id: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Limits:
    """Checked when a post is scheduled, not when it is published."""

    max_text_length: int = 100_000
    max_media: int = 20
    extra: dict[str, Any] = field(default_factory=dict)


class Provider(abc.ABC):
    platform: str
    limits: Limits = Limits()
    #: The platform deduplicates retries that carry the same idempotency key.
    honours_idempotency_key: bool = False
    #: `lookup` can tell whether a post was made.
    supports_lookup: bool = False

    @abc.abstractmethod
    def validate_account(self, config: dict[str, Any], credentials: dict[str, Any]) -> list[
        tuple[str, str]
    ]:
        """Field-level problems with an account's config and credentials, as (field, message)."""

    @abc.abstractmethod
    async def publish(self, request: PublishRequest) -> Published:
        """Make the post; raise a ProviderError subclass on failure."""

    async def lookup(self, request: PublishRequest) -> Published | None:
        """Find a post made for this job (by idempotency key or marker); None when absent."""
        raise NotImplementedError(f"{self.platform} cannot look posts up")

    async def refresh(self, credentials: dict[str, Any]) -> dict[str, Any]:
        """New credentials after AuthExpired."""
        raise Permanent(f"{self.platform} credentials cannot be refreshed")

    def check_content(self, content: Content) -> list[tuple[str, str]]:
        """Field-level problems of content against this platform's limits."""
        problems: list[tuple[str, str]] = []
        if len(content.text) > self.limits.max_text_length:
            problems.append(
                ("content.text", f"{self.platform} allows at most {self.limits.max_text_length} "
                 "characters")
            )
        if len(content.media) > self.limits.max_media:
            problems.append(
                ("content.media", f"{self.platform} allows at most {self.limits.max_media} items")
            )
        return problems
