"""The `instagram` platform: feed posts, Reels and carousels on an Instagram professional
account through the Instagram API with Instagram Login (Business Login for Instagram,
`graph.instagram.com`), which needs no Facebook Page (docs/providers/instagram.md).

Instagram fetches media itself: each item becomes a container made from the media's signed
public URL, Instagram downloads and processes it (`status_code` IN_PROGRESS → FINISHED), and
`media_publish` turns the finished container into the post. Every container id is saved in the
job's checkpoints before it is polled, so a retry or a reconciliation resumes from the
container's own status and never publishes twice: a container that says PUBLISHED is the post.

Long-lived tokens live 60 days and are refreshed by themselves (`ig_refresh_token`, no refresh
token), so the account refreshes well ahead of expiry; an expired or revoked token (code 190)
needs connecting again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from pydantic import Field

from shared.models import Content, Strict
from shared.providers.base import (
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
    uploaded,
)
from shared.providers.facebook import THROTTLING, regain_minutes, same_message
from shared.providers.wire import (
    Answer,
    after_seconds,
    answer_error,
    call,
    excerpt,
    oauth_credentials,
    retry_later,
    utc,
)

DEFAULT_API_BASE = "https://graph.instagram.com"
#: The authorization window of Business Login for Instagram.
DEFAULT_AUTH_BASE = "https://www.instagram.com"
#: Where the authorization code is exchanged (`POST /oauth/access_token`).
DEFAULT_TOKEN_BASE = "https://api.instagram.com"
DEFAULT_API_VERSION = "v26.0"
#: Read the account (`/me`) and publish to it.
SCOPES = ("instagram_business_basic", "instagram_business_content_publish")

MAX_CAPTION = 2_200
MAX_CAROUSEL = 10
IMAGE_TYPES = frozenset({"image/jpeg"})
VIDEO_TYPES = frozenset({"video/mp4", "video/quicktime"})
MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_VIDEO_BYTES = 300 * 1024 * 1024
#: Feed images between 4:5 (portrait) and 1.91:1 (landscape), as width / height.
MIN_ASPECT, MAX_ASPECT = 0.8, 1.91
#: Reels from 3 seconds to 15 minutes; a carousel's videos up to 60 seconds.
MIN_REEL_SECONDS, MAX_REEL_SECONDS = 3.0, 900.0
MAX_CAROUSEL_VIDEO_SECONDS = 60.0

#: Graph's subcode for "the account reached its publishing limit" (100 per 24 hours).
PUBLISHING_LIMIT_SUBCODE = 2207042
#: 4/2207051: "we restrict certain activity to protect our community", a spam verdict, not a
#: throttle: retrying would not help.
SPAM_SUBCODE = 2207051
#: -1 and -2 ("Instagram server error", "takes too long to download", "create media fail":
#: try again), 1 and 2 (Graph's unknown error and service unavailable).
TRANSIENT_CODES = frozenset({-2, -1, 1, 2})
#: Instagram names no reset for its moving 24-hour window; an hour is Herald's wait.
DEFAULT_REGAIN_MINUTES = 60
#: Code 190 invalid or expired token, 10 and 200-299 a permission missing.
REVOKED_CODES = frozenset({190, 102, 10, *range(200, 300)})
#: Refresh a long-lived token once fewer than this many days remain (it must be a day old).
REFRESH_WINDOW = timedelta(days=30)
#: Seconds before `since` a lookup still accepts a post, for clock skew.
LOOKUP_SLACK = timedelta(minutes=1)
LOOKUP_PAGE_SIZE = "50"

ContainerStatus = Literal["IN_PROGRESS", "FINISHED", "PUBLISHED", "ERROR", "EXPIRED"]


class ContainerExpired(Permanent):
    """A container outlived Instagram's 24 hours unpublished: nothing came of it."""


