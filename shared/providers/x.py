"""The `x` platform: posts through X API v2 with an OAuth 2.0 user token (authorization code
with PKCE, docs/providers/x.md).

Access tokens live two hours and refresh tokens rotate: each refresh answers a new refresh
token and the old one is refused afterwards, so `refresh` hands back the whole new credentials
for the caller to store before anything else uses them. X takes no idempotency key, but it
refuses a repeat of recent text as duplicate content; when a retry meets that refusal the
earlier attempt landed, and the provider finds that post in the user's timeline (`lookup`),
as reconciliation does.

Media goes through X API v2's chunked upload (`POST /2/media/upload/initialize`, `/{id}/append`
in segments of 4 MiB streamed from the store, `/{id}/finalize`, then `GET /2/media/upload?
command=STATUS` while `processing_info` says it is not done), its id saved in the job's
checkpoints before anything else; alt text is `POST /2/media/metadata`. A thread is a chain of
posts, each `reply.in_reply_to_tweet_id` the one before, each saved in the `parts` checkpoint
before the next is sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import math
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
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
    Part,
    PartsInfo,
    Permanent,
    Problems,
    Provider,
    ProviderError,
    Published,
    PublishRequest,
    RateLimited,
    Spent,
    TextLimit,
    Transient,
    credential,
    look_up_parts,
    parsed,
    part_text,
    publish_parts,
    secrets_of,
    uploaded,
)
from shared.providers.text import urls, x_weighted_length
from shared.providers.wire import (
    Answer,
    Streamed,
    answer_error,
    at_epoch,
    bearer,
    call,
    oauth_credentials,
    parse_retry_after,
    retry_later,
    rfc3339_utc,
    utc,
)

DEFAULT_API_BASE = "https://api.x.com"
#: The authorization page is `https://x.com/i/oauth2/authorize`; the token endpoint is on the API.
DEFAULT_AUTH_BASE = "https://x.com"
#: `offline.access` is what makes X issue a refresh token at all; `media.write` lets the token
#: upload media (an account connected without it posts text only).
SCOPES = "tweet.read tweet.write users.read offline.access media.write"
MAX_WEIGHTED_LENGTH = 280
POST_URL = "https://x.com/i/web/status/{id}"
#: A retry's duplicate is searched for from a little before the job's time, for clock skew.
LOOKUP_SLACK = timedelta(minutes=5)
#: A lookup reads from this long before the `since` it is given: Herald's clock and
#: X's need not agree to the second.
CLOCK_SKEW = timedelta(minutes=1)
#: Timeline pages of 100 read by one lookup; a user posting more than this in the window is
#: not searched further back (the answer is then "not found").
LOOKUP_PAGES = 5
_URL_MARK = "\x00url\x00"
#: A post takes up to 4 images, or one animated GIF or video alone (X's media best practices).
MAX_IMAGES = 4
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
VIDEO_TYPES = frozenset({"video/mp4", "video/quicktime"})
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_GIF_BYTES = 15 * 1024 * 1024
#: Default accounts' caps for a post's video; X Premium accounts may post more, which Herald
#: cannot know at scheduling, so the smaller caps hold.
MAX_VIDEO_BYTES = 8 * 1024 ** 3
MIN_VIDEO_SECONDS = 0.5
MAX_VIDEO_SECONDS = 20 * 60.0
#: APPEND segments: at most 5 MB each, indexes 0 to 999.
SEGMENT_BYTES = 4 * 1024 * 1024
MAX_SEGMENTS = 1000
MAX_ALT_TEXT = 1000
UPLOAD_TIMEOUT_SECONDS = 300.0
#: Processing polls follow X's `check_after_secs`, bounded, within a budget after which the
#: job retries later (the media id is saved; the retry polls it again).
MAX_CHECK_AFTER_SECONDS = 30.0
PROCESSING_BUDGET_SECONDS = 600.0


class XConfig(Strict):
    api_base: Annotated[HttpBase, Field(
        max_length=300,
        description="X API base URL (posts and the OAuth token endpoint)")] = DEFAULT_API_BASE
    auth_base: Annotated[HttpBase, Field(
        max_length=300,
        description="Where X's authorization page is served (`/i/oauth2/authorize`)",
    )] = DEFAULT_AUTH_BASE


class XCredentials(Strict):
    access_token: Annotated[str, Field(
        min_length=1, max_length=4096,
        description="OAuth 2.0 user access token (lives 2 hours)")]
    refresh_token: Annotated[str | None, Field(
        min_length=1, max_length=4096,
        description="OAuth 2.0 refresh token (offline.access); X rotates it on every "
                    "refresh")] = None
    expires_at: ExpiresAt = None


def _remaining_is_zero(value: str | None) -> bool:
    return (value or "").strip() == "0"


def spent_allowance(answer: Answer, now: datetime) -> Spent | None:
    """X's 24-hour allowances, read from any answer (epoch seconds): the user's spent holds
    the account, the app's spent holds the whole installation."""
    headers = answer.headers
    for prefix, scope in (("x-user-limit-24hour", "account"), ("x-app-limit-24hour", "app")):
        if _remaining_is_zero(headers.get(f"{prefix}-remaining")):
            at = at_epoch(headers.get(f"{prefix}-reset"), now)
            if at is not None:
                return Spent(at, "account" if scope == "account" else "app")
    return None


