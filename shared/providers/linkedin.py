"""The `linkedin` platform: posts through the versioned Posts API (`/rest/posts`) as a member or
an organization, with a 3-legged OAuth 2.0 token (docs/providers/linkedin.md).

The post text goes in `commentary`, which LinkedIn reads as "little" text: reserved characters
are backslash-escaped so that the text shows as written (an unescaped one can cut the post
short). LinkedIn takes no idempotency key but refuses a repeat of a recent text as a duplicate,
naming the earlier post; that post is taken as this job's only when `lookup` confirms it, which
needs read access to the author's posts (r_member_social, restricted, or r_organization_social).

Media is uploaded before the post: an image through the Images API (`initializeUpload` gives
an upload URL and the image URN; one PUT of the bytes), a video through the Videos API
(`initializeUpload` gives byte ranges to PUT, each answered with an ETag, and
`finalizeUpload` names the ETags in order). The upload session (URN, ranges, ETags so far) is
saved in the `upload_<part>_<index>` checkpoint before each PUT is sent on, so a retry goes on
from the last part sent, and the finished URN in `media_<part>` (`uploaded`), so a retry never
uploads a file twice. The post names the files once LinkedIn says they are AVAILABLE:
`content.media` for one, `content.multiImage` for 2-20 images. LinkedIn has no replies to
chain, so a thread is refused at scheduling.
"""

from __future__ import annotations

import asyncio
import re
import time as clock
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

import aiohttp
from pydantic import Field

from shared.models import Content, Strict
from shared.providers.base import (
    AuthExpired,
    AuthRevoked,
    Budget,
    Connected,
    ExpiresAt,
    HttpBase,
    MediaFile,
    MediaInfo,
    OAuthApp,
    OutcomeUnknown,
    PartsInfo,
    Permanent,
    Problems,
    Provider,
    ProviderError,
    Published,
    PublishRequest,
    RateLimited,
    TextLimit,
    Transient,
    credential,
    parsed,
    secrets_of,
    uploaded,
)
from shared.providers.text import utf16_units
from shared.providers.wire import (
    Answer,
    Streamed,
    answer_error,
    bearer,
    call,
    oauth_credentials,
    parse_retry_after,
    retry_later,
    rfc3339_utc,
    utc,
)

DEFAULT_API_BASE = "https://api.linkedin.com"
#: The authorization page and the token endpoint are both on www.linkedin.com.
DEFAULT_AUTH_BASE = "https://www.linkedin.com"
#: A LinkedIn-Version that is active (each is served for at least a year after its month).
DEFAULT_API_VERSION = "202609"
#: A member posts for itself; `openid profile` let Herald read who connected (`/v2/userinfo`).
MEMBER_SCOPES = "openid profile w_member_social"
#: An organization's page is posted to, and read back for lookups, by one of its admins.
ORGANIZATION_SCOPES = "w_organization_social r_organization_social"
MAX_COMMENTARY = 3000
POST_URL = "https://www.linkedin.com/feed/update/{urn}/"
AUTHOR_URN = r"^urn:li:(person|organization):[A-Za-z0-9_\-]+$"
#: The characters the little text format reserves; each is written as `\<char>`.
RESERVED = frozenset("\\|{}@[]()<>#*_~")
#: LinkedIn names the throttle in its 429 body; a DAY limit resets at midnight UTC.
_THROTTLE = re.compile(r"throttle\s+(?P<who>[A-Z_]+)\s+(?P<window>[A-Z]+)\s+limit", re.IGNORECASE)
_DUPLICATE_OF = re.compile(r"duplicate of (?P<urn>urn:li:[A-Za-z]+:[0-9]+)")
#: A retry's duplicate is searched for from a little before the job's time, for clock skew.
LOOKUP_SLACK = timedelta(minutes=5)
#: A lookup reads from this long before the `since` it is given: Herald's clock and
#: LinkedIn's need not agree to the second.
CLOCK_SKEW = timedelta(minutes=1)
LOOKUP_PAGE = 50
LOOKUP_PAGES = 4
#: The Images API takes JPG, GIF and PNG of at most 36,152,320 pixels; the Videos API MP4 of
#: 75 KB to 500 MB and 3 s to 30 min. A post shows one image or video, or 2-20 images.
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif"})
MAX_IMAGE_PIXELS = 36_152_320
VIDEO_TYPES = frozenset({"video/mp4"})
MIN_VIDEO_BYTES = 75 * 1024
MAX_VIDEO_BYTES = 500 * 1024 * 1024
MIN_VIDEO_SECONDS = 3.0
MAX_VIDEO_SECONDS = 30 * 60.0
MAX_IMAGES = 20
#: `altText` of an image in a post.
MAX_ALT_TEXT = 4086
#: Bytes per read from the media store while a file streams to LinkedIn.
UPLOAD_CHUNK = 256 * 1024
#: One PUT carries up to a 4 MB part of a video, or a whole image.
UPLOAD_TIMEOUT_SECONDS = 600.0
#: Polling an asset until AVAILABLE: first wait, growth cap, and the whole budget, after which
#: the job retries later from the saved URN.
POLL_FIRST_SECONDS = 0.5
POLL_MAX_SECONDS = 5.0
PROCESSING_BUDGET_SECONDS = 300.0