class InstagramEndpoints(Strict):
    """Where the Instagram API and its login are; what a connect request needs before the
    account is known."""

    api_base: Annotated[HttpBase, Field(
        description="Instagram Graph API base URL (tests point it at an emulator)",
    )] = DEFAULT_API_BASE
    auth_base: Annotated[HttpBase, Field(
        description="host of the authorization window (`/oauth/authorize`)")] = DEFAULT_AUTH_BASE
    token_base: Annotated[HttpBase, Field(
        description="host of the code exchange (`/oauth/access_token`)")] = DEFAULT_TOKEN_BASE
    api_version: Annotated[str, Field(
        pattern=r"^v[0-9]+\.[0-9]+$", description="Graph API version, e.g. v26.0",
    )] = DEFAULT_API_VERSION


class InstagramConfig(InstagramEndpoints):
    ig_user_id: Annotated[str, Field(
        pattern=r"^[0-9]+$",
        description="the Instagram professional account's id (`user_id` of `/me`); filled in "
                    "when the account is connected through OAuth")]


class InstagramCredentials(Strict):
    access_token: Annotated[str, Field(
        min_length=1, max_length=4096,
        description="a long-lived Instagram User access token (60 days, refreshed by Herald)")]
    expires_at: ExpiresAt = None


def _account(request: PublishRequest) -> tuple[InstagramConfig, str]:
    config = parsed(InstagramConfig, request.config, "instagram", "config")
    token = credential(request.credentials, "access_token", "instagram")
    return config, token


def _endpoints(config: dict[str, Any]) -> InstagramEndpoints:
    return parsed(InstagramEndpoints, {k: v for k, v in config.items() if k != "ig_user_id"},
                  "instagram", "config")


def _graph_url(endpoints: InstagramEndpoints, path: str) -> str:
    return f"{endpoints.api_base.rstrip('/')}/{endpoints.api_version}/{path}"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _error(answer: Answer) -> dict[str, Any]:
    error = answer.object().get("error")
    return error if isinstance(error, dict) else {}


def describe(answer: Answer, secrets: Sequence[str]) -> str:
    """`instagram answered 400: code 9/2207042 OAuthException: <message>` from Graph's error
    fields, else the body's start."""
    error = _error(answer)
    if not isinstance(error.get("message"), str):
        return answer_error("instagram", answer, secrets)
    code = f"code {error.get('code')}"
    if error.get("error_subcode") is not None:
        code += f"/{error.get('error_subcode')}"
    text = f"{code} {error.get('type', 'error')}: {error['message']}"
    return f"instagram answered {answer.status}: {excerpt(text.encode(), secrets)}"


def graph_failure(answer: Answer, secrets: Sequence[str], now: datetime) -> ProviderError:
    """A Graph error in the taxonomy, decided by `code`/`error_subcode` (Graph answers most
    errors with a 400 whatever the cause)."""
    error = _error(answer)
    code, subcode = _int(error.get("code")), _int(error.get("error_subcode"))
    message = describe(answer, secrets)
    if subcode == SPAM_SUBCODE:
        return Permanent(f"{message} (Instagram restricted the action as spam)")
    if subcode == PUBLISHING_LIMIT_SUBCODE:
        return retry_later(f"{message} (the account's 24-hour publishing limit)",
                           after_seconds(DEFAULT_REGAIN_MINUTES * 60, now), "account")
    if code in THROTTLING or code == 80002 or answer.status == 429:
        scope = THROTTLING.get(code or 0, "account")
        minutes = regain_minutes(answer.headers) or DEFAULT_REGAIN_MINUTES
        return retry_later(message, after_seconds(minutes * 60, now), scope)
    if code in REVOKED_CODES:
        return AuthRevoked(f"{message}; connect the Instagram account again")
    if (answer.status >= 500 or code in TRANSIENT_CODES
            or error.get("is_transient") is True):
        return Transient(message)
    return Permanent(message)


def _kind(info: MediaInfo) -> Literal["image", "video", "other", "unknown"]:
    content_type = (info.content_type or "").lower()
    if not content_type:
        return "unknown"
    if content_type.startswith("image/"):
        return "image"
    if content_type.startswith("video/"):
        return "video"
    return "other"