def rate_limited(answer: Answer, now: datetime) -> RateLimited:
    """X's 429 in its own units (epoch seconds): a spent 24-hour user allowance holds the
    account, a spent app allowance the whole installation, anything else this request."""
    spent = spent_allowance(answer, now)
    if spent is not None:
        who = "user's" if spent.scope == "account" else "app's"
        return RateLimited(f"x: the {who} 24-hour post limit is spent until "
                           f"{rfc3339_utc(spent.until)}", spent.until, scope=spent.scope)
    at = at_epoch(answer.headers.get("x-rate-limit-reset"), now)
    if at is None:
        at = parse_retry_after(answer.headers.get("Retry-After"), now)
    return retry_later("x answered 429", at)


def api_error(answer: Answer, secrets: list[str]) -> ProviderError:
    """The taxonomy for an X API answer that is not a success."""
    message = answer_error("x", answer, secrets)
    if answer.status == 429:
        return rate_limited(answer, datetime.now(UTC))
    if answer.status == 401:
        return AuthExpired(message)
    if answer.status >= 500:
        return Transient(message)
    return Permanent(message)


def is_duplicate(answer: Answer) -> bool:
    """X's 403 for a text the user posted recently (`detail` of the problem document)."""
    if answer.status != 403:
        return False
    document = answer.object()
    texts = [document.get("detail"), document.get("title")] + [
        e.get("message") for e in document.get("errors") or [] if isinstance(e, dict)]
    return any(isinstance(t, str) and "duplicate content" in t.lower() for t in texts)


def comparable(text: str) -> str:
    """Text as X gives it back and as we sent it, made comparable: X shortens every URL to a
    t.co link and HTML-escapes `&`, `<` and `>` in `text`, and trims surrounding space."""
    plain = unicodedata.normalize("NFC", text).strip()
    parts: list[str] = []
    last = 0
    for start, end, _url in urls(plain):
        parts += [plain[last:start], _URL_MARK]
        last = end
    parts.append(plain[last:])
    return "".join(parts)


def category(content_type: str) -> str:
    """X's `media_category` for a post's file."""
    if content_type == "image/gif":
        return "tweet_gif"
    return "tweet_video" if content_type in VIDEO_TYPES else "tweet_image"


def media_problems(where: str, media: list[MediaInfo]) -> Problems:
    """One post's media against X's rules: up to 4 images, or one GIF or video alone; each of
    a type X takes, within its size, a video within its duration and aspect ratio."""
    problems: Problems = []
    kinds = [category(info.content_type or "") for info in media]
    if len(media) > 1 and any(kind != "tweet_image" for kind in kinds):
        problems.append((where, "x: an animated GIF or a video must be a post's only media"))
    elif len(media) > MAX_IMAGES:
        problems.append((where, f"x: {len(media)} images, at most {MAX_IMAGES}"))
    for n, info in enumerate(media):
        at, kind = f"{where}.{n}", kinds[n]
        if info.content_type is None:
            continue
        if info.content_type not in IMAGE_TYPES | VIDEO_TYPES:
            problems.append((at, f"x: {info.content_type} cannot be posted (JPEG, PNG, WEBP, "
                                 f"GIF, MP4 or MOV)"))
            continue
        cap = {"tweet_image": MAX_IMAGE_BYTES, "tweet_gif": MAX_GIF_BYTES}.get(
            kind, min(MAX_VIDEO_BYTES, SEGMENT_BYTES * MAX_SEGMENTS))
        if info.size is not None and info.size > cap:
            problems.append((at, f"x: {info.size} bytes, at most {cap}"))
        if kind != "tweet_video":
            continue
        seconds = info.duration_seconds
        if seconds is not None and seconds > MAX_VIDEO_SECONDS:
            problems.append((at, f"x: video longer than {MAX_VIDEO_SECONDS:g} s "
                                 f"({seconds:g} s)"))
        if seconds is not None and seconds < MIN_VIDEO_SECONDS:
            problems.append((at, f"x: video shorter than {MIN_VIDEO_SECONDS:g} s"))
        if info.width and info.height and not 1 / 3 <= info.width / info.height <= 3:
            problems.append((at, f"x: video aspect ratio {info.width}:{info.height}, "
                                 f"between 1:3 and 3:1 wanted"))
    return problems