class LinkedInConfig(Strict):
    api_base: Annotated[HttpBase, Field(
        max_length=300,
        description="LinkedIn API base URL (`/rest/posts`, `/v2/userinfo`)")] = DEFAULT_API_BASE
    auth_base: Annotated[HttpBase, Field(
        max_length=300,
        description="Where LinkedIn's OAuth pages are served (`/oauth/v2/authorization`, "
                    "`/oauth/v2/accessToken`)")] = DEFAULT_AUTH_BASE
    author_urn: Annotated[str | None, Field(
        pattern=AUTHOR_URN, max_length=200,
        description="Who posts: `urn:li:person:<id>` (filled in when the member connects) or "
                    "`urn:li:organization:<id>` for a page the member administers")] = None
    api_version: Annotated[str, Field(
        pattern=r"^[0-9]{6}(\.[0-9]{2})?$",
        description=f"The LinkedIn-Version header (YYYYMM); default {DEFAULT_API_VERSION}",
    )] = DEFAULT_API_VERSION


class LinkedInCredentials(Strict):
    access_token: Annotated[str, Field(
        min_length=1, max_length=4096,
        description="3-legged OAuth 2.0 access token (lives 60 days)")]
    refresh_token: Annotated[str | None, Field(
        min_length=1, max_length=4096,
        description="Refresh token, issued only to approved partners; it keeps the "
                    "expiry of the first grant (365 days)")] = None
    expires_at: ExpiresAt = None


def escape_little_text(text: str) -> str:
    """`text` as little text that LinkedIn shows verbatim: every reserved character escaped."""
    return "".join("\\" + c if c in RESERVED else c for c in text)


def _headers(token: str, config: LinkedInConfig) -> dict[str, str]:
    return {**bearer(token), "LinkedIn-Version": config.api_version,
            "X-Restli-Protocol-Version": "2.0.0"}


def next_midnight_utc(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), UTC)


def rate_limited(answer: Answer, now: datetime) -> RateLimited:
    """LinkedIn's 429 carries no reset header. Its body names the throttle: a DAY limit
    resets at midnight UTC, for the member (account) or the whole application (app). Any
    other 429 (LinkedIn's infrastructure protection, which clears by itself) waits
    Retry-After when sent, else a minute."""
    message = answer.object().get("message")
    match = _THROTTLE.search(message) if isinstance(message, str) else None
    if match and match["window"].upper() == "DAY":
        at = next_midnight_utc(now)
        who = match["who"].upper()
        scope: Literal["account", "app"] = "account" if "MEMBER" in who else "app"
        return RateLimited(f"linkedin: the {who.lower()} daily limit is spent until "
                           f"{rfc3339_utc(at)}", at, scope=scope)
    at = parse_retry_after(answer.headers.get("Retry-After"), now)
    return retry_later("linkedin answered 429", at)


