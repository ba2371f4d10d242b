"""The `youtube` platform: video uploads through the YouTube Data API v3 resumable upload
protocol, with a Google OAuth 2.0 user token (docs/providers/youtube.md).

`POST /upload/youtube/v3/videos?uploadType=resumable&part=snippet,status` with the video's
metadata answers a session URI (`Location`), which is checkpointed before the first byte is
sent. The bytes go in chunks that are multiples of 256 KiB (`308 Resume Incomplete` with
`Range: bytes=0-N` after each); after an interruption the session is asked where it stands
(`Content-Range: bytes */<total>`) and the upload goes on from there. The answer to the last
byte is the video resource, whose id is the post's.

A session can be gone (404/410). A video exists only once the session received every byte, so
a new session is safe as long as no request carrying the last byte was ever sent; that is
checkpointed too (`final_sent`) before it is sent. Past that point a lost session leaves the
outcome unknown, and it stays so (reconciliation: `unconfirmed`) rather than risk a second
video.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

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
    PartsInfo,
    Permanent,
    Problems,
    Provider,
    ProviderError,
    Published,
    PublishRequest,
    TextLimit,
    Transient,
    credential,
    parsed,
    secrets_of,
)
from shared.providers.wire import (
    Answer,
    after_seconds,
    answer_error,
    bearer,
    call,
    excerpt,
    oauth_credentials,
    parse_retry_after,
    retry_later,
)

DEFAULT_API_BASE = "https://www.googleapis.com"
DEFAULT_UPLOAD_BASE = "https://www.googleapis.com"
DEFAULT_AUTH_BASE = "https://accounts.google.com"
DEFAULT_TOKEN_BASE = "https://oauth2.googleapis.com"
#: Upload videos; nothing else is asked for.
SCOPES = ("https://www.googleapis.com/auth/youtube.upload",)
#: Chunks are multiples of this (the resumable protocol's rule).
CHUNK_UNIT = 256 * 1024
MAX_TITLE = 100
MAX_DESCRIPTION_BYTES = 5000
MAX_VIDEO_BYTES = 256 * 1024 ** 3
#: A lost chunk is resumed from the session's own account of what it has, at most this
#: often per publish call.
MAX_INTERRUPTIONS = 3
VIDEO_URL = "https://www.youtube.com/watch?v={id}"
#: Chunk answers after which the session is probed instead of the publish failing.
RESUMABLE = frozenset({404, 410, 416})
#: The Data API's daily quota resets at midnight Pacific Time.
QUOTA_ZONE = ZoneInfo("America/Los_Angeles")
_RANGE = re.compile(r"^bytes=0-(\d+)$")


class YouTubeConfig(Strict):
    api_base: Annotated[HttpBase, Field(
        description="YouTube Data API base URL")] = DEFAULT_API_BASE
    upload_base: Annotated[HttpBase, Field(
        description="base URL of the upload endpoint (`/upload/youtube/v3/videos`)",
    )] = DEFAULT_UPLOAD_BASE
    auth_base: Annotated[HttpBase, Field(
        description="host of Google's consent page (`/o/oauth2/v2/auth`)")] = DEFAULT_AUTH_BASE
    token_base: Annotated[HttpBase, Field(
        description="host of Google's token endpoint (`/token`)")] = DEFAULT_TOKEN_BASE
    privacy_status: Annotated[Literal["public", "unlisted", "private"], Field(
        description="the uploaded videos' privacy; private unless set (videos uploaded by an "
                    "unverified Google Cloud project are private whatever is asked)",
    )] = "private"
    category_id: Annotated[str, Field(
        pattern=r"^[0-9]+$", description="YouTube video category id (22: People & Blogs)",
    )] = "22"
    made_for_kids: Annotated[bool, Field(
        description="status.selfDeclaredMadeForKids")] = False


class YouTubeCredentials(Strict):
    access_token: Annotated[str, Field(min_length=1, max_length=4096,
                                       description="Google OAuth access token (1 hour)")]
    refresh_token: Annotated[str | None, Field(
        min_length=1, max_length=4096,
        description="Google refresh token (access_type=offline); not rotated")] = None
    expires_at: ExpiresAt = None


def text_problems(content: Content) -> Problems:
    problems: Problems = []
    title = content.title
    if not title or not title.strip():
        problems.append(("content.title", "youtube: a video needs a title"))
    elif len(title) > MAX_TITLE:
        problems.append(("content.title", f"youtube: {len(title)} characters, at most "
                                          f"{MAX_TITLE}"))
    elif "<" in title or ">" in title:
        problems.append(("content.title", "youtube: < and > are not allowed in a title"))
    if "<" in content.text or ">" in content.text:
        problems.append(("content.text", "youtube: < and > are not allowed in a description"))
    return problems


def media_problems(media: Sequence[MediaInfo]) -> Problems:
    if len(media) != 1:
        return [("content.media", "youtube: a post is exactly one video")]
    info = media[0]
    content_type = (info.content_type or "").lower()
    if content_type and not content_type.startswith("video/"):
        return [("content.media.0", f"youtube: {content_type} is not a video")]
    if info.size is not None and info.size > MAX_VIDEO_BYTES:
        return [("content.media.0", f"youtube: video of {info.size} bytes, at most "
                                    f"{MAX_VIDEO_BYTES}")]
    return []


def _reasons(answer: Answer) -> tuple[str, str]:
    """(first `errors[].reason`, `message`) of Google's error body."""
    error = answer.object().get("error")
    if not isinstance(error, dict):
        return "", ""
    errors = error.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    reason, message = first.get("reason"), error.get("message")
    return (reason if isinstance(reason, str) else "",
            message if isinstance(message, str) else "")


