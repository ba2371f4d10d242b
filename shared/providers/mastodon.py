"""The `mastodon` platform: OAuth on each instance, statuses keyed by the job id.

Herald registers itself on an instance once (`POST /api/v1/apps`, the caller keeps the client)
and accounts connect through the authorization-code grant. PKCE policy: the S256 challenge is
always sent and the verifier always redeemed. Mastodon 4.3+ enforces it; older instances
ignore both parameters, so no discovery call (`/.well-known/oauth-authorization-server`) is
needed before building the synchronous authorization URL. Tokens never expire and there is no
refresh: a 401 means the token was revoked, and the account must be reconnected.

Every status carries `Idempotency-Key: <job id>` (a thread's nth reply `<job id>-<n>`); the
instance answers a repeat within an hour with the first status, which is why this provider
`honours_idempotency_key`. Beyond that hour a reconciliation can still `lookup` the status: the
account's statuses since the attempt, each compared by its source text.

Media: each file is streamed to `POST /api/v2/media` (multipart, alt text as `description`) and
its id saved in the job's checkpoints before anything else; a 202 means the instance is still
processing it, and `GET /api/v1/media/:id` is polled until it answers 200 with a `url`. A
thread is a chain of statuses, each `in_reply_to_id` the one before, each saved in the `parts`
checkpoint before the next is posted.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

import aiohttp
from pydantic import Field

from shared.models import Content, Strict
from shared.providers.base import (
    HTTP_BASE,
    AuthRevoked,
    Budget,
    Connected,
    HttpBase,
    MediaFile,
    MediaInfo,
    OAuthApp,
    Part,
    PartsInfo,
    Permanent,
    Problems,
    Provider,
    Published,
    PublishRequest,
    TextLimit,
    Transient,
    credential,
    look_up_parts,
    part_text,
    publish_parts,
    text_parts,
    uploaded,
)
from shared.providers.text import graphemes, urls
from shared.providers.wire import (
    Answer,
    Streamed,
    after_seconds,
    answer_error,
    bearer,
    call,
    parse_retry_after,
    retry_later,
    rfc3339_utc,
    utc,
)

#: What Herald asks for: posting now, media in the next issue (so accounts need not reconnect
#: then), and the two reads `lookup` makes.
SCOPES = "write:statuses write:media read:accounts read:statuses"
CLIENT_NAME = "Herald"
DEFAULT_MAX_CHARACTERS = 500
DEFAULT_URL_CHARACTERS = 23
#: An instance's limits are read once a day; an instance that could not be read is asked again
#: after a few minutes, so a post created meanwhile is checked against Mastodon's defaults.
INSTANCE_TTL_SECONDS = 24 * 3600.0
INSTANCE_RETRY_SECONDS = 300.0
INSTANCE_TIMEOUT_SECONDS = 10.0
#: `lookup` reads at most this many pages of 40 statuses back to the attempt's start.
LOOKUP_PAGES = 5
LOOKUP_PAGE_SIZE = 40
#: Tolerance for the instance's clock being behind ours.
LOOKUP_SLACK = timedelta(minutes=1)
#: Mastodon's defaults while an instance does not say (`configuration.media_attachments`).
DEFAULT_MAX_MEDIA = 4
DEFAULT_IMAGE_SIZE = 16 * 1024 * 1024
DEFAULT_VIDEO_SIZE = 99 * 1024 * 1024
DEFAULT_IMAGE_MATRIX = 33_177_600
DEFAULT_MIME_TYPES = frozenset({
    "image/jpeg", "image/png", "image/gif", "image/heic", "image/heif", "image/webp",
    "image/avif", "video/webm", "video/mp4", "video/quicktime", "video/ogg", "audio/wave",
    "audio/wav", "audio/x-wav", "audio/x-pn-wave", "audio/vnd.wave", "audio/ogg",
    "audio/vorbis", "audio/mpeg", "audio/mp3", "audio/webm", "audio/flac", "audio/aac",
    "audio/m4a", "audio/x-m4a", "audio/mp4", "audio/3gpp", "video/x-ms-asf"})
#: Bytes per read from the media store while a file streams to the instance.
UPLOAD_CHUNK = 256 * 1024
#: A file's upload may take long; the instance answers once it has the whole body.
UPLOAD_TIMEOUT_SECONDS = 600.0
#: Polling a 202's processing: first wait, growth, the longest wait, and the whole budget,
#: after which the job retries later from the saved media id.
POLL_FIRST_SECONDS = 0.5
POLL_MAX_SECONDS = 5.0
PROCESSING_BUDGET_SECONDS = 300.0

#: Mastodon's `Account::MENTION_RE`: a remote mention `@user@domain` counts as `@user`.
_REMOTE_MENTION = re.compile(r"(?<![=/\w])@(\w+(?:[.-]+\w+)*)@\w+(?:[.-]+\w+)*")


class MastodonConfig(Strict):
    api_base: Annotated[HttpBase, Field(
        description="the instance's base URL, e.g. https://mastodon.social (required: Mastodon "
                    "has no central host)")]
    auth_base: Annotated[HttpBase, Field(
        description="where the instance serves /oauth/authorize and /oauth/token; defaults "
                    "to api_base")] | None = None
    visibility: Annotated[Literal["public", "unlisted", "private", "direct"], Field(
        description="the statuses' visibility; the account's default when absent")] | None = None


class MastodonCredentials(Strict):
    access_token: Annotated[str, Field(
        min_length=1, description="the user token from the authorization-code grant")]


@dataclass(frozen=True)
class InstanceLimits:
    """What `GET /api/v2/instance` says about statuses and their media."""

    max_characters: int = DEFAULT_MAX_CHARACTERS
    url_characters: int = DEFAULT_URL_CHARACTERS
    max_media: int = DEFAULT_MAX_MEDIA
    image_size: int = DEFAULT_IMAGE_SIZE
    video_size: int = DEFAULT_VIDEO_SIZE
    image_matrix: int = DEFAULT_IMAGE_MATRIX
    mime_types: frozenset[str] = field(default=DEFAULT_MIME_TYPES)


def _positive(document: dict[str, Any], key: str, default: int) -> int:
    value = document.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default


def media_problems(where: str, media: list[MediaInfo], limits: InstanceLimits) -> Problems:
    """One status' media against the instance's limits: how many, which types (and no video
    or audio beside other files), and each file's size and pixel count."""
    problems: Problems = []
    if len(media) > limits.max_media:
        problems.append((where, f"mastodon: {len(media)} files, at most {limits.max_media}"))
    kinds = [(info.content_type or "").split("/")[0] for info in media]
    if len(media) > 1 and any(kind in ("video", "audio") for kind in kinds):
        problems.append((where, "mastodon: a video or audio file must be a status' only file"))
    for n, info in enumerate(media):
        at, kind = f"{where}.{n}", kinds[n]
        if info.content_type is None:
            continue
        if info.content_type not in limits.mime_types:
            problems.append((at, f"mastodon: {info.content_type} is not a type this instance "
                                 f"takes"))
            continue
        cap = limits.image_size if kind == "image" else limits.video_size
        if info.size is not None and info.size > cap:
            article = "an" if kind[:1] in "aeiou" else "a"
            problems.append((at, f"mastodon: {info.size} bytes, at most {cap} for {article} "
                                 f"{kind}"))
        if kind == "image" and info.width and info.height and (
                info.width * info.height > limits.image_matrix):
            problems.append((at, f"mastodon: {info.width}x{info.height} pixels, at most "
                                 f"{limits.image_matrix} in all"))
    return problems