def media_problems(media: Sequence[MediaInfo]) -> Problems:
    """Instagram's limits on one post's media (content publishing guide and IG User Media
    reference): 1 to 10 items, JPEG images of 4:5 to 1.91:1 up to 8 MiB, MP4/MOV videos."""
    if not media:
        return [("content.media", "instagram: a post needs an image or a video")]
    problems: Problems = []
    if len(media) > MAX_CAROUSEL:
        problems.append(("content.media", f"instagram: {len(media)} media, at most "
                                          f"{MAX_CAROUSEL} (a carousel)"))
    carousel = len(media) > 1
    for index, info in enumerate(media):
        where = f"content.media.{index}"
        kind = _kind(info)
        content_type = (info.content_type or "").lower()
        if kind == "image":
            if content_type not in IMAGE_TYPES:
                problems.append((where, f"instagram: {content_type} images are not accepted, "
                                        "only JPEG"))
            if info.size is not None and info.size > MAX_IMAGE_BYTES:
                problems.append((where, f"instagram: image of {info.size} bytes, at most "
                                        f"{MAX_IMAGE_BYTES}"))
            if info.width and info.height:
                ratio = info.width / info.height
                if not MIN_ASPECT <= ratio <= MAX_ASPECT:
                    problems.append((where, f"instagram: aspect ratio {info.width}:"
                                            f"{info.height} is outside 4:5 to 1.91:1"))
        elif kind == "video":
            if content_type not in VIDEO_TYPES:
                problems.append((where, f"instagram: {content_type} videos are not accepted, "
                                        "only MP4 and QuickTime"))
            if info.size is not None and info.size > MAX_VIDEO_BYTES:
                problems.append((where, f"instagram: video of {info.size} bytes, at most "
                                        f"{MAX_VIDEO_BYTES}"))
            longest = MAX_CAROUSEL_VIDEO_SECONDS if carousel else MAX_REEL_SECONDS
            seconds = info.duration_seconds
            if seconds is not None and not MIN_REEL_SECONDS <= seconds <= longest:
                problems.append((where, f"instagram: video of {seconds:g} s, from "
                                        f"{MIN_REEL_SECONDS:g} s to {longest:g} s"))
        elif kind == "other":
            problems.append((where, "instagram: only images and videos can be posted"))
    return problems