def api_error(answer: Answer, secrets: list[str], *, refreshable: bool) -> ProviderError:
    """The taxonomy for a LinkedIn API answer that is not a success. A 401 is an expired
    (or revoked) token: a refresh may fix it only when the account holds a refresh token."""
    message = answer_error("linkedin", answer, secrets)
    if answer.status == 429:
        return rate_limited(answer, datetime.now(UTC))
    if answer.status == 401:
        return AuthExpired(message) if refreshable else AuthRevoked(
            f"{message} (no refresh token is held; reconnect the account)")
    if answer.status == 426:
        return Permanent(f"{message} (set config.api_version to an active LinkedIn-Version)")
    if answer.status >= 500:
        return Transient(message)
    return Permanent(message)


def duplicate_of(answer: Answer) -> str | None:
    """The earlier post's URN when LinkedIn refused the post as a duplicate (422
    DUPLICATE_POST, "Content is a duplicate of urn:li:share:..."), else None."""
    if answer.status != 422:
        return None
    document = answer.object()
    details = document.get("errorDetails")
    inputs = details.get("inputErrors") if isinstance(details, dict) else None
    codes = [e.get("code") for e in inputs or [] if isinstance(e, dict)]
    message = document.get("message")
    match = _DUPLICATE_OF.search(message) if isinstance(message, str) else None
    if "DUPLICATE_POST" not in codes and match is None:
        return None
    return match["urn"] if match else ""


def _published(urn: str | None) -> Published:
    if not urn:
        return Published()
    return Published(urn, POST_URL.format(urn=urn))


def _kind(info: MediaInfo) -> Literal["image", "video"] | None:
    if info.content_type in IMAGE_TYPES:
        return "image"
    return "video" if info.content_type in VIDEO_TYPES else None


def media_problems(media: Sequence[MediaInfo], alts: Sequence[str]) -> Problems:
    """A post's media against what the Images and Videos APIs and a post take."""
    problems: Problems = []
    kinds = [_kind(info) for info in media]
    if "video" in kinds and len(media) > 1:
        problems.append(("content.media", "linkedin: a video must be a post's only file"))
    elif len(media) > MAX_IMAGES:
        problems.append(("content.media", f"linkedin: {len(media)} images, at most "
                                          f"{MAX_IMAGES}"))
    for n, (info, kind) in enumerate(zip(media, kinds, strict=True)):
        at = f"content.media.{n}"
        if kind is None:
            problems.append((at, f"linkedin: {info.content_type or 'an unknown type'} is not "
                                 f"an image (JPEG, PNG, GIF) or an MP4 video"))
        elif kind == "image" and info.width and info.height and (
                info.width * info.height > MAX_IMAGE_PIXELS):
            problems.append((at, f"linkedin: {info.width}x{info.height} pixels, at most "
                                 f"{MAX_IMAGE_PIXELS} in all"))
        elif kind == "video":
            if info.size is not None and not MIN_VIDEO_BYTES <= info.size <= MAX_VIDEO_BYTES:
                problems.append((at, f"linkedin: {info.size} bytes, a video takes "
                                     f"{MIN_VIDEO_BYTES} to {MAX_VIDEO_BYTES}"))
            seconds = info.duration_seconds
            if seconds is not None and not MIN_VIDEO_SECONDS <= seconds <= MAX_VIDEO_SECONDS:
                problems.append((at, f"linkedin: {seconds:g} s, a video lasts "
                                     f"{MIN_VIDEO_SECONDS:g} s to {MAX_VIDEO_SECONDS:g} s"))
        if n < len(alts) and len(alts[n]) > MAX_ALT_TEXT:
            problems.append((f"{at}.alt", f"linkedin: {len(alts[n])} characters, at most "
                                          f"{MAX_ALT_TEXT}"))
    return problems


def media_content(files: Sequence[MediaFile], urns: Sequence[str]) -> dict[str, Any]:
    """The post's `content`: one image or video as `media`, more images as `multiImage`."""
    items = []
    for file, urn in zip(files, urns, strict=True):
        item = {"id": urn}
        if file.alt and urn.startswith("urn:li:image:"):
            item["altText"] = file.alt
        items.append(item)
    if len(items) == 1:
        return {"media": items[0]}
    return {"multiImage": {"images": items}}


