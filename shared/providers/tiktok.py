"""The `tiktok` platform: video posts through the Content Posting API, direct post
(docs/providers/tiktok.md).

A post is three steps: `creator_info/query` (the privacy levels the creator allows now, the
longest video), `video/init` with `source=FILE_UPLOAD` (→ `publish_id` and an upload URL),
the bytes PUT in chunks by TikTok's rules, then `status/fetch` until PUBLISH_COMPLETE or
FAILED. The `publish_id` is checkpointed right after init: whatever happens later (a chunk
lost, the executor killed), a retry or a reconciliation asks `status/fetch` about that
publish and continues it, and never initialises a second one while the first can still
become a post.

Access tokens live 2 hours and are refreshed with the refresh token (180 days), which TikTok
rotates: each refresh answers a new one and the old one stops working, so the new credentials
are stored whole. `access_token_invalid` is answered by a refresh; a refused refresh needs
connecting again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

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
    RateLimited,
    TextLimit,
    Transient,
    credential,
    parsed,
    secrets_of,
)
from shared.providers.text import utf16_units
from shared.providers.wire import (
    Answer,
    after_seconds,
    bearer,
    call,
    excerpt,
    oauth_credentials,
    parse_retry_after,
    retry_later,
)

DEFAULT_API_BASE = "https://open.tiktokapis.com"
DEFAULT_AUTH_BASE = "https://www.tiktok.com"
#: Read the creator (`user.info.basic`) and post directly to their profile (`video.publish`).
SCOPES = ("user.info.basic", "video.publish")
PRIVACY_LEVELS = ("PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR",
                  "SELF_ONLY")
MAX_TITLE = 2_200
VIDEO_TYPES = frozenset({"video/mp4", "video/quicktime", "video/webm"})
MAX_VIDEO_BYTES = 4 * 1024 ** 3
#: TikTok's chunk rules: 5 MB to 64 MB, the last chunk up to 128 MB with the trailing bytes,
#: a file under 5 MB in one chunk, at most 1,000 chunks.
MIN_CHUNK = 5 * 1024 * 1024
MAX_CHUNK = 64 * 1024 * 1024
MAX_CHUNKS = 1000
#: A chunk PUT that failed is resumed from what TikTok reports received, at most this often
#: per publish call (then the error goes to the executor, the checkpoint stays).
MAX_INTERRUPTIONS = 3
POST_URL = "https://www.tiktok.com/@{user}/video/{id}"

PublishStatus = Literal["PROCESSING_UPLOAD", "PROCESSING_DOWNLOAD", "SEND_TO_USER_INBOX",
                        "PUBLISH_COMPLETE", "FAILED"]
#: TikTok's error codes (the body's `error.code`) that need the creator to connect again.
REVOKED = frozenset({"scope_not_authorized", "scope_permission_missed", "access_token_revoked"})
#: Limits with a known window: (scope, seconds to wait).
LIMITS: dict[str, tuple[Literal["request", "account", "app"], float]] = {
    "rate_limit_exceeded": ("request", 60.0),
    "spam_risk_too_many_posts": ("account", 24 * 3600.0),
    "spam_risk_too_many_pending_share": ("account", 3600.0),
    "reached_active_user_cap": ("app", 24 * 3600.0),
}


class TikTokConfig(Strict):
    api_base: Annotated[HttpBase, Field(
        description="TikTok API base URL (posting and the OAuth token endpoint)",
    )] = DEFAULT_API_BASE
    auth_base: Annotated[HttpBase, Field(
        description="host of TikTok's authorization page (`/v2/auth/authorize/`)",
    )] = DEFAULT_AUTH_BASE
    privacy_level: Annotated[Literal[
        "PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"],
        Field(description="who may see the posts; must be among the levels the creator "
                          "allows (creator_info); SELF_ONLY until the TikTok app is audited",
              )] = "SELF_ONLY"
    disable_comment: bool = False
    disable_duet: bool = False
    disable_stitch: bool = False


class TikTokCredentials(Strict):
    access_token: Annotated[str, Field(min_length=1, max_length=4096,
                                       description="user access token (2 hours)")]
    refresh_token: Annotated[str | None, Field(
        min_length=1, max_length=4096,
        description="refresh token (180 days); TikTok rotates it on every refresh",
    )] = None
    expires_at: ExpiresAt = None
    open_id: Annotated[str | None, Field(
        max_length=200, description="the creator's id for this app")] = None


def _error(answer: Answer) -> tuple[str, str]:
    """(code, message) of TikTok's envelope `{"error": {"code", "message", "log_id"}}`, or of
    an OAuth error `{"error": "invalid_grant", "error_description"}`."""
    error = answer.object().get("error")
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        return (code if isinstance(code, str) else "",
                message if isinstance(message, str) else "")
    description = answer.object().get("error_description")
    return (error if isinstance(error, str) else "",
            description if isinstance(description, str) else "")


def failure(answer: Answer, secrets: Sequence[str], now: datetime) -> ProviderError:
    """A TikTok answer that is not a success, in the taxonomy, by `error.code` first."""
    code, text = _error(answer)
    message = f"tiktok answered {answer.status}: {code or 'error'}: " + excerpt(
        (text or answer.body.decode("utf-8", "replace")).encode(), secrets)
    if code in LIMITS:
        scope, seconds = LIMITS[code]
        at = (parse_retry_after(answer.headers.get("Retry-After"), now)
              if "Retry-After" in answer.headers else after_seconds(seconds, now))
        return retry_later(message, at, scope)
    if answer.status == 429:
        return retry_later(message, parse_retry_after(answer.headers.get("Retry-After"), now))
    if code in REVOKED:
        return AuthRevoked(f"{message}; connect the TikTok account again")
    if code == "access_token_invalid" or answer.status == 401:
        return AuthExpired(message)
    if answer.status >= 500 or code == "internal_error":
        return Transient(message)
    return Permanent(message)


def chunking(size: int, preferred: int) -> tuple[int, int]:
    """(chunk_size, total_chunk_count) by TikTok's rules: the count is the size divided by
    the chunk size, rounded down, and the last chunk takes the trailing bytes."""
    if size <= MIN_CHUNK:
        return size, 1
    chunk = min(max(preferred, MIN_CHUNK, -(-size // MAX_CHUNKS)), MAX_CHUNK)
    if size <= chunk:
        return size, 1
    return chunk, size // chunk


def chunk_ranges(size: int, chunk: int, count: int) -> list[tuple[int, int]]:
    """[start, end) of each chunk; the last runs to the end of the file."""
    return [(i * chunk, size if i == count - 1 else (i + 1) * chunk) for i in range(count)]


def media_problems(media: Sequence[MediaInfo]) -> Problems:
    if not media:
        return [("content.media", "tiktok: a post needs a video")]
    problems: Problems = []
    if len(media) > 1:
        problems.append(("content.media", f"tiktok: {len(media)} media, a video post takes one"))
    for index, info in enumerate(media):
        where = f"content.media.{index}"
        content_type = (info.content_type or "").lower()
        if content_type.startswith("image/"):
            problems.append((where, "tiktok: photo posts are not supported by Herald yet"))
        elif content_type and content_type not in VIDEO_TYPES:
            problems.append((where, f"tiktok: {content_type} is not accepted, only MP4, "
                                    "QuickTime and WebM videos"))
        if info.size is not None and info.size > MAX_VIDEO_BYTES:
            problems.append((where, f"tiktok: video of {info.size} bytes, at most "
                                    f"{MAX_VIDEO_BYTES}"))
    return problems


class TikTokProvider(Provider):
    platform = "tiktok"
    Config = TikTokConfig
    Credentials = TikTokCredentials
    connects_with = "oauth"
    honours_idempotency_key = False
    supports_lookup = True
    supports_media = True
    supports_threads = False
    #: About 15 direct posts per creator per 24 hours (TikTok's posting limits).
    default_budget = Budget(count=15, period_seconds=24 * 3600.0)
    #: The chunk size Herald asks for (TikTok's bounds apply, `chunking`).
    chunk_bytes = 10 * 1024 * 1024
    poll_seconds = 5.0
    processing_timeout_seconds = 300.0

    # --- OAuth ------------------------------------------------------------------------------

    def authorization_url(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                          state: str, code_challenge: str) -> str:
        """Login Kit for Web: `client_key`, comma-separated scopes. TikTok's PKCE is for
        desktop and mobile apps only (with a hex challenge), so none is sent; the client
        secret authenticates the exchange."""
        base = parsed(TikTokConfig, config, "tiktok", "config").auth_base.rstrip("/")
        query = urlencode({"client_key": app.client_id, "scope": ",".join(SCOPES),
                           "response_type": "code", "redirect_uri": redirect_uri,
                           "state": state}, quote_via=quote)
        return f"{base}/v2/auth/authorize/?{query}"

    async def exchange_code(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                            code: str, code_verifier: str) -> Connected:
        answer = await self._token_call(config, app, {
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
            [code])
        if not answer.ok or "access_token" not in answer.object():
            raise self._token_failure(answer, [*secrets_of({}, app), code], revoked=False)
        credentials = oauth_credentials("tiktok", answer, {})
        open_id = answer.object().get("open_id")
        if isinstance(open_id, str):
            credentials["open_id"] = open_id
        return Connected(credentials=credentials)

    async def refresh(self, config: dict[str, Any], credentials: dict[str, Any],
                      app: OAuthApp | None) -> dict[str, Any]:
        refresh_token = credential(credentials, "refresh_token", "tiktok",
                                   "tiktok: no refresh token; connect the account again")
        if app is None:
            raise Permanent("tiktok: no OAuth client is configured (HERALD_TIKTOK_CLIENT_ID) "
                            "to refresh with")
        secrets = secrets_of(credentials, app)
        answer = await self._token_call(config, app, {
            "grant_type": "refresh_token", "refresh_token": refresh_token}, secrets)
        if not answer.ok or "access_token" not in answer.object():
            raise self._token_failure(answer, secrets, revoked=True)
        return oauth_credentials("tiktok", answer, credentials)

    async def _token_call(self, config: dict[str, Any], app: OAuthApp, form: dict[str, str],
                          secrets: list[str]) -> Answer:
        """`POST /v2/oauth/token/`, the client's key and secret in the form."""
        base = parsed(TikTokConfig, config, "tiktok", "config").api_base.rstrip("/")
        return await call(
            self.session, "POST", f"{base}/v2/oauth/token/", platform="tiktok",
            secrets=[*secrets, *secrets_of({}, app)],
            data={**form, "client_key": app.client_id, "client_secret": app.client_secret or ""})

    @staticmethod
    def _token_failure(answer: Answer, secrets: Sequence[str], *,
                       revoked: bool) -> ProviderError:
        """An outage or a limit is retried; any other refusal of a refresh means reconnect,
        of a code exchange that the request was bad."""
        found = failure(answer, secrets, datetime.now(UTC))
        if isinstance(found, Transient | RateLimited):
            return found
        if revoked:
            return AuthRevoked(f"{found} (the refresh token was refused; reconnect)")
        return Permanent(str(found))

    # --- limits -----------------------------------------------------------------------------

    async def text_limit(self, config: dict[str, Any]) -> TextLimit:
        return TextLimit(MAX_TITLE, "UTF-16 code units")

    def measure(self, text: str) -> int:
        return utf16_units(text)

    async def check_content(self, content: Content, config: dict[str, Any],
                            media: PartsInfo = ()) -> Problems:
        problems = await super().check_content(content, config, media)
        known = list(media[0]) if media else [MediaInfo(m.mime_type) for m in content.media]
        return problems + media_problems(known)

    # --- publishing -------------------------------------------------------------------------

    async def publish(self, request: PublishRequest) -> Published:
        config = parsed(TikTokConfig, request.config, "tiktok", "config")
        token = credential(request.credentials, "access_token", "tiktok")
        items = list(request.media_of(0))
        if len(items) != 1 or not (items[0].info.content_type or "").startswith("video/"):
            raise Permanent("tiktok: a post is exactly one video")
        video = items[0]
        saved = request.checkpoints.get("tiktok_publish")
        if not isinstance(saved, dict):
            saved = await self._init(request, config, token, video)
        status, document = await self._status(config, token, saved["publish_id"])
        if status == "FAILED":
            raise Permanent(f"tiktok: the publish failed: {document.get('fail_reason')}")
        if status == "PROCESSING_UPLOAD" and not _complete(document, saved):
            await self._upload(config, token, video, saved, document)
        return await self._until_published(config, token, saved)

    async def _init(self, request: PublishRequest, config: TikTokConfig, token: str,
                    video: MediaFile) -> dict[str, Any]:
        """creator_info, then init; the publish is checkpointed before anything else."""
        creator = (await self._api(config, token, "publish/creator_info/query/", {}))
        options = creator.get("privacy_level_options")
        if isinstance(options, list) and config.privacy_level not in options:
            raise Permanent(f"tiktok: privacy_level {config.privacy_level} is not allowed for "
                            f"this creator now (allowed: {', '.join(map(str, options))})")
        longest = creator.get("max_video_post_duration_sec")
        seconds = video.info.duration_seconds
        if isinstance(longest, int | float) and seconds is not None and seconds > longest:
            raise Permanent(f"tiktok: video of {seconds:g} s, this creator may post at most "
                            f"{longest:g} s")
        size = video.info.size
        if not size:
            raise Permanent("tiktok: the video's size is unknown")
        chunk, count = chunking(size, self.chunk_bytes)
        data = await self._api(config, token, "publish/video/init/", {
            "post_info": {"title": request.content.text, "privacy_level": config.privacy_level,
                          "disable_comment": config.disable_comment,
                          "disable_duet": config.disable_duet,
                          "disable_stitch": config.disable_stitch},
            "source_info": {"source": "FILE_UPLOAD", "video_size": size, "chunk_size": chunk,
                            "total_chunk_count": count},
        })
        publish_id, upload_url = data.get("publish_id"), data.get("upload_url")
        if not isinstance(publish_id, str) or not isinstance(upload_url, str):
            raise Transient("tiktok answered init without a publish_id and upload_url")
        username = creator.get("creator_username")
        saved = {"publish_id": publish_id, "upload_url": upload_url, "video_size": size,
                 "chunk_size": chunk, "chunk_count": count,
                 "username": username if isinstance(username, str) else None}
        await request.checkpoints.save("tiktok_publish", saved)
        return saved

    async def _upload(self, config: TikTokConfig, token: str, video: MediaFile,
                      saved: dict[str, Any], status: dict[str, Any]) -> None:
        """The chunks TikTok has not received yet, in order; after an interruption TikTok's
        `uploaded_bytes` says where to go on."""
        size, chunk, count = saved["video_size"], saved["chunk_size"], saved["chunk_count"]
        ranges = chunk_ranges(size, chunk, count)
        interruptions = 0
        received = _received(status)
        while True:
            pending = [r for r in ranges if r[0] >= received]
            if not pending:
                return
            start, end = pending[0]
            try:
                answer = await call(
                    self.session, "PUT", saved["upload_url"], platform="tiktok",
                    secrets=[token], timeout_seconds=max(60.0, (end - start) / 256_000),
                    headers={"Content-Type": video.info.content_type or "video/mp4",
                             "Content-Length": str(end - start),
                             "Content-Range": f"bytes {start}-{end - 1}/{size}"},
                    data=_stream(video, start, end))
            except Transient:
                answer = None
            if answer is not None and answer.status in (201, 206):
                received = end
                continue
            if answer is not None and answer.status < 500 and answer.status != 416:
                raise failure(answer, [token], datetime.now(UTC))
            interruptions += 1
            if interruptions > MAX_INTERRUPTIONS:
                raise Transient(f"tiktok: the upload was interrupted {interruptions} times; "
                                "it resumes on the next try")
            _state, document = await self._status(config, token, saved["publish_id"])
            received = _received(document)

    async def _until_published(self, config: TikTokConfig, token: str,
                               saved: dict[str, Any]) -> Published:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.processing_timeout_seconds
        while True:
            status, document = await self._status(config, token, saved["publish_id"])
            if status == "PUBLISH_COMPLETE":
                return _published(document, saved)
            if status == "SEND_TO_USER_INBOX":
                return Published()
            if status == "FAILED":
                raise Permanent(f"tiktok: the publish failed: {document.get('fail_reason')}")
            if loop.time() >= deadline:
                raise Transient(f"tiktok: publish {saved['publish_id']} still {status} after "
                                f"{self.processing_timeout_seconds:g}s")
            await asyncio.sleep(self.poll_seconds)

    async def _status(self, config: TikTokConfig, token: str,
                      publish_id: str) -> tuple[PublishStatus, dict[str, Any]]:
        data = await self._api(config, token, "publish/status/fetch/",
                               {"publish_id": publish_id})
        status = data.get("status")
        if status not in ("PROCESSING_UPLOAD", "PROCESSING_DOWNLOAD", "SEND_TO_USER_INBOX",
                          "PUBLISH_COMPLETE", "FAILED"):
            raise Transient(f"tiktok: publish {publish_id} has no known status")
        return status, data

    async def _api(self, config: TikTokConfig, token: str, path: str,
                   body: dict[str, Any]) -> dict[str, Any]:
        """`POST /v2/post/<path>` with TikTok's envelope: success only with `error.code` ok."""
        answer = await call(
            self.session, "POST", f"{config.api_base.rstrip('/')}/v2/post/{path}",
            platform="tiktok", secrets=[token], json=body,
            headers={**bearer(token), "Content-Type": "application/json; charset=UTF-8"})
        code, _message = _error(answer)
        if not answer.ok or code not in ("ok", ""):
            raise failure(answer, [token], datetime.now(UTC))
        data = answer.object().get("data")
        return data if isinstance(data, dict) else {}

    async def lookup(self, request: PublishRequest, since: datetime) -> Published | None:
        """By the checkpointed publish: PUBLISH_COMPLETE is the post; no publish, FAILED or
        still processing is None (a retry continues the same publish)."""
        saved = request.checkpoints.get("tiktok_publish")
        if not isinstance(saved, dict):
            return None
        config = parsed(TikTokConfig, request.config, "tiktok", "config")
        token = credential(request.credentials, "access_token", "tiktok")
        status, document = await self._status(config, token, saved["publish_id"])
        if status == "PUBLISH_COMPLETE":
            return _published(document, saved)
        if status == "SEND_TO_USER_INBOX":
            return Published()
        return None


def _received(status: dict[str, Any]) -> int:
    value = status.get("uploaded_bytes")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _complete(status: dict[str, Any], saved: dict[str, Any]) -> bool:
    return _received(status) >= int(saved["video_size"])


def _published(document: dict[str, Any], saved: dict[str, Any]) -> Published:
    """TikTok names the post (`publicaly_available_post_id`, sic) only once a public post has
    passed moderation; a private post has none."""
    ids = document.get("publicaly_available_post_id")
    post_id = str(ids[0]) if isinstance(ids, list) and ids else None
    if post_id is None:
        return Published()
    user = saved.get("username")
    return Published(post_id, POST_URL.format(user=user, id=post_id) if user else None)


async def _stream(video: MediaFile, start: int, end: int) -> AsyncIterator[bytes]:
    async for piece in video.chunks(256 * 1024, start, end):
        yield piece
