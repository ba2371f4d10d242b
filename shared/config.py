"""Settings read from the environment, validated once at start-up.

The variable names are part of the deployment contract (API.md), so every field carries its
exact name as an alias; a bad value is reported by that name, never by the Python field name.
"""

from __future__ import annotations

import os
import re
import socket
from typing import Annotated, Literal, TypeVar

from croniter import croniter
from cryptography.fernet import Fernet
from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

PositiveSeconds = Annotated[float, Field(gt=0)]
#: What a stopping node allows beyond the executor's drain (see Settings.stop_seconds).
STOP_MARGIN_SECONDS = 5.0


def _default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


#: Platforms whose OAuth client is the installation's own, named by
#: HERALD_<PLATFORM>_CLIENT_ID / _CLIENT_SECRET (Mastodon registers one per instance instead).
OAUTH_PLATFORMS = ("x", "linkedin", "facebook", "instagram", "tiktok", "youtube")


class OAuthClient(BaseModel):
    client_id: str = Field(min_length=1)
    client_secret: str | None = Field(None, repr=False)


class StoreSettings(BaseSettings):
    """What a command that touches only the record needs (`herald rotate-keys`)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=False, frozen=True)

    # repr=False: URLs may embed passwords, and settings objects end up in tracebacks.
    mongodb_uri: str = Field(
        validation_alias=AliasChoices("MONGODB_URI", "HERALD_MONGODB_URI"), repr=False
    )
    secret_key: str = Field(validation_alias="HERALD_SECRET_KEY", repr=False)
    mongodb_db: str = Field("herald", validation_alias="HERALD_MONGODB_DB", min_length=1)
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", validation_alias="HERALD_LOG_LEVEL"
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("mongodb_uri")
    @classmethod
    def _mongodb_scheme(cls, value: str) -> str:
        if not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value

    @field_validator("secret_key")
    @classmethod
    def _fernet_keys(cls, value: str) -> str:
        keys = [k.strip() for k in value.split(",") if k.strip()]
        if not keys:
            raise ValueError("needs at least one Fernet key")
        for key in keys:
            try:
                Fernet(key)
            except ValueError as exc:
                raise ValueError("each key must be 32 url-safe base64-encoded bytes") from exc
        return value


class Settings(StoreSettings):
    """Everything a node needs."""

    redis_url: str = Field(
        validation_alias=AliasChoices("REDIS_URL", "HERALD_REDIS_URL"), repr=False
    )
    admin_token: str = Field(validation_alias="HERALD_ADMIN_TOKEN", min_length=8, repr=False)
    #: Read-only access: API GETs and a console session that the server refuses changes from.
    viewer_token: str | None = Field(
        None, validation_alias="HERALD_VIEWER_TOKEN", min_length=8, repr=False
    )
    #: The console's session cookie is `Secure` (sent over HTTPS only); set false only where
    #: the console is reached over plain HTTP (a laptop, tests).
    console_secure_cookie: bool = Field(True, validation_alias="HERALD_CONSOLE_SECURE_COOKIE")
    console_session_hours: PositiveSeconds = Field(
        12, validation_alias="HERALD_CONSOLE_SESSION_HOURS"
    )
    #: Where operators reach the console (e.g. `https://herald.example/console`), for links in
    #: notifications; none without it.
    console_url: str | None = Field(None, validation_alias="HERALD_CONSOLE_URL")
    node_id: str = Field(default_factory=_default_node_id, validation_alias="HERALD_NODE_ID")
    cluster_name: str = Field(
        "main", validation_alias="HERALD_CLUSTER_NAME", pattern=r"^[A-Za-z0-9_.-]{1,64}$"
    )
    leader_ttl_seconds: PositiveSeconds = Field(10, validation_alias="HERALD_LEADER_TTL_SECONDS")
    lease_ttl_seconds: PositiveSeconds = Field(60, validation_alias="HERALD_LEASE_TTL_SECONDS")
    window_interval_seconds: PositiveSeconds = Field(
        3600, validation_alias="HERALD_WINDOW_INTERVAL_SECONDS"
    )
    window_margin_seconds: Annotated[float, Field(ge=0)] = Field(
        300, validation_alias="HERALD_WINDOW_MARGIN_SECONDS"
    )
    light_sweep_seconds: PositiveSeconds = Field(300, validation_alias="HERALD_LIGHT_SWEEP_SECONDS")
    full_sweep_cron: str = Field("30 3 * * *", validation_alias="HERALD_FULL_SWEEP_CRON")
    executor_concurrency: int = Field(
        32, ge=1, le=4096, validation_alias="HERALD_EXECUTOR_CONCURRENCY"
    )
    #: How far ahead of its due time a job is popped and claimed, so that only the platform
    #: call is left when the time comes; raise it when the store is far away (ms of round trip).
    executor_lead_ms: int = Field(100, ge=0, le=60_000, validation_alias="HERALD_EXECUTOR_LEAD_MS")
    #: How long the outcomes of a claimed batch wait for the batch's slower platform calls, to
    #: be written together: longer makes fewer, larger writes and frees slots later.
    executor_outcome_wait_ms: int = Field(
        10, ge=0, le=5_000, validation_alias="HERALD_EXECUTOR_OUTCOME_WAIT_MS"
    )
    retry_base_seconds: PositiveSeconds = Field(60, validation_alias="HERALD_RETRY_BASE_SECONDS")
    retry_max_attempts: int = Field(3, ge=1, le=100, validation_alias="HERALD_RETRY_MAX_ATTEMPTS")
    notify_webhook_url: str | None = Field(None, validation_alias="HERALD_NOTIFY_WEBHOOK_URL")
    #: Each open `/api/v1/events` stream holds a socket and a small buffer on its node.
    event_streams_max: int = Field(
        500, ge=1, le=100_000, validation_alias="HERALD_EVENT_STREAMS_MAX"
    )
    #: Longer than a load balancer's idle timeout (60 s on most), so the balancer closes first.
    http_keepalive_seconds: PositiveSeconds = Field(
        75, validation_alias="HERALD_HTTP_KEEPALIVE_SECONDS"
    )
    http_header_timeout_seconds: PositiveSeconds = Field(
        10, validation_alias="HERALD_HTTP_HEADER_TIMEOUT_SECONDS"
    )
    #: Where the platforms that fetch media themselves reach this installation's signed
    #: `/public/media/...` URLs; unset, such platforms cannot take media from the GridFS store.
    public_base_url: str | None = Field(None, validation_alias="HERALD_PUBLIC_BASE_URL")
    media_max_bytes: int = Field(
        1024**3, ge=1, le=1024**4, validation_alias="HERALD_MEDIA_MAX_BYTES"
    )
    #: `gridfs` (in MongoDB) or `s3://bucket[/prefix]` (an S3-compatible object store).
    media_store: str = Field(
        "gridfs", validation_alias="HERALD_MEDIA_STORE",
        pattern=r"^(gridfs|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?)$",
    )
    s3_endpoint: str | None = Field(None, validation_alias="HERALD_S3_ENDPOINT")
    #: Media by URL may come from private and loopback addresses (a trusted network, tests).
    allow_private_urls: bool = Field(False, validation_alias="HERALD_ALLOW_PRIVATE_URLS")
    #: The OpenAI-compatible endpoint generated content is asked of (`/chat/completions`,
    #: `/images/generations` under it); posts with `content.generate` need it.
    llm_base_url: str | None = Field(None, validation_alias="HERALD_LLM_BASE_URL")
    llm_api_key: str | None = Field(None, validation_alias="HERALD_LLM_API_KEY", repr=False)
    llm_model: str | None = Field(None, validation_alias="HERALD_LLM_MODEL", min_length=1)

    #: Read from HERALD_<PLATFORM>_CLIENT_ID / _CLIENT_SECRET by `_oauth_clients_from_env`.
    oauth_clients: dict[str, OAuthClient] = Field(
        default_factory=dict, validation_alias="herald_oauth_clients", repr=False
    )

    @model_validator(mode="before")
    @classmethod
    def _oauth_clients_from_env(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        clients: dict[str, dict[str, str | None]] = {}
        for platform in OAUTH_PLATFORMS:
            prefix = f"HERALD_{platform.upper()}_CLIENT_"
            client_id, secret = os.environ.get(prefix + "ID"), os.environ.get(prefix + "SECRET")
            if secret and not client_id:
                raise ValueError(f"{prefix}SECRET is set without {prefix}ID")
            if client_id:
                clients[platform] = {"client_id": client_id, "client_secret": secret or None}
        return {**data, "herald_oauth_clients": clients}

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://", "redis+cluster://",
                                 "rediss+cluster://")):
            raise ValueError("must start with redis://, rediss://, unix://, redis+cluster:// "
                             "or rediss+cluster://")
        return value

    @field_validator("full_sweep_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError("not a valid cron expression")
        return value

    @field_validator("notify_webhook_url", "s3_endpoint", "llm_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("public_base_url", "console_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        """Kept without a trailing slash; a query or fragment could not take a path after it."""
        if value in (None, ""):
            return None
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError("must be an http:// or https:// URL without a query or fragment")
        return value.rstrip("/")

    @property
    def horizon_seconds(self) -> float:
        """How far ahead the window check stages: one interval plus a safety margin."""
        return self.window_interval_seconds + self.window_margin_seconds

    @property
    def drain_seconds(self) -> float:
        """How long an executor lets its jobs in flight finish when the node stops: half a
        lease, so a job it gives up on is the next sweep's well before its lease would be."""
        return self.lease_ttl_seconds / 2

    @property
    def stop_seconds(self) -> float:
        """How long a stopping node gives its roles: the executor's whole drain plus room for
        the others' hand-over (leadership, a sweep's last write)."""
        return self.drain_seconds + STOP_MARGIN_SECONDS


class SettingsError(Exception):
    """A bad or missing setting, described in one line that names the variable."""


def _alias_of(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return str(alias) if alias else field.upper()


def _field_name(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "settings"
    head = str(loc[0])
    if head in Settings.model_fields:
        return _alias_of(head)
    return head


def load_settings(**overrides: object) -> Settings:
    """Read the environment; raise SettingsError naming the first offending variable."""
    return _load(Settings, overrides)


def load_store_settings() -> StoreSettings:
    """Only MongoDB, the secret key and logging: the settings `herald rotate-keys` needs."""
    return _load(StoreSettings, {})


S = TypeVar("S", bound=StoreSettings)


def _load(kind: type[S], overrides: dict[str, object]) -> S:
    """HERALD_SECRETS_DIR names a directory of files, one per variable (a mounted Kubernetes
    Secret), read where the environment lacks the variable: secrets need not be in it."""
    secrets_dir = os.environ.get("HERALD_SECRETS_DIR")
    if secrets_dir:
        overrides = {"_secrets_dir": secrets_dir, **overrides}
    try:
        return kind(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = _field_name(tuple(first["loc"]))
        message = "is required" if first["type"] == "missing" else first["msg"]
        raise SettingsError(f"{name}: {message}") from None