def count_characters(text: str, url_characters: int = DEFAULT_URL_CHARACTERS) -> int:
    """A status' length as Mastodon's StatusLengthValidator counts it: grapheme clusters, each
    URL with a scheme as `url_characters`, and a remote mention `@user@domain` as `@user`."""
    parts: list[str] = []
    at = 0
    for start, end, url in urls(text):
        if not url.lower().startswith(("http://", "https://")):
            continue  # Mastodon extracts URLs without a scheme as plain text
        parts.append(_REMOTE_MENTION.sub(r"@\1", text[at:start]))
        parts.append("x" * url_characters)
        at = end
    parts.append(_REMOTE_MENTION.sub(r"@\1", text[at:]))
    return graphemes("".join(parts))


def _base(config: dict[str, Any], key: str = "api_base") -> str:
    value = config.get(key) or (config.get("api_base") if key == "auth_base" else None)
    if not isinstance(value, str) or not re.match(HTTP_BASE, value):
        raise Permanent(f"mastodon: config.{key} must be the instance's http(s) URL")
    return value.rstrip("/")


def _reset_at(value: str | None, now: datetime) -> datetime:
    """Mastodon names the reset as an ISO-8601 time (`2026-11-23T08:05:00.000000Z`); without
    a readable one, a minute."""
    try:
        when = datetime.fromisoformat((value or "").strip())
    except ValueError:
        return parse_retry_after(None, now)
    if when.tzinfo is None:
        return parse_retry_after(None, now)
    return after_seconds((when - now).total_seconds(), now)