class InstagramProvider(Provider):
    platform = "instagram"
    Config = InstagramConfig
    Credentials = InstagramCredentials
    connects_with = "oauth"
    honours_idempotency_key = False
    supports_lookup = True
    supports_media = True
    supports_threads = False
    #: 100 API-published posts per moving 24 hours per account (`content_publishing_limit`).
    default_budget = Budget(count=100, period_seconds=24 * 3600.0)
    #: Seconds between container status polls, and how long one publish waits for processing
    #: before leaving it to a retry (the container is checkpointed, so nothing is redone).
    poll_seconds = 5.0
    processing_timeout_seconds = 300.0

    # --- OAuth ------------------------------------------------------------------------------

    def authorization_url(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                          state: str, code_challenge: str) -> str:
        """Business Login's authorization window; Instagram documents no PKCE for it, so the
        app secret at the exchange is what authenticates Herald."""
        endpoints = _endpoints(config)
        query = urlencode({"client_id": app.client_id, "redirect_uri": redirect_uri,
                           "response_type": "code", "scope": ",".join(SCOPES),
                           "state": state})
        return f"{endpoints.auth_base.rstrip('/')}/oauth/authorize?{query}"

    async def exchange_code(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                            code: str, code_verifier: str) -> Connected:
        """Code → short-lived token (1 hour) → long-lived token (60 days) → the professional
        account's id from `/me`."""
        endpoints = _endpoints(config)
        if not app.client_secret:
            raise Permanent("instagram needs the app secret (HERALD_INSTAGRAM_CLIENT_SECRET)")
        hidden = [app.client_secret, code]
        answer = await call(
            self.session, "POST", f"{endpoints.token_base.rstrip('/')}/oauth/access_token",
            platform="instagram", secrets=hidden,
            data={"client_id": app.client_id, "client_secret": app.client_secret,
                  "grant_type": "authorization_code", "redirect_uri": redirect_uri,
                  "code": code})
        if not answer.ok:
            raise self._login_failure(answer, hidden)
        document = answer.object()
        rows = document.get("data")
        if isinstance(rows, list) and rows and isinstance(rows[0], dict):
            document = rows[0]
        short = document.get("access_token")
        if not isinstance(short, str) or not short:
            raise Permanent("instagram answered the code exchange without an access_token")
        hidden.append(short)
        answer = await call(
            self.session, "GET", f"{endpoints.api_base.rstrip('/')}/access_token",
            platform="instagram", secrets=hidden,
            params={"grant_type": "ig_exchange_token", "client_secret": app.client_secret,
                    "access_token": short})
        if not answer.ok:
            raise self._login_failure(answer, hidden)
        credentials = oauth_credentials("instagram", answer, {})
        hidden.append(credentials["access_token"])
        answer = await call(
            self.session, "GET", _graph_url(endpoints, "me"), platform="instagram",
            secrets=hidden, params={"fields": "user_id,username",
                                    "access_token": credentials["access_token"]})
        if not answer.ok:
            raise self._login_failure(answer, hidden)
        me = answer.object()
        user_id = me.get("user_id") or me.get("id")
        if not isinstance(user_id, str | int) or isinstance(user_id, bool):
            raise Permanent("instagram: /me answered without the account's user_id")
        return Connected(credentials=credentials, config={"ig_user_id": str(user_id)})

    def _login_failure(self, answer: Answer, hidden: Sequence[str]) -> ProviderError:
        """While connecting a refusal is the request's fault (a used code, a wrong secret),
        not a revocation; only an outage or a throttle is worth another try."""
        failure = graph_failure(answer, hidden, datetime.now(UTC))
        if isinstance(failure, Transient | RateLimited):
            return failure
        document = answer.object()
        reason = document.get("error_message") or document.get("error_description")
        if isinstance(reason, str):
            return Permanent(f"instagram refused: {excerpt(reason.encode(), hidden)}")
        return Permanent(str(failure))

    # --- tokens -----------------------------------------------------------------------------

    def needs_refresh(self, credentials: dict[str, Any], now: datetime) -> bool:
        """A long-lived token is refreshed once fewer than REFRESH_WINDOW remain: Instagram
        refreshes only unexpired tokens at least a day old, so waiting for the last minutes
        (the base rule) would risk losing it."""
        expires_at = credentials.get("expires_at")
        if not isinstance(expires_at, str):
            return False
        try:
            when = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
        except ValueError:
            return False
        return when.tzinfo is not None and when - now <= REFRESH_WINDOW

    async def refresh(self, config: dict[str, Any], credentials: dict[str, Any],
                      app: OAuthApp | None) -> dict[str, Any]:
        """`GET /refresh_access_token?grant_type=ig_refresh_token`: a new 60-day token."""
        token = credential(credentials, "access_token", "instagram")
        endpoints = _endpoints(config)
        secrets = secrets_of(credentials, app)
        answer = await call(
            self.session, "GET", f"{endpoints.api_base.rstrip('/')}/refresh_access_token",
            platform="instagram", secrets=secrets,
            params={"grant_type": "ig_refresh_token", "access_token": token})
        if not answer.ok:
            failure = graph_failure(answer, secrets, datetime.now(UTC))
            if isinstance(failure, Transient | RateLimited | AuthRevoked):
                raise failure
            raise AuthRevoked(f"{failure} (the token could not be refreshed; reconnect)")
        return oauth_credentials("instagram", answer, credentials)

    # --- limits -----------------------------------------------------------------------------

    async def text_limit(self, config: dict[str, Any]) -> TextLimit:
        return TextLimit(MAX_CAPTION)

    async def check_content(self, content: Content, config: dict[str, Any],
                            media: PartsInfo = ()) -> Problems:
        problems = await super().check_content(content, config, media)
        known = list(media[0]) if media else []
        if not known and content.media:
            known = [MediaInfo(m.mime_type) for m in content.media]
        return problems + media_problems(known)

    # --- publishing -------------------------------------------------------------------------

    async def publish(self, request: PublishRequest) -> Published:
        """Containers (a carousel's children first, each checkpointed under `media_0`), the
        post's container checkpointed as `ig_container` before it is polled, then
        `media_publish`. A retry resumes from the saved container's status."""
        config, token = _account(request)
        items = list(request.media_of(0))
        if not items:
            raise Permanent("instagram: a post needs an image or a video")
        if len(items) > MAX_CAROUSEL:
            raise Permanent(f"instagram: {len(items)} media, at most {MAX_CAROUSEL}")
        container = request.checkpoints.get("ig_container")
        if isinstance(container, str):
            status, detail = await self._status(config, token, container)
            if status == "PUBLISHED":
                return await self._published_by(request, config, token)
            if status == "ERROR":
                raise Permanent(f"instagram could not process the media: {detail}")
            if status == "EXPIRED":
                # Nothing was published from it; its children expired with it.
                await request.checkpoints.save("media_0", [])
                container = None
        if not isinstance(container, str):
            await self._within_quota(config, token)
            container = await self._new_container(request, config, token, items)
            await request.checkpoints.save("ig_container", container)
        await self._until_finished(config, token, container)
        answer = await self._graph(config, token, "POST", f"{config.ig_user_id}/media_publish",
                                   {"creation_id": container})
        media_id = answer.object().get("id")
        if not isinstance(media_id, str) or not media_id:
            return Published()
        return Published(media_id, await self._permalink(config, token, media_id))

    async def _within_quota(self, config: InstagramConfig, token: str) -> None:
        """`content_publishing_limit` before anything is made: a spent allowance holds the
        account instead of creating containers `media_publish` would refuse."""
        answer = await self._graph(config, token, "GET",
                                   f"{config.ig_user_id}/content_publishing_limit",
                                   {"fields": "quota_usage,config"})
        rows = answer.object().get("data")
        row = rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], dict) else {}
        limits = row.get("config")
        used = _int(row.get("quota_usage"))
        total = _int(limits.get("quota_total")) if isinstance(limits, dict) else None
        if used is not None and total is not None and used >= total:
            raise retry_later(f"instagram: {used} of {total} posts published in the last 24 "
                              "hours (content_publishing_limit)",
                              after_seconds(DEFAULT_REGAIN_MINUTES * 60, datetime.now(UTC)),
                              "account")

    async def _new_container(self, request: PublishRequest, config: InstagramConfig,
                             token: str, items: list[MediaFile]) -> str:
        caption = request.content.text
        if len(items) == 1:
            return await self._create(config, token, {**self._item_fields(items[0], False),
                                                      "caption": caption})
        try:
            children = await self._children(request, config, token, items)
        except ContainerExpired:
            # A saved child outlived Instagram's 24 hours: the carousel starts over.
            await request.checkpoints.save("media_0", [])
            children = await self._children(request, config, token, items)
        return await self._create(config, token, {"media_type": "CAROUSEL",
                                                  "children": ",".join(children),
                                                  "caption": caption})

    async def _children(self, request: PublishRequest, config: InstagramConfig, token: str,
                        items: list[MediaFile]) -> list[str]:
        """A carousel's item containers, each saved under `media_0` once made, each FINISHED."""
        children: list[str] = []
        for index, item in enumerate(items):
            async def child(item: MediaFile = item) -> str:
                return await self._create(config, token, self._item_fields(item, True))
            child_id = await uploaded(request, 0, index, child)
            await self._until_finished(config, token, child_id)
            children.append(child_id)
        return children

    @staticmethod
    def _item_fields(item: MediaFile, carousel: bool) -> dict[str, str]:
        kind = _kind(item.info)
        if kind == "image":
            fields = {"image_url": item.public_url()}
            if item.alt:
                fields["alt_text"] = item.alt
        elif kind == "video":
            fields = {"media_type": "VIDEO" if carousel else "REELS",
                      "video_url": item.public_url()}
        else:
            raise Permanent(f"instagram: {item.info.content_type} cannot be posted")
        if carousel:
            fields["is_carousel_item"] = "true"
        return fields

    async def _create(self, config: InstagramConfig, token: str, fields: dict[str, str]) -> str:
        answer = await self._graph(config, token, "POST", f"{config.ig_user_id}/media", fields)
        container = answer.object().get("id")
        if not isinstance(container, str) or not container:
            raise Transient("instagram answered the container request without an id")
        return container

    async def _status(self, config: InstagramConfig, token: str,
                      container: str) -> tuple[ContainerStatus, str]:
        answer = await self._graph(config, token, "GET", container,
                                   {"fields": "status_code,status"})
        document = answer.object()
        status = document.get("status_code")
        if status not in ("IN_PROGRESS", "FINISHED", "PUBLISHED", "ERROR", "EXPIRED"):
            raise Transient(f"instagram: container {container} has no known status_code")
        detail = document.get("status")
        return status, detail if isinstance(detail, str) else ""

    async def _until_finished(self, config: InstagramConfig, token: str,
                              container: str) -> None:
        """Poll until FINISHED; ERROR is Permanent, EXPIRED ContainerExpired, a slow one
        Transient (a retry polls the checkpointed container again)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.processing_timeout_seconds
        while True:
            status, detail = await self._status(config, token, container)
            if status in ("FINISHED", "PUBLISHED"):
                return
            if status == "EXPIRED":
                raise ContainerExpired(f"instagram: container {container} expired")
            if status == "ERROR":
                raise Permanent(f"instagram: container {container} is {status}: {detail}")
            if loop.time() >= deadline:
                raise Transient(f"instagram: container {container} still processing after "
                                f"{self.processing_timeout_seconds:g}s")
            await asyncio.sleep(self.poll_seconds)

    async def _permalink(self, config: InstagramConfig, token: str, media_id: str) -> str | None:
        """The post's permalink; the post exists either way, so a failure here costs the URL
        only."""
        try:
            answer = await self._graph(config, token, "GET", media_id, {"fields": "permalink"})
        except ProviderError:
            return None
        link = answer.object().get("permalink")
        return link if isinstance(link, str) else None

    async def _graph(self, config: InstagramConfig, token: str, method: str, path: str,
                     fields: dict[str, str]) -> Answer:
        """One Graph call with the token as a parameter, errors in the taxonomy."""
        params = {**fields, "access_token": token}
        url = _graph_url(config, path)
        if method == "GET":
            answer = await call(self.session, method, url, platform="instagram",
                                secrets=[token], params=params)
        else:
            answer = await call(self.session, method, url, platform="instagram",
                                secrets=[token], data=params)
        if not answer.ok:
            raise graph_failure(answer, [token], datetime.now(UTC))
        return answer

    async def _published_by(self, request: PublishRequest, config: InstagramConfig,
                            token: str) -> Published:
        """The post a PUBLISHED container became: the account's newest media with this
        caption since the job's time. Published either way, the container says so."""
        since = utc(request.scheduled_for) - LOOKUP_SLACK
        answer = await self._graph(config, token, "GET", f"{config.ig_user_id}/media",
                                   {"fields": "id,caption,timestamp,permalink",
                                    "limit": LOOKUP_PAGE_SIZE})
        rows = answer.object().get("data")
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                continue
            when = _timestamp(row.get("timestamp"))
            if (same_message(row.get("caption") or "", request.content.text)
                    and (when is None or when >= since)):
                link = row.get("permalink")
                return Published(row["id"], link if isinstance(link, str) else None)
        return Published()

    async def lookup(self, request: PublishRequest, since: datetime) -> Published | None:
        """By the saved container: PUBLISHED is the post; any other status (or no container,
        so nothing could have been published) is None, and the retry resumes from it."""
        container = request.checkpoints.get("ig_container")
        if not isinstance(container, str):
            return None
        config, token = _account(request)
        status, _detail = await self._status(config, token, container)
        if status != "PUBLISHED":
            return None
        return await self._published_by(request, config, token)


def _timestamp(value: Any) -> datetime | None:
    """Graph's `2026-12-02T20:00:00+0000`."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None