def next_quota_day(now: datetime) -> datetime:
    """Midnight Pacific after `now`: when the project's daily quota is back."""
    local = now.astimezone(QUOTA_ZONE)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(), QUOTA_ZONE)
    return midnight.astimezone(UTC)


def failure(answer: Answer, secrets: Sequence[str], now: datetime) -> ProviderError:
    """Google's error answer in the taxonomy, by `errors[0].reason` first."""
    reason, text = _reasons(answer)
    message = (f"youtube answered {answer.status}: {reason or 'error'}: "
               f"{excerpt(text.encode(), secrets)}" if text
               else answer_error("youtube", answer, secrets))
    if reason in ("quotaExceeded", "dailyLimitExceeded"):
        return retry_later(f"{message} (the project's daily quota)", next_quota_day(now), "app")
    if reason == "uploadLimitExceeded":
        return retry_later(f"{message} (the channel's upload limit)",
                           after_seconds(24 * 3600, now), "account")
    if reason in ("rateLimitExceeded", "userRateLimitExceeded") or answer.status == 429:
        return retry_later(message, parse_retry_after(answer.headers.get("Retry-After"), now))
    if answer.status == 401:
        return AuthExpired(message)
    if reason in ("forbidden", "insufficientPermissions", "youtubeSignupRequired"):
        return AuthRevoked(f"{message}; connect the YouTube channel again")
    if answer.status >= 500:
        return Transient(message)
    return Permanent(message)