def _error(answer: Answer, secrets: list[str], *, revoked_on_401: bool = True) -> Exception:
    """Mastodon's answer as the taxonomy. Its limits are per account (rack-attack's
    authenticated throttles and the 300 statuses / 3 h family), so a 429 holds the account."""
    message = answer_error("mastodon", answer, secrets)
    if answer.status == 429:
        retry_at = _reset_at(answer.headers.get("X-RateLimit-Reset"), datetime.now(UTC))
        return retry_later(message, retry_at, scope="account")
    if answer.status >= 500:
        return Transient(message)
    if answer.status == 401 and revoked_on_401:
        return AuthRevoked(message)
    return Permanent(message)


def _filename(file: MediaFile) -> str:
    """A file name for the multipart part (Mastodon's Paperclip wants one), from the type."""
    subtype = (file.info.content_type or "application/octet-stream").split("/")[-1]
    return f"{file.id}.{re.sub(r'[^A-Za-z0-9]', '', subtype.split('+')[0]) or 'bin'}"


def _published(status: dict[str, Any]) -> Published:
    status_id = status.get("id")
    url = status.get("url") or status.get("uri")
    return Published(
        platform_post_id=str(status_id) if isinstance(status_id, str | int) else None,
        url=url if isinstance(url, str) else None,
    )