class LinkedInProvider(Provider):
    platform = "linkedin"
    connects_with = "oauth"
    honours_idempotency_key = False
    supports_lookup = True
    #: LinkedIn publishes no standard limits; 150 posts a member a day is the figure
    #: schedulers work to (docs/providers/linkedin.md).
    default_budget = Budget(150, 24 * 3600)
    supports_media = True

    Config = LinkedInConfig
    Credentials = LinkedInCredentials

    def __init__(self, session: aiohttp.ClientSession) -> None:
        super().__init__(session)
        #: Scales every processing wait; tests shrink it so polling is quick, not skipped.
        self.poll_scale = 1.0

    # --- limits -----------------------------------------------------------------------------

    async def text_limit(self, config: dict[str, Any]) -> TextLimit:
        return TextLimit(MAX_COMMENTARY, "characters")

    def measure(self, text: str) -> int:
        """Characters as LinkedIn's (JavaScript) composer counts them, UTF-16 units, of the
        text as written, before escaping."""
        return utf16_units(text)

    async def check_content(self, content: Content, config: dict[str, Any],
                            media: PartsInfo = ()) -> Problems:
        problems = await super().check_content(content, config, media)
        if media and media[0]:
            problems += media_problems(media[0], [m.alt for m in content.media])
        return problems

    # --- accounts and OAuth -----------------------------------------------------------------

    async def connect(self, config: dict[str, Any], credentials: dict[str, Any]) -> Connected:
        """A token sent directly still needs an author: the member it belongs to, unless the
        config names one (an organization)."""
        linked = parsed(LinkedInConfig, config, "linkedin", "config")
        if linked.author_urn:
            return Connected(credentials=credentials)
        urn = await self._member_urn(linked, credential(credentials, "access_token", "linkedin"),
                                     secrets_of(credentials))
        return Connected(credentials=credentials, config={"author_urn": urn})

    def authorization_url(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                          state: str, code_challenge: str) -> str:
        """LinkedIn's web flow has no PKCE (the client secret authenticates the exchange), so
        `code_challenge` is not sent."""
        linked = parsed(LinkedInConfig, config, "linkedin", "config")
        organization = (linked.author_urn or "").startswith("urn:li:organization:")
        params = {"response_type": "code", "client_id": app.client_id,
                  "redirect_uri": redirect_uri, "state": state,
                  "scope": ORGANIZATION_SCOPES if organization else MEMBER_SCOPES}
        return (f"{linked.auth_base.rstrip('/')}/oauth/v2/authorization?"
                f"{urlencode(params, quote_via=quote)}")

    async def exchange_code(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                            code: str, code_verifier: str) -> Connected:
        linked = parsed(LinkedInConfig, config, "linkedin", "config")
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        answer = await self._token_call(linked, app, form, [code])
        if not answer.ok:
            secrets = [*secrets_of({}, app), code]
            if answer.status == 429 or answer.status >= 500:
                raise api_error(answer, secrets, refreshable=False)
            raise Permanent(answer_error("linkedin", answer, secrets))
        credentials = oauth_credentials("linkedin", answer, {})
        if linked.author_urn:
            return Connected(credentials=credentials)
        urn = await self._member_urn(linked, credentials["access_token"],
                                     secrets_of(credentials, app))
        return Connected(credentials=credentials, config={"author_urn": urn})

    async def _member_urn(self, config: LinkedInConfig, token: str, secrets: list[str]) -> str:
        """`urn:li:person:<sub>` of the token's member, from the OpenID Connect userinfo."""
        answer = await call(self.session, "GET", f"{config.api_base.rstrip('/')}/v2/userinfo",
                            platform="linkedin", secrets=secrets,
                            headers=bearer(token))
        if answer.status == 429 or answer.status >= 500:
            raise api_error(answer, secrets, refreshable=False)
        sub = answer.object().get("sub") if answer.ok else None
        if not isinstance(sub, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", sub):
            raise Permanent(f"{answer_error('linkedin', answer, secrets)} (could not read the "
                            f"member from /v2/userinfo; the token needs openid and profile)")
        return f"urn:li:person:{sub}"

    async def refresh(self, config: dict[str, Any], credentials: dict[str, Any],
                      app: OAuthApp | None) -> dict[str, Any]:
        """LinkedIn keeps the refresh token (its lifetime runs from the first grant); the
        access token is new, for another 60 days."""
        refresh_token = credential(credentials, "refresh_token", "linkedin",
                                   "linkedin: no refresh token (LinkedIn issues them to "
                                   "approved partners only); reconnect the account")
        if app is None:
            raise Permanent("linkedin: no OAuth client is configured "
                            "(HERALD_LINKEDIN_CLIENT_ID) to refresh with")
        secrets = secrets_of(credentials, app)
        answer = await self._token_call(
            parsed(LinkedInConfig, config, "linkedin", "config"), app,
            {"grant_type": "refresh_token", "refresh_token": refresh_token}, secrets)
        if answer.ok:
            return oauth_credentials("linkedin", answer, credentials)
        message = answer_error("linkedin", answer, secrets)
        if answer.status == 429 or answer.status >= 500:
            raise api_error(answer, secrets, refreshable=False)
        if answer.status in (400, 401):
            raise AuthRevoked(f"{message} (the refresh token was refused; reconnect)")
        raise Permanent(message)

    async def _token_call(self, config: LinkedInConfig, app: OAuthApp, form: dict[str, str],
                          secrets: list[str]) -> Answer:
        """`POST /oauth/v2/accessToken`, the client authenticated in the form."""
        body = {**form, "client_id": app.client_id, "client_secret": app.client_secret or ""}
        return await call(
            self.session, "POST", f"{config.auth_base.rstrip('/')}/oauth/v2/accessToken",
            platform="linkedin", secrets=[*secrets, *secrets_of({}, app)], data=body)

    # --- publishing -------------------------------------------------------------------------

    async def publish(self, request: PublishRequest) -> Published:
        """The media uploaded (each once, `uploaded`) and AVAILABLE, then one
        `POST /rest/posts` naming them."""
        config = parsed(LinkedInConfig, request.config, "linkedin", "config")
        if not config.author_urn:
            raise Permanent("linkedin: config.author_urn is not set; reconnect the account")
        files = request.media_of(0)
        try:
            urns = [await uploaded(request, 0, n, self._uploader(request, config, n, file))
                    for n, file in enumerate(files)]
            for urn in urns:
                await self._available(request, config, urn)
        except OutcomeUnknown as exc:  # an upload's lost answer makes no post
            raise Transient(str(exc)) from exc
        body: dict[str, Any] = {
            "author": config.author_urn,
            "commentary": escape_little_text(request.content.text),
            "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                             "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }
        if urns:
            body["content"] = media_content(files, urns)
        return await self._create(request, config, body)

    # --- media ------------------------------------------------------------------------------

    def _uploader(self, request: PublishRequest, config: LinkedInConfig, index: int,
                  file: MediaFile) -> Callable[[], Awaitable[str]]:
        async def upload() -> str:
            """The file's upload session, started once and saved, its parts PUT in order
            (each ETag saved before the next part), then a video finalized."""
            key = f"upload_0_{index}"
            session: dict[str, Any] | None = request.checkpoints.get(key)
            if session is None or session.get("expires_ms", 0) <= clock.time() * 1000:
                session = await self._initialize(request, config, file)
                await request.checkpoints.save(key, session)
            for part in session["parts"][len(session["etags"]):]:
                etag = await self._put(request, part, file)
                session = {**session, "etags": [*session["etags"], etag]}
                await request.checkpoints.save(key, session)
            if session["kind"] == "video":
                await self._finalize(request, config, session)
            return str(session["urn"])
        return upload

    async def _api(self, request: PublishRequest, config: LinkedInConfig, method: str,
                   path: str, **kwargs: Any) -> Answer:
        """A versioned API call, its failure in the taxonomy."""
        token = credential(request.credentials, "access_token", "linkedin")
        secrets = secrets_of(request.credentials)
        answer = await call(self.session, method, f"{config.api_base.rstrip('/')}{path}",
                            platform="linkedin", secrets=secrets,
                            headers=_headers(token, config), **kwargs)
        if not answer.ok:
            raise api_error(answer, secrets,
                            refreshable=bool(request.credentials.get("refresh_token")))
        return answer

    async def _initialize(self, request: PublishRequest, config: LinkedInConfig,
                          file: MediaFile) -> dict[str, Any]:
        """`initializeUpload`: the asset's URN and the byte ranges to PUT where."""
        kind = _kind(file.info)
        size = file.info.size
        if kind is None or size is None:
            raise Permanent(f"linkedin: media {file.id} is not an image or video of known size")
        init: dict[str, Any] = {"owner": config.author_urn}
        if kind == "video":
            init |= {"fileSizeBytes": size, "uploadCaptions": False, "uploadThumbnail": False}
        answer = await self._api(request, config, "POST", f"/rest/{kind}s",
                                 params={"action": "initializeUpload"},
                                 json={"initializeUploadRequest": init})
        value = answer.object().get("value")
        value = value if isinstance(value, dict) else {}
        urn = value.get(kind)
        if kind == "image":
            instructions = [{"uploadUrl": value.get("uploadUrl"), "firstByte": 0,
                             "lastByte": size - 1}]
            expires = value.get("uploadUrlExpiresAt")
        else:
            instructions = value.get("uploadInstructions") or []
            expires = value.get("uploadUrlsExpireAt")
        parts = [{"url": i.get("uploadUrl"), "first": i.get("firstByte"),
                  "last": i.get("lastByte")} for i in instructions if isinstance(i, dict)]
        if not isinstance(urn, str) or not parts or not all(
                isinstance(p["url"], str) and isinstance(p["first"], int)
                and isinstance(p["last"], int) for p in parts):
            raise Transient(f"linkedin: initializeUpload answered without a {kind} URN and "
                            f"upload URLs")
        return {"kind": kind, "urn": urn, "parts": parts, "etags": [],
                "token": value.get("uploadToken") or "",
                "expires_ms": expires if isinstance(expires, int) else 0}

    async def _put(self, request: PublishRequest, part: dict[str, Any],
                   file: MediaFile) -> str:
        """One byte range PUT to its upload URL, streamed; its ETag (a video's part id)."""
        token = credential(request.credentials, "access_token", "linkedin")
        secrets = secrets_of(request.credentials)
        first, last = int(part["first"]), int(part["last"])
        body = Streamed(file.chunks(UPLOAD_CHUNK, first, last + 1), last + 1 - first,
                        "application/octet-stream")
        answer = await call(self.session, "PUT", str(part["url"]), platform="linkedin",
                            secrets=secrets, data=body, timeout_seconds=UPLOAD_TIMEOUT_SECONDS,
                            headers={**bearer(token), "Content-Type": "application/octet-stream"})
        if not answer.ok:
            raise api_error(answer, secrets,
                            refreshable=bool(request.credentials.get("refresh_token")))
        return answer.headers.get("ETag", "")

    async def _finalize(self, request: PublishRequest, config: LinkedInConfig,
                        session: dict[str, Any]) -> None:
        """`finalizeUpload` with the parts' ETags in order. A retry whose earlier finalize
        was answered but lost finds the video past WAITING_UPLOAD and goes on."""
        body = {"finalizeUploadRequest": {"video": session["urn"],
                                          "uploadToken": session["token"],
                                          "uploadedPartIds": session["etags"]}}
        try:
            await self._api(request, config, "POST", "/rest/videos",
                            params={"action": "finalizeUpload"}, json=body)
        except Permanent:
            if await self._status(request, config, session["urn"]) in (None, "WAITING_UPLOAD"):
                raise

    async def _status(self, request: PublishRequest, config: LinkedInConfig,
                      urn: str) -> str | None:
        kind = "videos" if urn.startswith("urn:li:video:") else "images"
        answer = await self._api(request, config, "GET", f"/rest/{kind}/{urn}")
        status = answer.object().get("status")
        return status if isinstance(status, str) else None

    async def _available(self, request: PublishRequest, config: LinkedInConfig,
                         urn: str) -> None:
        """Wait until LinkedIn has processed the asset: PROCESSING_FAILED is Permanent, and
        past the budget Transient (the retry polls the saved URN again)."""
        wait = POLL_FIRST_SECONDS
        spent = 0.0
        while True:
            status = await self._status(request, config, urn)
            if status == "AVAILABLE":
                return
            if status == "PROCESSING_FAILED":
                raise Permanent(f"linkedin: {urn} failed processing")
            if spent >= PROCESSING_BUDGET_SECONDS:
                raise Transient(f"linkedin: {urn} still {status} after "
                                f"{PROCESSING_BUDGET_SECONDS:g} s")
            await asyncio.sleep(wait * self.poll_scale)
            spent += wait
            wait = min(wait * 2, POLL_MAX_SECONDS)

    async def _create(self, request: PublishRequest, config: LinkedInConfig,
                      body: dict[str, Any]) -> Published:
        token = credential(request.credentials, "access_token", "linkedin")
        secrets = secrets_of(request.credentials)
        answer = await call(
            self.session, "POST", f"{config.api_base.rstrip('/')}/rest/posts",
            platform="linkedin", secrets=secrets, json=body, headers=_headers(token, config))
        if answer.ok:
            return _published(answer.headers.get("x-restli-id"))
        earlier = duplicate_of(answer)
        if earlier is not None:
            return await self._confirm_duplicate(request, earlier, answer, secrets)
        raise api_error(answer, secrets, refreshable=bool(request.credentials.get("refresh_token")))

    async def _confirm_duplicate(self, request: PublishRequest, earlier: str, answer: Answer,
                                 secrets: list[str]) -> Published:
        """The earlier post is this job's only if it was made since the job's time with this
        text: a recurring post repeating yesterday's text must not count as published."""
        refused = answer_error("linkedin", answer, secrets)
        try:
            found = await self.lookup(request, utc(request.scheduled_for) - LOOKUP_SLACK)
        except Permanent as exc:
            raise Permanent(f"{refused}; whether {earlier or 'that post'} is this job's could "
                            f"not be checked: {exc}") from exc
        if found is None:
            raise Permanent(f"{refused}; no post with this text since the job's time")
        return found

    async def _find_by_author(self, config: LinkedInConfig, token: str, secrets: list[str],
                              start: int) -> Answer:
        """`GET /rest/posts?q=author&author=<urn>` sent through LinkedIn's query tunnelling
        (a POST with `X-HTTP-Method-Override: GET` and the query as a form body): Rest.li 2.0
        wants the URN's colons percent-encoded, and a query in the URL would have them decoded
        again on the way out. Losing the answer of this read is only Transient."""
        query = urlencode({"q": "author", "author": config.author_urn, "count": LOOKUP_PAGE,
                           "start": start, "sortBy": "LAST_MODIFIED"}, quote_via=quote)
        headers = {**_headers(token, config), "X-HTTP-Method-Override": "GET",
                   "Content-Type": "application/x-www-form-urlencoded"}
        try:
            return await call(self.session, "POST", f"{config.api_base.rstrip('/')}/rest/posts",
                              platform="linkedin", secrets=secrets, data=query.encode("ascii"),
                              headers=headers)
        except OutcomeUnknown as exc:
            raise Transient(str(exc)) from exc

    async def lookup(self, request: PublishRequest, since: datetime) -> Published | None:
        """The oldest post of the author made since `since` (less CLOCK_SKEW) with this job's
        commentary, from the author's posts newest first (`GET /rest/posts?q=author`)."""
        config = parsed(LinkedInConfig, request.config, "linkedin", "config")
        if not config.author_urn:
            raise Permanent("linkedin: config.author_urn is not set; reconnect the account")
        token = credential(request.credentials, "access_token", "linkedin")
        secrets = secrets_of(request.credentials)
        wanted = escape_little_text(request.content.text)
        since_ms = int((utc(since) - CLOCK_SKEW).timestamp() * 1000)
        found: Published | None = None
        for page in range(LOOKUP_PAGES):
            answer = await self._find_by_author(config, token, secrets, page * LOOKUP_PAGE)
            if answer.status == 403:
                raise Permanent(f"{answer_error('linkedin', answer, secrets)} (reading the "
                                f"author's posts needs r_member_social or r_organization_social)")
            if not answer.ok:
                raise api_error(answer, secrets,
                                refreshable=bool(request.credentials.get("refresh_token")))
            elements = [e for e in answer.object().get("elements") or [] if isinstance(e, dict)]
            for post in elements:
                created = post.get("createdAt")
                if (post.get("commentary") == wanted and isinstance(created, int)
                        and created >= since_ms and isinstance(post.get("id"), str)):
                    found = _published(post["id"])
            modified = [e.get("lastModifiedAt", e.get("createdAt")) for e in elements]
            older = any(isinstance(m, int) and m < since_ms for m in modified)
            if older or len(elements) < LOOKUP_PAGE:
                break
        return found