class YouTubeProvider(Provider):
    platform = "youtube"
    Config = YouTubeConfig
    Credentials = YouTubeCredentials
    connects_with = "oauth"
    honours_idempotency_key = False
    supports_lookup = True
    supports_media = True
    supports_threads = False
    #: videos.insert has its own quota bucket, 100 calls a day per Google Cloud project by
    #: default (shared by every channel of the installation; `quotaExceeded` then holds all).
    default_budget = Budget(count=100, period_seconds=24 * 3600.0)
    #: Bytes per PUT, a multiple of CHUNK_UNIT.
    chunk_bytes = 32 * CHUNK_UNIT

    # --- OAuth ------------------------------------------------------------------------------

    def authorization_url(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                          state: str, code_challenge: str) -> str:
        """Google's consent page: offline access (a refresh token), consent asked each time
        so a reconnect gets a refresh token again, PKCE S256."""
        base = parsed(YouTubeConfig, config, "youtube", "config").auth_base.rstrip("/")
        query = urlencode({
            "client_id": app.client_id, "redirect_uri": redirect_uri, "response_type": "code",
            "scope": " ".join(SCOPES), "access_type": "offline", "prompt": "consent",
            "include_granted_scopes": "true", "state": state,
            "code_challenge": code_challenge, "code_challenge_method": "S256",
        }, quote_via=quote)
        return f"{base}/o/oauth2/v2/auth?{query}"

    async def exchange_code(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                            code: str, code_verifier: str) -> Connected:
        hidden = [*secrets_of({}, app), code, code_verifier]
        answer = await self._token_call(config, app, {
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": code_verifier}, hidden)
        if not answer.ok:
            if answer.status == 429 or answer.status >= 500:
                raise failure(answer, hidden, datetime.now(UTC))
            raise Permanent(answer_error("youtube", answer, hidden))
        return Connected(credentials=oauth_credentials("youtube", answer, {}))

    async def refresh(self, config: dict[str, Any], credentials: dict[str, Any],
                      app: OAuthApp | None) -> dict[str, Any]:
        """Google keeps the refresh token (it does not rotate); `invalid_grant` means it was
        revoked or expired."""
        refresh_token = credential(credentials, "refresh_token", "youtube",
                                   "youtube: no refresh token; connect the channel again")
        if app is None:
            raise Permanent("youtube: no OAuth client is configured "
                            "(HERALD_YOUTUBE_CLIENT_ID) to refresh with")
        secrets = secrets_of(credentials, app)
        answer = await self._token_call(config, app, {
            "grant_type": "refresh_token", "refresh_token": refresh_token}, secrets)
        if answer.ok:
            return oauth_credentials("youtube", answer, credentials)
        message = answer_error("youtube", answer, secrets)
        if answer.status == 429 or answer.status >= 500:
            raise Transient(message)
        raise AuthRevoked(f"{message} (the refresh token was refused; reconnect)")

    async def _token_call(self, config: dict[str, Any], app: OAuthApp, form: dict[str, str],
                          secrets: list[str]) -> Answer:
        base = parsed(YouTubeConfig, config, "youtube", "config").token_base.rstrip("/")
        body = {**form, "client_id": app.client_id}
        if app.client_secret:
            body["client_secret"] = app.client_secret
        return await call(self.session, "POST", f"{base}/token", platform="youtube",
                          secrets=secrets, data=body)

    # --- limits -----------------------------------------------------------------------------

    async def text_limit(self, config: dict[str, Any]) -> TextLimit:
        return TextLimit(MAX_DESCRIPTION_BYTES, "UTF-8 bytes")

    def measure(self, text: str) -> int:
        return len(text.encode("utf-8"))

    async def check_content(self, content: Content, config: dict[str, Any],
                            media: PartsInfo = ()) -> Problems:
        problems = await super().check_content(content, config, media)
        known = list(media[0]) if media else [MediaInfo(m.mime_type) for m in content.media]
        return problems + text_problems(content) + media_problems(known)

    # --- publishing -------------------------------------------------------------------------

    async def publish(self, request: PublishRequest) -> Published:
        config = parsed(YouTubeConfig, request.config, "youtube", "config")
        token = credential(request.credentials, "access_token", "youtube")
        items = list(request.media_of(0))
        if len(items) != 1:
            raise Permanent("youtube: a post is exactly one video")
        video = items[0]
        size = video.info.size
        if not size:
            raise Permanent("youtube: the video's size is unknown")
        saved = request.checkpoints.get("youtube_upload")
        if isinstance(saved, dict):
            done, received = await self._probe(token, saved)
            if done is not None:
                return done
            if received is None:  # the session is gone before the last byte: start again
                saved = None
        if not isinstance(saved, dict):
            saved = await self._session(request, config, token, video, size)
            received = 0
        return await self._send(request, token, video, saved, received or 0)

    async def _session(self, request: PublishRequest, config: YouTubeConfig, token: str,
                       video: MediaFile, size: int) -> dict[str, Any]:
        """A new resumable session, checkpointed before any byte is sent."""
        title = request.content.title
        if not title:
            raise Permanent("youtube: a video needs a title (content.title)")
        metadata = {
            "snippet": {"title": title, "description": request.content.text,
                        "categoryId": config.category_id},
            "status": {"privacyStatus": config.privacy_status,
                       "selfDeclaredMadeForKids": config.made_for_kids},
        }
        answer = await call(
            self.session, "POST",
            f"{config.upload_base.rstrip('/')}/upload/youtube/v3/videos",
            platform="youtube", secrets=[token], json=metadata,
            params={"uploadType": "resumable", "part": "snippet,status"},
            headers={**bearer(token), "X-Upload-Content-Length": str(size),
                     "X-Upload-Content-Type": video.info.content_type or "video/*"})
        if not answer.ok:
            raise failure(answer, [token], datetime.now(UTC))
        location = answer.headers.get("Location")
        if not location:
            raise Transient("youtube answered the upload request without a session URI")
        saved = {"session": location, "size": size, "final_sent": False}
        await request.checkpoints.save("youtube_upload", saved)
        return saved

    async def _probe(self, token: str, saved: dict[str, Any]
                     ) -> tuple[Published | None, int | None]:
        """Ask the session where it stands: (the video, _) when complete, (None, bytes
        received) while incomplete, (None, None) when the session is gone and no video can
        exist. Gone after the last byte was sent: Transient, the outcome stays unknown."""
        answer = await self._put(token, saved["session"], b"",
                                 {"Content-Range": f"bytes */{saved['size']}"})
        if answer.status in (200, 201):
            return _video(answer), None
        if answer.status == 308:
            return None, _next_byte(answer)
        if answer.status in (404, 410):
            if saved.get("final_sent"):
                raise Transient("youtube: the upload session is gone after its last byte was "
                                "sent; whether the video was made cannot be told")
            return None, None
        raise failure(answer, [token], datetime.now(UTC))

    async def _send(self, request: PublishRequest, token: str, video: MediaFile,
                    saved: dict[str, Any], received: int) -> Published:
        size = saved["size"]
        step = max(CHUNK_UNIT, self.chunk_bytes // CHUNK_UNIT * CHUNK_UNIT)
        interruptions = 0
        while True:
            end = min(received + step, size)
            if end == size and not saved.get("final_sent"):
                saved = {**saved, "final_sent": True}
                await request.checkpoints.save("youtube_upload", saved)
            try:
                answer: Answer | None = await self._put(
                    token, saved["session"], _stream(video, received, end),
                    {"Content-Length": str(end - received),
                     "Content-Range": f"bytes {received}-{end - 1}/{size}"})
            except Transient:
                answer = None
            if answer is not None and answer.status in (200, 201):
                return _video(answer)
            if answer is not None and answer.status == 308:
                received = _next_byte(answer)
                continue
            # Lost, failed, off the session's range or gone: the session says where it stands.
            if answer is not None and answer.status < 500 and answer.status not in RESUMABLE:
                raise failure(answer, [token], datetime.now(UTC))
            interruptions += 1
            if interruptions > MAX_INTERRUPTIONS:
                raise Transient(f"youtube: the upload was interrupted {interruptions} times; "
                                "it resumes from the saved session on the next try")
            done, where = await self._probe(token, saved)
            if done is not None:
                return done
            if where is None:
                raise Transient("youtube: the upload session is gone; the next try starts "
                                "a new one")
            received = where

    async def _put(self, token: str, session_uri: str, body: bytes | AsyncIterator[bytes],
                   headers: dict[str, str]) -> Answer:
        timeout = 30.0 + (self.chunk_bytes / 256_000)
        return await call(self.session, "PUT", session_uri, platform="youtube",
                          secrets=[token, session_uri], timeout_seconds=timeout,
                          headers={**bearer(token), **headers}, data=body)

    async def lookup(self, request: PublishRequest, since: datetime) -> Published | None:
        """By the saved session: complete is the video; incomplete (or never started, or gone
        before the last byte) is None and the retry resumes it; gone after the last byte is
        Transient (unknown)."""
        saved = request.checkpoints.get("youtube_upload")
        if not isinstance(saved, dict):
            return None
        token = credential(request.credentials, "access_token", "youtube")
        done, _received = await self._probe(token, saved)
        return done


def _next_byte(answer: Answer) -> int:
    """The first byte the session still needs: after `Range: bytes=0-N`, N + 1; none received
    when there is no Range header."""
    match = _RANGE.match(answer.headers.get("Range", ""))
    return int(match.group(1)) + 1 if match else 0


def _video(answer: Answer) -> Published:
    video_id = answer.object().get("id")
    if not isinstance(video_id, str) or not video_id:
        return Published()
    return Published(video_id, VIDEO_URL.format(id=video_id))


async def _stream(video: MediaFile, start: int, end: int) -> AsyncIterator[bytes]:
    async for piece in video.chunks(CHUNK_UNIT, start, end):
        yield piece