def _created_at(status: dict[str, Any]) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(status.get("created_at")))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class MastodonProvider(Provider):
    platform = "mastodon"
    Config = MastodonConfig
    Credentials = MastodonCredentials
    connects_with = "oauth"
    honours_idempotency_key = True
    supports_lookup = True
    #: Mastodon's RateLimiter `statuses` family: 300 per account per 3 hours.
    default_budget = Budget(300, 3 * 3600)

    supports_threads = True
    supports_media = True

    def __init__(self, session: aiohttp.ClientSession) -> None:
        super().__init__(session)
        #: api_base -> (monotonic time until which the limits are fresh, the limits)
        self._instances: dict[str, tuple[float, InstanceLimits]] = {}
        #: Scales every processing wait; tests shrink it so polling is quick, not skipped.
        self.poll_scale = 1.0

    # --- OAuth ------------------------------------------------------------------------------

    async def register_app(self, config: dict[str, Any], redirect_uri: str) -> OAuthApp:
        """`POST /api/v1/apps`; the caller stores the client per instance and redirect URI."""
        answer = await call(
            self.session, "POST", f"{_base(config)}/api/v1/apps", platform="mastodon",
            data={"client_name": CLIENT_NAME, "redirect_uris": redirect_uri, "scopes": SCOPES},
        )
        if not answer.ok:
            raise _error(answer, [], revoked_on_401=False)
        document = answer.object()
        client_id, secret = document.get("client_id"), document.get("client_secret")
        if not isinstance(client_id, str) or not isinstance(secret, str):
            raise Permanent("mastodon: the instance registered no client id and secret")
        return OAuthApp(client_id, secret)

    def authorization_url(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                          state: str, code_challenge: str) -> str:
        query = urlencode({
            "response_type": "code", "client_id": app.client_id, "redirect_uri": redirect_uri,
            "scope": SCOPES, "state": state, "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }, quote_via=quote)
        return f"{_base(config, 'auth_base')}/oauth/authorize?{query}"

    async def exchange_code(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                            code: str, code_verifier: str) -> Connected:
        if not app.client_secret:
            raise Permanent("mastodon: the instance's client secret is missing; register again")
        secrets = [app.client_secret, code, code_verifier]
        answer = await call(
            self.session, "POST", f"{_base(config, 'auth_base')}/oauth/token",
            platform="mastodon", secrets=secrets,
            data={"grant_type": "authorization_code", "code": code, "client_id": app.client_id,
                  "client_secret": app.client_secret, "redirect_uri": redirect_uri,
                  "code_verifier": code_verifier},
        )
        if not answer.ok:
            raise _error(answer, secrets, revoked_on_401=False)
        document = answer.object()
        token = document.get("access_token")
        if not isinstance(token, str) or not token:
            raise Permanent("mastodon: the token endpoint answered without an access_token")
        granted = str(document.get("scope", SCOPES)).split()
        if not {"write", "write:statuses"} & set(granted):
            raise Permanent(f"mastodon: the grant lacks write:statuses (granted: {granted})")
        return Connected(credentials={"access_token": token})

    # --- limits -----------------------------------------------------------------------------

    async def _limits(self, config: dict[str, Any]) -> InstanceLimits:
        """The instance's status limits, read once a day per api_base (Mastodon's defaults,
        500 and 23, while it cannot be read)."""
        base = _base(config)
        cached = self._instances.get(base)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        limits, ttl = await self._read_instance(base)
        self._instances[base] = (time.monotonic() + ttl, limits)
        return limits

    async def _read_instance(self, base: str) -> tuple[InstanceLimits, float]:
        try:
            answer = await call(self.session, "GET", f"{base}/api/v2/instance",
                                platform="mastodon", timeout_seconds=INSTANCE_TIMEOUT_SECONDS)
        except (Transient, Permanent):
            return InstanceLimits(), INSTANCE_RETRY_SECONDS
        statuses = (answer.object().get("configuration") or {}).get("statuses") or {}
        maximum = statuses.get("max_characters") if isinstance(statuses, dict) else None
        per_url = statuses.get("characters_reserved_per_url") if isinstance(
            statuses, dict) else None
        if not answer.ok or not isinstance(maximum, int) or isinstance(maximum, bool) \
                or maximum <= 0:
            return InstanceLimits(), INSTANCE_RETRY_SECONDS
        if not isinstance(per_url, int) or isinstance(per_url, bool) or per_url < 0:
            per_url = DEFAULT_URL_CHARACTERS
        configuration = answer.object().get("configuration") or {}
        media = configuration.get("media_attachments") if isinstance(configuration, dict) else {}
        media = media if isinstance(media, dict) else {}
        types = media.get("supported_mime_types")
        mime_types = (frozenset(t for t in types if isinstance(t, str))
                      if isinstance(types, list) and types else DEFAULT_MIME_TYPES)
        return InstanceLimits(
            maximum, per_url,
            max_media=_positive(statuses, "max_media_attachments", DEFAULT_MAX_MEDIA),
            image_size=_positive(media, "image_size_limit", DEFAULT_IMAGE_SIZE),
            video_size=_positive(media, "video_size_limit", DEFAULT_VIDEO_SIZE),
            image_matrix=_positive(media, "image_matrix_limit", DEFAULT_IMAGE_MATRIX),
            mime_types=mime_types,
        ), INSTANCE_TTL_SECONDS

    async def text_limit(self, config: dict[str, Any]) -> TextLimit:
        return TextLimit((await self._limits(config)).max_characters, "characters")

    def measure(self, text: str) -> int:
        """Characters with URLs as Mastodon's default 23; `check_content` uses the instance's
        own URL length."""
        return count_characters(text)

    async def check_content(self, content: Content, config: dict[str, Any],
                            media: PartsInfo = ()) -> Problems:
        """As the base check, but each URL counts as the instance's
        `characters_reserved_per_url`, which `measure` (no config) cannot know, and each
        status' media is checked against the instance's own media limits."""
        limits = await self._limits(config)
        problems: Problems = []
        for where, text in text_parts(content):
            length = count_characters(text, limits.url_characters)
            if length > limits.max_characters:
                problems.append((where, f"mastodon: {length} characters, "
                                        f"at most {limits.max_characters}"))
        fields = ["content.media"] + [f"content.thread.{n}.media"
                                      for n in range(len(content.thread))]
        for part, where in enumerate(fields):
            if part < len(media):
                problems += media_problems(where, list(media[part]), limits)
        return problems

    # --- publishing -------------------------------------------------------------------------

    async def publish(self, request: PublishRequest) -> Published:
        """The post and its thread as a chain of statuses (`publish_parts`), each part's media
        uploaded once (`uploaded`) and processed before its status is posted. A lost answer is
        Transient: the retry carries the same Idempotency-Key and gets the first status back."""
        base = _base(request.config)
        token = credential(request.credentials, "access_token", "mastodon")

        async def publish_part(n: int, earlier: list[Part]) -> Part:
            files = request.media_of(n)
            media_ids = [await uploaded(request, n, index, self._uploader(base, token, file))
                         for index, file in enumerate(files)]
            for media_id in media_ids:
                await self._processed(base, token, media_id)
            form = [("status", part_text(request.content, n))]
            form += [("media_ids[]", media_id) for media_id in media_ids]
            if earlier:
                form.append(("in_reply_to_id", str(earlier[-1]["platform_post_id"])))
            if request.config.get("visibility"):
                form.append(("visibility", str(request.config["visibility"])))
            key = request.idempotency_key if n == 0 else f"{request.idempotency_key}-{n}"
            answer = await call(
                self.session, "POST", f"{base}/api/v1/statuses", platform="mastodon",
                secrets=[token], data=form, headers={**bearer(token), "Idempotency-Key": key},
            )
            if not answer.ok:
                raise _error(answer, [token])
            published = _published(answer.object())
            if published.platform_post_id is None:
                raise Transient("mastodon: the instance answered a status without an id")
            return {"platform_post_id": published.platform_post_id, "url": published.url}

        return await publish_parts(request, publish_part)

    def _uploader(self, base: str, token: str, file: MediaFile) -> Callable[[], Awaitable[str]]:
        async def upload() -> str:
            """`POST /api/v2/media`, the file streamed from the store as the `file` part."""
            size = file.info.size
            if size is None:
                raise Permanent(f"mastodon: media {file.id} has no known size to upload")
            content_type = file.info.content_type or "application/octet-stream"
            form = aiohttp.MultipartWriter("form-data")
            part = form.append_payload(Streamed(file.chunks(UPLOAD_CHUNK), size, content_type))
            part.set_content_disposition("form-data", name="file", filename=_filename(file))
            if file.alt:
                form.append(file.alt).set_content_disposition("form-data", name="description")
            answer = await call(self.session, "POST", f"{base}/api/v2/media",
                                platform="mastodon", secrets=[token], data=form,
                                headers=bearer(token), timeout_seconds=UPLOAD_TIMEOUT_SECONDS)
            if not answer.ok:
                raise _error(answer, [token])
            media_id = answer.object().get("id")
            if not isinstance(media_id, str | int) or isinstance(media_id, bool):
                raise Transient("mastodon: the instance answered an upload without an id")
            return str(media_id)
        return upload

    async def _processed(self, base: str, token: str, media_id: str) -> None:
        """Wait until the instance has processed the file: `GET /api/v1/media/:id` answers 206
        while it works, 200 with a `url` when done. Transient when it takes longer than the
        budget; the retry polls the same (saved) id again. A 404 is left to the status to
        settle: the instance shows only files not yet attached, so a retry whose status was
        made meets it, and the status' Idempotency-Key then answers with that status (a file
        that is really gone is refused by the status call)."""
        wait, waited = POLL_FIRST_SECONDS * self.poll_scale, 0.0
        while True:
            answer = await call(self.session, "GET", f"{base}/api/v1/media/{media_id}",
                                platform="mastodon", secrets=[token], headers=bearer(token))
            if (answer.status == 200 and answer.object().get("url")) or answer.status == 404:
                return
            if answer.status not in (200, 206):
                raise _error(answer, [token])
            if waited >= PROCESSING_BUDGET_SECONDS * self.poll_scale:
                raise Transient(f"mastodon: media {media_id} still processing after "
                                f"{waited:.0f}s")
            await asyncio.sleep(wait)
            waited += wait
            wait = min(wait * 2, POLL_MAX_SECONDS * self.poll_scale)

    async def _get(self, url: str, token: str, params: dict[str, str] | None = None) -> Any:
        answer = await call(self.session, "GET", url, platform="mastodon", secrets=[token],
                            headers=bearer(token), params=params or {})
        if not answer.ok:
            raise _error(answer, [token])
        return answer.json()

    async def lookup(self, request: PublishRequest, since: datetime) -> Published | None:
        """The job's post, found when its last part is: a thread counts as made only when its
        last reply is there (a retry posts what is missing, under the same keys). The `parts`
        checkpoint answers at once for what it holds; otherwise the account's statuses are
        read (`_find`)."""
        return await look_up_parts(request, lambda text: self._find(request, text, since))

    async def _find(self, request: PublishRequest, text: str,
                    since: datetime) -> Published | None:
        """The account's status with this source text made at or after `since`: its own
        statuses, newest first, back to `since`, each whose app is Herald (when shown)
        compared by source text. Transient when more statuses were made since than it
        reads."""
        base = _base(request.config)
        token = credential(request.credentials, "access_token", "mastodon")
        cutoff = utc(since) - LOOKUP_SLACK
        me = await self._get(f"{base}/api/v1/accounts/verify_credentials", token)
        if not isinstance(me, dict) or not isinstance(me.get("id"), str | int):
            raise Transient("mastodon: verify_credentials answered without an account id")
        params = {"limit": str(LOOKUP_PAGE_SIZE), "exclude_reblogs": "true"}
        wanted = text.strip()
        for _ in range(LOOKUP_PAGES):
            page = await self._get(f"{base}/api/v1/accounts/{me['id']}/statuses", token, params)
            statuses = [s for s in page if isinstance(s, dict)] if isinstance(page, list) else []
            if not statuses:
                return None
            for status in statuses:
                created = _created_at(status)
                if created is not None and created < cutoff:
                    return None
                if await self._is_ours(base, token, status, wanted):
                    return _published(status)
            params["max_id"] = str(statuses[-1].get("id"))
        raise Transient(f"mastodon: more than {LOOKUP_PAGES * LOOKUP_PAGE_SIZE} statuses since "
                        f"{rfc3339_utc(since)}; cannot tell whether the job posted")

    async def _is_ours(self, base: str, token: str, status: dict[str, Any], wanted: str) -> bool:
        application = status.get("application")
        if isinstance(application, dict) and application.get("name") != CLIENT_NAME:
            return False
        source = await self._get(f"{base}/api/v1/statuses/{status.get('id')}/source", token)
        return isinstance(source, dict) and str(source.get("text", "")).strip() == wanted
