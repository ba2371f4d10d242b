"""The provider interface, the error taxonomy the executor maps to decisions (DESIGN §6, §8),
and what every provider does with an account: its config and credentials read through their
models (`parsed`, `credential`, `secrets_of`, the shared field types).

One provider per platform, built once per node around the node's HTTP session. A provider
knows its platform's wire contract and nothing of Herald's store: what it must remember across
calls (a session token, an uploaded media id, a thread part) it hands back to the caller, which
records it fenced (`Checkpoints`, `Connected`).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Protocol, TypeVar

import aiohttp
from pydantic import BaseModel, Field, ValidationError

from shared.models import Content, Strict

Problems = list[tuple[str, str]]
Model = TypeVar("Model", bound=BaseModel)
#: How far ahead of `expires_at` an access token is refreshed, so no call meets it expired.
REFRESH_AHEAD = timedelta(minutes=5)
#: An http(s) URL with a host and an optional path, no query or fragment: where a platform's
#: API (or its OAuth pages) is served; tests point it at an emulator.
HTTP_BASE = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"
RFC3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
#: The credential keys of an OAuth 2.0 grant whose values are secret.
OAUTH_TOKENS = ("access_token", "refresh_token")

#: A config's `api_base`/`auth_base` field; each model adds its own description and default.
HttpBase = Annotated[str, Field(pattern=HTTP_BASE)]
#: The credentials' `expires_at` as `needs_refresh` reads it.
ExpiresAt = Annotated[str | None, Field(
    pattern=RFC3339, json_schema_extra={"format": "date-time"},
    description="When the access token expires (RFC 3339)")]


class ProviderError(Exception):
    """Base of the taxonomy; `error_class` labels the provider-errors metric."""

    error_class = "error"


class RateLimited(ProviderError):
    """The platform said "not now": reschedule at `retry_at`, consuming no attempt.

    `scope` says what the limit covers: only this request, every call for the account, or the
    whole app (installation); for the two last the executor holds back the account's (or the
    platform's) other jobs until `retry_at` instead of letting each meet the limit itself.
    """

    error_class = "rate_limited"

    def __init__(self, message: str, retry_at: datetime,
                 scope: Literal["request", "account", "app"] = "request") -> None:
        super().__init__(message)
        self.retry_at = retry_at
        self.scope = scope


class Transient(ProviderError):
    """5xx, timeout, connection failure: retry with backoff."""

    error_class = "transient"


class OutcomeUnknown(Transient):
    """The request was sent but no answer came back (a timeout, a connection dropped after
    sending): the platform may have made the post. A retry is safe only where the platform
    honours the idempotency key; otherwise the job goes to reconciliation (DESIGN §7)."""

    error_class = "outcome_unknown"


class AuthExpired(ProviderError):
    """The access token expired: refresh once, then retry at once."""

    error_class = "auth_expired"


class Permanent(ProviderError):
    """Validation, revoked access, forbidden: fail at once and notify."""

    error_class = "permanent"


class AuthRevoked(Permanent):
    """The credentials no longer work and cannot be refreshed (revoked, refresh token expired
    or rotated away): the account needs reconnecting, so its jobs wait instead of failing."""

    error_class = "auth_revoked"


class Checkpoints(Protocol):
    """What earlier calls of this job created on the platform (DESIGN §8). `save` records a
    value on the job, fenced, before the provider makes its next call; a retry or a
    reconciliation reads it back with `get` and resumes instead of repeating the step."""

    def get(self, key: str) -> Any: ...

    async def save(self, key: str, value: Any) -> None: ...


class MemoryCheckpoints:
    """Checkpoints kept in memory: for a job's first try in tests, and for lookups."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self.values = dict(values or {})

    def get(self, key: str) -> Any:
        return self.values.get(key)

    async def save(self, key: str, value: Any) -> None:
        self.values[key] = value


@dataclass(frozen=True)
class MediaInfo:
    """What is known of one media item: from the media store for `{"id"}` media, only the
    declared `mime_type` for `{"url"}` media until Herald fetches it at publish time. Limits are
    checked at scheduling against what is known here."""

    content_type: str | None
    size: int | None = None
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None