def _published(document: dict[str, Any]) -> Published:
    data = document.get("data")
    post_id = data.get("id") if isinstance(data, dict) else None
    if not isinstance(post_id, str) or not post_id:
        return Published()
    return Published(post_id, POST_URL.format(id=post_id))


class XProvider(Provider):
    platform = "x"
    connects_with = "oauth"
    honours_idempotency_key = False
    supports_lookup = True
    supports_threads = True
    supports_media = True
    #: POST /2/tweets: 100 requests per 15 minutes per user (X's rate-limit table).
    default_budget = Budget(100, 15 * 60)

    def __init__(self, session: aiohttp.ClientSession) -> None:
        super().__init__(session)
        #: Scales every processing wait; tests shrink it so polling is quick, not skipped.
        self.poll_scale = 1.0

    Config = XConfig
    Credentials = XCredentials

    # --- limits -----------------------------------------------------------------------------

    async def text_limit(self, config: dict[str, Any]) -> TextLimit:
        return TextLimit(MAX_WEIGHTED_LENGTH, "weighted characters")

    def measure(self, text: str) -> int:
        return x_weighted_length(text)

    async def check_content(self, content: Content, config: dict[str, Any],
                            media: PartsInfo = ()) -> Problems:
        problems = await super().check_content(content, config, media)
        parts = [(content.media, "content.media")] + [
            (part.media, f"content.thread.{n}.media") for n, part in enumerate(content.thread)]
        for n, (listed, where) in enumerate(parts):
            if n < len(media):
                problems += media_problems(where, list(media[n]))
            problems += [(f"{where}.{i}.alt", f"x: {len(m.alt)} characters of alt text, at "
                                              f"most {MAX_ALT_TEXT}")
                         for i, m in enumerate(listed) if len(m.alt) > MAX_ALT_TEXT]
        return problems

    # --- OAuth ------------------------------------------------------------------------------

    def authorization_url(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                          state: str, code_challenge: str) -> str:
        params = {
            "response_type": "code", "client_id": app.client_id, "redirect_uri": redirect_uri,
            "scope": SCOPES, "state": state, "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        base = parsed(XConfig, config, "x", "config").auth_base.rstrip("/")
        return f"{base}/i/oauth2/authorize?{urlencode(params, quote_via=quote)}"

    async def exchange_code(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                            code: str, code_verifier: str) -> Connected:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": code_verifier, "client_id": app.client_id}
        answer = await self._token_call(parsed(XConfig, config, "x", "config"), app, form,
                                        [code, code_verifier])
        if not answer.ok:
            if answer.status == 429 or answer.status >= 500:
                raise api_error(answer, secrets_of({}, app))
            raise Permanent(answer_error("x", answer, [*secrets_of({}, app), code]))
        return Connected(credentials=oauth_credentials("x", answer, {}))

    async def refresh(self, config: dict[str, Any], credentials: dict[str, Any],
                      app: OAuthApp | None) -> dict[str, Any]:
        """One refresh call. The refresh token is spent by it even when the answer is lost:
        a Transient here can be followed by AuthRevoked on the next try, which is X's rule."""
        refresh_token = credential(credentials, "refresh_token", "x",
                                   "x: no refresh token (the account was connected without "
                                   "offline.access); reconnect it")
        if app is None:
            raise Permanent("x: no OAuth client is configured (HERALD_X_CLIENT_ID) to refresh "
                            "with")
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
                "client_id": app.client_id}
        secrets = secrets_of(credentials, app)
        answer = await self._token_call(parsed(XConfig, config, "x", "config"), app, form, secrets)
        if answer.ok:
            return oauth_credentials("x", answer, credentials)
        message = answer_error("x", answer, secrets)
        if answer.status == 429 or answer.status >= 500:
            raise api_error(answer, secrets)
        if answer.status == 400:
            raise AuthRevoked(f"{message} (the refresh token was refused; reconnect)")
        raise Permanent(message)

    async def _token_call(self, config: XConfig, app: OAuthApp, form: dict[str, str],
                          secrets: list[str]) -> Answer:
        """`POST /2/oauth2/token`; a confidential client authenticates with HTTP Basic."""
        headers = ({"Authorization": aiohttp.encode_basic_auth(app.client_id, app.client_secret)}
                   if app.client_secret else None)
        return await call(
            self.session, "POST", f"{config.api_base.rstrip('/')}/2/oauth2/token",
            platform="x", secrets=[*secrets, *secrets_of({}, app)], data=form, headers=headers)

    # --- publishing -------------------------------------------------------------------------

    async def publish(self, request: PublishRequest) -> Published:
        """The post and its thread (`publish_parts`), each part's media uploaded once
        (`uploaded`), processed and described before its post is made. The result carries the
        24-hour allowance the last post's answer reported spent."""
        config = parsed(XConfig, request.config, "x", "config")
        token = credential(request.credentials, "access_token", "x")
        secrets = secrets_of(request.credentials)
        base = config.api_base.rstrip("/")
        spent: list[Spent] = []

        async def publish_part(n: int, earlier: list[Part]) -> Part:
            files = request.media_of(n)
            media_ids = [await uploaded(request, n, index,
                                        self._uploader(base, token, secrets, file))
                         for index, file in enumerate(files)]
            for file, media_id in zip(files, media_ids, strict=True):
                if category(file.info.content_type or "") != "tweet_image":
                    await self._processed(base, token, secrets, media_id)
                if file.alt:
                    await self._describe(base, token, secrets, media_id, file.alt)
            body: dict[str, Any] = {}
            text = part_text(request.content, n)
            if text or not media_ids:
                body["text"] = text
            if media_ids:
                body["media"] = {"media_ids": media_ids}
            if earlier:
                body["reply"] = {"in_reply_to_tweet_id": str(earlier[-1]["platform_post_id"])}
            published = await self._create(request, body, text)
            if published.spent is not None:
                spent.append(published.spent)
            return {"platform_post_id": published.platform_post_id, "url": published.url}

        published = await publish_parts(request, publish_part)
        return dataclasses.replace(published, spent=spent[-1]) if spent else published

    def _uploader(self, base: str, token: str, secrets: list[str],
                  file: MediaFile) -> Callable[[], Awaitable[str]]:
        async def upload() -> str:
            """initialize, append each 4 MiB segment streamed from the store, finalize."""
            size, content_type = file.info.size, file.info.content_type
            if size is None or content_type is None:
                raise Permanent(f"x: media {file.id} has no known size and type")
            if math.ceil(size / SEGMENT_BYTES) > MAX_SEGMENTS:
                raise Permanent(f"x: media {file.id} needs more than {MAX_SEGMENTS} segments")
            answer = await self._media_call(
                "POST", f"{base}/2/media/upload/initialize", token, secrets,
                json={"media_type": content_type, "total_bytes": size,
                      "media_category": category(content_type)})
            data = answer.object().get("data")
            media_id = data.get("id") if isinstance(data, dict) else None
            if not isinstance(media_id, str) or not media_id:
                raise Transient("x: initialize answered without a media id")
            for segment, start in enumerate(range(0, size, SEGMENT_BYTES)):
                end = min(start + SEGMENT_BYTES, size)
                form = aiohttp.MultipartWriter("form-data")
                form.append(str(segment)).set_content_disposition(
                    "form-data", name="segment_index")
                part = form.append_payload(Streamed(
                    file.chunks(256 * 1024, start, end), end - start,
                    "application/octet-stream"))
                part.set_content_disposition("form-data", name="media", filename="blob")
                await self._media_call("POST", f"{base}/2/media/upload/{media_id}/append",
                                       token, secrets, data=form)
            await self._media_call("POST", f"{base}/2/media/upload/{media_id}/finalize",
                                   token, secrets)
            return media_id
        return upload

    async def _media_call(self, method: str, url: str, token: str, secrets: list[str],
                          **kwargs: Any) -> Answer:
        answer = await call(self.session, method, url, platform="x", secrets=secrets,
                            headers=bearer(token), timeout_seconds=UPLOAD_TIMEOUT_SECONDS,
                            **kwargs)
        if not answer.ok:
            raise api_error(answer, secrets)
        return answer

    async def _processed(self, base: str, token: str, secrets: list[str],
                         media_id: str) -> None:
        """Poll STATUS until `processing_info` is gone or `succeeded`, waiting as it says
        (`check_after_secs`); `failed` is Permanent (X will not take the file), a wait past the
        budget Transient (the retry polls the saved id again)."""
        waited = 0.0
        while True:
            answer = await self._media_call(
                "GET", f"{base}/2/media/upload", token, secrets,
                params={"command": "STATUS", "media_id": media_id})
            data = answer.object().get("data")
            info = data.get("processing_info") if isinstance(data, dict) else None
            state = info.get("state") if isinstance(info, dict) else None
            if info is None or state == "succeeded":
                return
            if state == "failed":
                error = info.get("error") if isinstance(info, dict) else None
                raise Permanent(f"x: media {media_id} failed processing: {error}")
            after = info.get("check_after_secs") if isinstance(info, dict) else None
            wait = float(after) if isinstance(after, int | float) and after > 0 else 1.0
            wait = min(wait, MAX_CHECK_AFTER_SECONDS) * self.poll_scale
            if waited + wait > PROCESSING_BUDGET_SECONDS * self.poll_scale:
                raise Transient(f"x: media {media_id} still processing after {waited:.0f}s")
            await asyncio.sleep(wait)
            waited += wait

    async def _describe(self, base: str, token: str, secrets: list[str], media_id: str,
                        alt: str) -> None:
        """The file's alt text (`POST /2/media/metadata`); setting it again is harmless."""
        await self._media_call("POST", f"{base}/2/media/metadata", token, secrets,
                               json={"id": media_id,
                                     "metadata": {"alt_text": {"text": alt[:MAX_ALT_TEXT]}}})

    async def _create(self, request: PublishRequest, body: dict[str, Any],
                      text: str) -> Published:
        config = parsed(XConfig, request.config, "x", "config")
        token = credential(request.credentials, "access_token", "x")
        secrets = secrets_of(request.credentials)
        answer = await call(
            self.session, "POST", f"{config.api_base.rstrip('/')}/2/tweets", platform="x",
            secrets=secrets, json=body, headers=bearer(token))
        if answer.ok:
            published = _published(answer.object())
            if published.platform_post_id is None:
                raise Transient("x: the post answer carries no id")
            spent = spent_allowance(answer, datetime.now(UTC))
            return dataclasses.replace(published, spent=spent) if spent else published
        if is_duplicate(answer):
            found = await self._find(request, text, utc(request.scheduled_for) - LOOKUP_SLACK)
            if found is not None:
                return found
            raise Permanent("x refused the text as a duplicate of a recent post that is not "
                            "this job's (none was found since the job's time)")
        raise api_error(answer, secrets)

    async def lookup(self, request: PublishRequest, since: datetime) -> Published | None:
        """The job's post, found when its last part is: a thread counts as made only when its
        last reply is there (a retry posts what is missing; X's duplicate refusal and `_find`
        keep it from posting a part twice). The `parts` checkpoint answers for what it holds."""
        return await look_up_parts(request, lambda text: self._find(request, text, since))

    async def _find(self, request: PublishRequest, text: str,
                    since: datetime) -> Published | None:
        """The oldest post of the user since `since` (less CLOCK_SKEW) with this text: the
        user's id from `/2/users/me`, then the timeline from then on, newest first."""
        config = parsed(XConfig, request.config, "x", "config")
        token = credential(request.credentials, "access_token", "x")
        secrets = secrets_of(request.credentials)
        base = config.api_base.rstrip("/")
        headers = bearer(token)
        answer = await call(self.session, "GET", f"{base}/2/users/me", platform="x",
                            secrets=secrets, headers=headers)
        if not answer.ok:
            raise api_error(answer, secrets)
        data = answer.object().get("data")
        user_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(user_id, str) or not user_id:
            raise Transient("x: /2/users/me answered without the user's id")
        wanted = comparable(text)
        start = utc(since) - CLOCK_SKEW
        params = {"start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "max_results": "100",
                  "tweet.fields": "created_at"}
        found: Published | None = None
        for _page in range(LOOKUP_PAGES):
            answer = await call(self.session, "GET", f"{base}/2/users/{quote(user_id)}/tweets",
                                platform="x", secrets=secrets, headers=headers, params=params)
            if not answer.ok:
                raise api_error(answer, secrets)
            document = answer.object()
            for post in document.get("data") or []:
                given = post.get("text") if isinstance(post, dict) else None
                if isinstance(given, str) and comparable(html.unescape(given)) == wanted:
                    found = _published({"data": post})
            meta = document.get("meta")
            next_token = meta.get("next_token") if isinstance(meta, dict) else None
            if not isinstance(next_token, str) or not next_token:
                break
            params = {**params, "pagination_token": next_token}
        return found