class MediaFile(Protocol):
    """One media item as a provider publishes it: its metadata and its bytes, streamed from the
    media store in chunks (a node never holds a whole video, DESIGN §8)."""

    @property
    def id(self) -> str: ...

    @property
    def alt(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def info(self) -> MediaInfo: ...

    def chunks(self, chunk_size: int, start: int = 0,
               end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes from `start` up to (not including) `end`, in chunks of at most
        `chunk_size` bytes (the last may be shorter)."""
        ...

    def public_url(self) -> str:
        """A signed, expiring URL from which a platform fetches the bytes itself; Permanent
        when the installation has no public URL."""
        ...


#: Media per part of a post: index 0 is `content.media`, index n is `content.thread[n-1].media`.
PartsMedia = Sequence[Sequence[MediaFile]]
PartsInfo = Sequence[Sequence[MediaInfo]]


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
    checkpoints: Checkpoints = field(default_factory=MemoryCheckpoints)
    #: The content's media resolved from the store, per part (`PartsMedia`).
    media: PartsMedia = ()

    @property
    def idempotency_key(self) -> str:
        return self.job_id

    def media_of(self, part: int) -> Sequence[MediaFile]:
        """Part 0 is the post itself, part n the thread's nth reply."""
        return self.media[part] if part < len(self.media) else ()


@dataclass(frozen=True)
class Spent:
    """A success that says the account's (or the app's) allowance is now used up until
    `until` (X's 24-hour headers): the executor holds the other jobs back instead of letting
    the next one meet a 429."""

    until: datetime
    scope: Literal["account", "app"]


@dataclass(frozen=True)
class Published:
    platform_post_id: str | None = None
    url: str | None = None
    spent: Spent | None = None


@dataclass(frozen=True)
class OAuthApp:
    """The installation's OAuth client on a platform (or, for Mastodon, on one instance)."""

    client_id: str
    client_secret: str | None = None


@dataclass(frozen=True)
class Connected:
    """The result of connecting an account: credentials to store sealed, and config keys the
    platform told us (a LinkedIn author URN, a Bluesky DID) merged into the account's config."""

    credentials: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    """A documented platform limit as `count` publishes per `period_seconds`."""

    count: int
    period_seconds: float

    @property
    def per_minute(self) -> float:
        return self.count * 60 / self.period_seconds


@dataclass(frozen=True)
class TextLimit:
    """The longest text a platform takes, in its own unit (`"weighted characters"`, ...)."""

    maximum: int
    unit: str = "characters"


def text_parts(content: Content) -> list[tuple[str, str]]:
    """(field, text) of the post and of each thread part, each checked against the limits."""
    return [("content.text", content.text)] + [
        (f"content.thread.{n}.text", part.text) for n, part in enumerate(content.thread)]


def part_text(content: Content, part: int) -> str:
    """Part 0 is the post's text, part n the thread's nth reply."""
    return content.text if part == 0 else content.thread[part - 1].text


#: One published part of a post as the `parts` checkpoint keeps it: `n` (0 for the post, n for
#: the thread's nth reply), `platform_post_id`, `url`, and whatever else a later reply must
#: name (Bluesky's `cid`).
Part = dict[str, Any]
#: Publishes part n as a reply to the parts before it (none for part 0).
PartPublisher = Callable[[int, list[Part]], Awaitable[Part]]


async def publish_parts(request: PublishRequest, publish_part: PartPublisher) -> Published:
    """The post and its thread as a reply chain, each part saved in the `parts` checkpoint
    before the next is sent (DESIGN §8): a retry resumes at the first unpublished part and
    never posts an earlier one again. The result names the first part, the post itself."""
    parts: list[Part] = list(request.checkpoints.get("parts") or [])
    for n in range(len(parts), 1 + len(request.content.thread)):
        parts.append({**await publish_part(n, parts), "n": n})
        await request.checkpoints.save("parts", parts)
    return Published(parts[0].get("platform_post_id"), parts[0].get("url"))


async def look_up_parts(request: PublishRequest,
                        find: Callable[[str], Awaitable[Published | None]]) -> Published | None:
    """A post with its thread found where a platform is searched by text (`find`): it counts as
    made only when its last part is there (a retry posts what is missing). The `parts`
    checkpoint answers at once for what it holds; otherwise the last part, then the first, are
    looked for."""
    parts: list[Part] = list(request.checkpoints.get("parts") or [])
    last = len(request.content.thread)
    if len(parts) > last:
        return Published(parts[0].get("platform_post_id"), parts[0].get("url"))
    found = await find(part_text(request.content, last))
    if found is None or last == 0:
        return found
    if parts:
        return Published(parts[0].get("platform_post_id"), parts[0].get("url"))
    return await find(request.content.text)


async def uploaded(request: PublishRequest, part: int, index: int,
                   upload: Callable[[], Awaitable[str]]) -> str:
    """The platform's id for media `index` of `part`, uploaded once: the id is saved in the
    `media_<part>` checkpoint, so a retry reuses what an earlier try uploaded. A part's media
    are uploaded in order."""
    key = f"media_{part}"
    ids: list[str] = list(request.checkpoints.get(key) or [])
    if index < len(ids):
        return ids[index]
    media_id = await upload()
    await request.checkpoints.save(key, [*ids, media_id])
    return media_id


def _problems(exc: ValidationError, prefix: str) -> Problems:
    return [(".".join([prefix, *(str(p) for p in error["loc"])]), error["msg"])
            for error in exc.errors()]


def model_problems(model: type[BaseModel], data: dict[str, Any], prefix: str) -> Problems:
    """A pydantic model's validation errors as (field, message) pairs under `prefix`."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return _problems(exc, prefix)
    return []


def parsed(model: type[Model], data: Mapping[str, Any], platform: str, prefix: str) -> Model:
    """An account's `config` or `credentials` (`prefix`) as its model, or Permanent naming each
    problem: retrying cannot fix the account. Not chained, because pydantic's own text echoes
    the input, credentials included."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{where}: {message}" for where, message in _problems(exc, prefix))
        raise Permanent(f"{platform} account is invalid: {problems}") from None


def credential(credentials: Mapping[str, Any], key: str, platform: str,
               missing: str | None = None) -> str:
    """A credential every call needs, or AuthRevoked (with `missing` as its message): only
    connecting the account again brings it back, so the account's jobs wait for that."""
    value = credentials.get(key)
    if not isinstance(value, str) or not value:
        raise AuthRevoked(missing or f"{platform}: the account has no {key}; connect it again")
    return value


def secrets_of(credentials: Mapping[str, Any], app: OAuthApp | None = None,
               keys: Iterable[str] = OAUTH_TOKENS) -> list[str]:
    """The secret values among the credentials' `keys`, and the app's client secret: what a
    platform may echo back, so every call and error message is scrubbed of them."""
    values = [credentials.get(key) for key in keys]
    if app is not None:
        values.append(app.client_secret)
    return [value for value in values if isinstance(value, str) and value]


class Provider(abc.ABC):
    """One platform's wire contract behind the interface the executor and the API use."""

    platform: ClassVar[str]
    #: The shape of the account's `config` and `credentials` (API.md "Accounts"); the OpenAPI
    #: document is built from these, and `validate_account` checks them.
    Config: ClassVar[type[Strict]]
    Credentials: ClassVar[type[Strict]]
    #: How an account is connected: through the API's OAuth flow, or with credentials sent to
    #: `POST /accounts` directly (a token, a webhook URL, an app password).
    connects_with: ClassVar[Literal["oauth", "credentials"]] = "credentials"
    #: The platform deduplicates retries that carry the same idempotency key.
    honours_idempotency_key: ClassVar[bool] = False
    #: `lookup` can tell whether a post was made.
    supports_lookup: ClassVar[bool] = False
    #: `content.thread` is published as a reply chain.
    supports_threads: ClassVar[bool] = False
    #: `content.media` can be published.
    supports_media: ClassVar[bool] = False
    #: The pace used when an account sets no `rate_limit`, from the documented per-user limit.
    default_budget: ClassVar[Budget | None] = None

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        #: The installation can hand platforms public URLs of its media (HERALD_PUBLIC_BASE_URL,
        #: or an S3 store's presigned URLs): set where the node builds its providers. A platform
        #: that fetches media itself refuses media at scheduling without it.
        self.public_media_urls = False

    # --- accounts ---------------------------------------------------------------------------

    def validate_account(self, config: dict[str, Any], credentials: dict[str, Any]) -> Problems:
        """Field-level problems with an account's config and credentials."""
        return (model_problems(self.Config, config, "config")
                + model_problems(self.Credentials, credentials, "credentials"))

    async def connect(self, config: dict[str, Any], credentials: dict[str, Any]) -> Connected:
        """Called when an account is created or its credentials are replaced through the API:
        a platform that trades what the operator sent for session tokens does it here (and
        raises Permanent when the platform refuses them). Others keep what was sent."""
        return Connected(credentials=credentials)

    # --- OAuth ------------------------------------------------------------------------------

    async def register_app(self, config: dict[str, Any], redirect_uri: str) -> OAuthApp:
        """Register Herald with the platform (Mastodon registers once per instance)."""
        raise Permanent(f"{self.platform} apps are registered by the operator, not by Herald")

    def authorization_url(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                          state: str, code_challenge: str) -> str:
        """The platform's authorization page for this connect request."""
        raise Permanent(f"{self.platform} accounts are not connected through OAuth")

    async def exchange_code(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                            code: str, code_verifier: str) -> Connected:
        """Trade the authorization code (and PKCE verifier) for the account's credentials."""
        raise Permanent(f"{self.platform} accounts are not connected through OAuth")

    # --- tokens -----------------------------------------------------------------------------

    def needs_refresh(self, credentials: dict[str, Any], now: datetime) -> bool:
        """Whether the access token expires within REFRESH_AHEAD (`expires_at`, when kept)."""
        expires_at = credentials.get("expires_at")
        if not isinstance(expires_at, str) or not credentials.get("refresh_token"):
            return False
        try:
            when = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
        except ValueError:
            return False
        return when.tzinfo is not None and when - now <= REFRESH_AHEAD

    async def refresh(self, config: dict[str, Any], credentials: dict[str, Any],
                      app: OAuthApp | None) -> dict[str, Any]:
        """New credentials after AuthExpired or ahead of expiry; AuthRevoked when the platform
        refuses the refresh for good, Transient when it could not be asked."""
        raise AuthRevoked(f"{self.platform} credentials cannot be refreshed")

    # --- limits -----------------------------------------------------------------------------

    async def text_limit(self, config: dict[str, Any]) -> TextLimit:
        """The longest text this account may post (an instance may set its own)."""
        return TextLimit(100_000)

    def measure(self, text: str) -> int:
        """Text length in the platform's own unit."""
        return len(text)

    async def check_content(self, content: Content, config: dict[str, Any],
                            media: PartsInfo = ()) -> Problems:
        """Field-level problems of content against this platform's limits, checked when a post
        is created or edited, never first at publish time. `media` is what is known of each
        part's media (`PartsInfo`), in the order of `content`."""
        problems: Problems = []
        limit = await self.text_limit(config)
        for where, text in text_parts(content):
            length = self.measure(text)
            if length > limit.maximum:
                problems.append((where, f"{self.platform}: {length} {limit.unit}, "
                                        f"at most {limit.maximum}"))
        if content.thread and not self.supports_threads:
            problems.append(("content.thread", f"{self.platform}: threads are not supported"))
        has_media = content.media or any(part.media for part in content.thread)
        if has_media and not self.supports_media:
            problems.append(("content.media", f"{self.platform}: media is not supported yet"))
        return problems

    # --- publishing -------------------------------------------------------------------------

    @abc.abstractmethod
    async def publish(self, request: PublishRequest) -> Published:
        """Make the post; raise a ProviderError subclass on failure. A publish that takes
        several calls saves each platform-side result in `request.checkpoints` before the next
        call, and resumes from them on a retry."""

    async def lookup(self, request: PublishRequest, since: datetime) -> Published | None:
        """Find a post made for this job at or after `since`; None when absent."""
        raise NotImplementedError(f"{self.platform} cannot look posts up")
