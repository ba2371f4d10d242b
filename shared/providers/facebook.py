"""The `facebook` platform: posts on a Facebook Page through the Graph API.

An account holds a Page access token. Connecting through Facebook Login trades the code for a
user token, that for a long-lived user token, and `me/accounts` then hands out the Page's own
token, which (coming from a long-lived user token) does not expire. So there is nothing to
refresh: Graph's code 190 means the token was invalidated (a password change, the person no
longer an admin of the Page, the app removed) and the account needs connecting again.

Graph has no idempotency key. A post is found again by its exact message among the Page's
published posts since the attempt began (`lookup`), which reconciliation uses after an unknown
outcome.

Media: one photo is one `POST /{page}/photos` (the file streamed as `source`, the text as its
caption), which makes the post. More photos are each uploaded unpublished
(`published=false`), their ids saved (`uploaded`), then named in the feed post's
`attached_media`. A video goes through the resumable upload of `/{page}/videos` on Graph's
video host: `upload_phase=start` (the session and the first range), `transfer` of each range
the server names, `finish` with the text as description, which makes the post; the session
and the next range are saved (`video_0`) before each transfer, so a retry goes on from there.
A Page has no thread to chain, so a thread is refused at scheduling.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import aiohttp
from multidict import CIMultiDictProxy
from pydantic import Field

from shared.models import Content, Strict
from shared.providers.base import (
    AuthRevoked,
    Budget,
    Connected,
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
    parsed,
    uploaded,
)
from shared.providers.text import utf16_units
from shared.providers.wire import (
    DEFAULT_TIMEOUT_SECONDS,
    Answer,
    Streamed,
    after_seconds,
    answer_error,
    call,
    excerpt,
    retry_later,
    rfc3339_utc,
    utc,
)

DEFAULT_API_BASE = "https://graph.facebook.com"
DEFAULT_AUTH_BASE = "https://www.facebook.com"
#: Video uploads go to Graph's video host.
DEFAULT_VIDEO_API_BASE = "https://graph-video.facebook.com"
#: The newest Graph API version when this was written (the changelog lists v26.0 first).
DEFAULT_API_VERSION = "v26.0"
#: Publish to the Page (pages_manage_posts), read its posts back for lookup
#: (pages_read_engagement) and list the Pages the person manages (pages_show_list).
SCOPES = ("pages_manage_posts", "pages_read_engagement", "pages_show_list")
#: The longest message, as widely reported; Meta documents neither the number nor its unit,
#: so it is counted in UTF-16 code units, the stricter reading.
MAX_MESSAGE = 63_206
POST_URL = "https://www.facebook.com/"

#: Graph's throttling codes and what each limit covers: 4 the app's, 17 the user's, 32 and
#: 80001 the Page's (the account here), 613 one endpoint's, 341 the app's.
THROTTLING: dict[int, Literal["request", "account", "app"]] = {
    4: "app", 17: "account", 32: "account", 80001: "account", 613: "request", 341: "app",
}
#: Headers whose `estimated_time_to_regain_access` (minutes) says when a throttle lifts.
USAGE_HEADERS = ("X-Business-Use-Case-Usage", "X-Page-Usage", "X-App-Usage")
#: When no header names the time: Graph's platform limits roll over one hour, so an hour
#: always suffices for those; Meta documents no fixed wait.
DEFAULT_REGAIN_MINUTES = 60
#: 1 unknown error and 2 service unavailable: "wait and retry".
TRANSIENT_CODES = frozenset({1, 2})
#: 190 invalid or expired token, 102 session invalid: only a new login helps.
REVOKED_CODES = frozenset({102, 190})
#: 10 and 200-299: a permission was not granted or was removed; a new login grants it.
PERMISSION_CODES = frozenset({10, *range(200, 300)})

#: Page photos: JPEG, BMP, PNG, GIF or TIFF of at most 4 MB. Page videos: at most 10 GB and
#: 240 minutes, one per post and never beside photos.
PHOTO_TYPES = frozenset({"image/jpeg", "image/bmp", "image/png", "image/gif", "image/tiff"})
MAX_PHOTO_BYTES = 4 * 1024 * 1024
MAX_VIDEO_BYTES = 10 * 1024**3
MAX_VIDEO_SECONDS = 240 * 60.0
#: Bytes per read from the media store while a file streams to Graph.
UPLOAD_CHUNK = 256 * 1024
UPLOAD_TIMEOUT_SECONDS = 600.0
#: Pages of `published_posts` read per lookup before giving up (then Transient, never
#: "absent", so reconciliation does not re-post on a guess).
LOOKUP_PAGES = 5
#: Seconds before `since` a lookup still accepts, for clock skew between a node and Facebook.
LOOKUP_SLACK_SECONDS = 60
#: Pages of `me/accounts` read when connecting.
ACCOUNT_PAGES = 10
PAGE_SIZE = "100"


class GraphEndpoints(Strict):
    """Where Graph and the Login dialog are; all a connect request needs before the Page is
    known."""

    api_base: Annotated[HttpBase, Field(
        description="Graph API base URL (tests point it at an emulator)")] = DEFAULT_API_BASE
    auth_base: Annotated[HttpBase, Field(
        description="host of the Facebook Login dialog")] = DEFAULT_AUTH_BASE
    api_version: Annotated[str, Field(
        pattern=r"^v[0-9]+\.[0-9]+$",
        description="Graph API version, e.g. v26.0")] = DEFAULT_API_VERSION
    video_api_base: Annotated[HttpBase, Field(
        description="Graph's video upload host (tests point it at an emulator)",
    )] = DEFAULT_VIDEO_API_BASE


class FacebookConfig(GraphEndpoints):
    page_id: Annotated[str, Field(
        pattern=r"^[0-9]+$",
        description="the numeric id of the Page posted to; when connecting through OAuth it "
                    "may be left out if the person manages exactly one Page")]


class FacebookCredentials(Strict):
    page_access_token: Annotated[str, Field(
        min_length=1, description="a Page access token with pages_manage_posts and "
                                  "pages_read_engagement (one without expiry when obtained "
                                  "from a long-lived user token)")]


def _account(request: PublishRequest) -> tuple[FacebookConfig, str]:
    config = parsed(FacebookConfig, request.config, "facebook", "config")
    credentials = parsed(FacebookCredentials, request.credentials, "facebook", "credentials")
    return config, credentials.page_access_token


def _endpoints(config: dict[str, Any]) -> GraphEndpoints:
    """Graph's endpoints before the Page is known (connecting may leave `page_id` out)."""
    return parsed(GraphEndpoints, {k: v for k, v in config.items() if k != "page_id"},
                  "facebook", "config")


def _graph_url(endpoints: GraphEndpoints, path: str) -> str:
    return f"{endpoints.api_base.rstrip('/')}/{endpoints.api_version}/{path}"


def _kind(info: MediaInfo) -> str | None:
    if info.content_type in PHOTO_TYPES:
        return "photo"
    return "video" if (info.content_type or "").startswith("video/") else None


def media_problems(media: Sequence[MediaInfo]) -> Problems:
    """A Page post's media: photos, or one video alone, each within Graph's limits."""
    problems: Problems = []
    kinds = [_kind(info) for info in media]
    if "video" in kinds and len(media) > 1:
        problems.append(("content.media", "facebook: a video must be a post's only file"))
    for n, (info, kind) in enumerate(zip(media, kinds, strict=True)):
        at = f"content.media.{n}"
        if kind is None:
            problems.append((at, f"facebook: {info.content_type or 'an unknown type'} is not "
                                 f"a photo (JPEG, PNG, GIF, BMP, TIFF) or a video"))
            continue
        cap = MAX_PHOTO_BYTES if kind == "photo" else MAX_VIDEO_BYTES
        if info.size is not None and info.size > cap:
            problems.append((at, f"facebook: {info.size} bytes, at most {cap} for a {kind}"))
        if kind == "video" and (info.duration_seconds or 0) > MAX_VIDEO_SECONDS:
            problems.append((at, f"facebook: {info.duration_seconds:g} s, at most "
                                 f"{MAX_VIDEO_SECONDS:g} s"))
    return problems


def _file_form(file: MediaFile, name: str, fields: dict[str, str],
               start: int = 0, end: int | None = None) -> aiohttp.MultipartWriter:
    """`fields` and the file's bytes [start, end) streamed as the part `name`."""
    size = file.info.size
    if size is None:
        raise Permanent(f"facebook: media {file.id} has no known size to upload")
    stop = size if end is None else end
    form = aiohttp.MultipartWriter("form-data")
    for key, value in fields.items():
        form.append(value).set_content_disposition("form-data", name=key)
    content_type = file.info.content_type or "application/octet-stream"
    extension = re.sub(r"[^A-Za-z0-9]", "", content_type.split("/")[-1]) or "bin"
    payload = form.append_payload(Streamed(file.chunks(UPLOAD_CHUNK, start, stop), stop - start,
                                           content_type))
    payload.set_content_disposition("form-data", name=name, filename=f"{file.id}.{extension}")
    return form


def _offset(value: Any) -> int | None:
    """Graph gives offsets as decimal strings."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _regain_values(document: Any) -> Iterator[float]:
    """`estimated_time_to_regain_access` of a flat usage object (X-App-Usage, X-Page-Usage)
    or of each entry of a business-use-case object (`{"<id>": [{"type": ...}, ...]}`)."""
    if not isinstance(document, dict):
        return
    entries = [document]
    for value in document.values():
        if isinstance(value, list):
            entries += [entry for entry in value if isinstance(entry, dict)]
    for entry in entries:
        minutes = entry.get("estimated_time_to_regain_access")
        if isinstance(minutes, int | float) and not isinstance(minutes, bool) and minutes > 0:
            yield float(minutes)


def regain_minutes(headers: CIMultiDictProxy[str]) -> float | None:
    """The longest `estimated_time_to_regain_access` any usage header names, in minutes."""
    longest: float | None = None
    for name in USAGE_HEADERS:
        for raw in headers.getall(name, []):
            try:
                document = json.loads(raw)
            except ValueError:
                continue
            for minutes in _regain_values(document):
                longest = minutes if longest is None else max(longest, minutes)
    return longest


def _graph_error(answer: Answer) -> dict[str, Any]:
    error = answer.object().get("error")
    return error if isinstance(error, dict) else {}


def describe(answer: Answer, secrets: Sequence[str]) -> str:
    """`facebook answered 400: code 190/463 OAuthException: <message>`, from Graph's error
    fields (the body's start alone would cut off the code), else the body's start."""
    error = _graph_error(answer)
    if not isinstance(error.get("message"), str):
        return answer_error("facebook", answer, secrets)
    code = f"code {error.get('code')}"
    if error.get("error_subcode") is not None:
        code += f"/{error.get('error_subcode')}"
    text = f"{code} {error.get('type', 'error')}: {error['message']}"
    if isinstance(error.get("fbtrace_id"), str):
        text += f" (fbtrace_id {error['fbtrace_id']})"
    return f"facebook answered {answer.status}: {excerpt(text.encode(), secrets)}"


def _throttled(answer: Answer, message: str, scope: Literal["request", "account", "app"],
               now: datetime) -> RateLimited:
    minutes = regain_minutes(answer.headers) or DEFAULT_REGAIN_MINUTES
    return retry_later(message, after_seconds(minutes * 60, now), scope)


def graph_failure(answer: Answer, secrets: Sequence[str], now: datetime) -> ProviderError:
    """A Graph error answer in the taxonomy, decided by the body's `code`: Graph answers
    most errors, throttling included, with a 4xx, so the status alone says little."""
    error = _graph_error(answer)
    code = _int(error.get("code"))
    message = describe(answer, secrets)
    if code in THROTTLING:
        return _throttled(answer, message, THROTTLING[code], now)
    if code in REVOKED_CODES or code in PERMISSION_CODES:
        return AuthRevoked(f"{message}; connect the Page again")
    if answer.status >= 500 or code in TRANSIENT_CODES or error.get("is_transient") is True:
        return Transient(message)
    if answer.status == 429:
        return _throttled(answer, message, "request", now)
    return Permanent(message)


def login_failure(answer: Answer, secrets: Sequence[str], now: datetime) -> ProviderError:
    """A refusal while connecting: here code 1 is "Error validating client secret", not an
    outage, and a bad code or token is the request's fault, not a revocation."""
    error = _graph_error(answer)
    code = _int(error.get("code"))
    message = describe(answer, secrets)
    if code in THROTTLING:
        return _throttled(answer, message, THROTTLING[code], now)
    if answer.status >= 500 or code == 2 or error.get("is_transient") is True:
        return Transient(message)
    return Permanent(message)


def same_message(posted: Any, text: str) -> bool:
    """Whether Facebook's copy of a message is this text. Compared up to Unicode
    normalisation and whitespace, which a platform may tidy: a lookup that missed its own
    post would have reconciliation publish it a second time."""
    if not isinstance(posted, str):
        return False

    def canonical(value: str) -> str:
        return " ".join(unicodedata.normalize("NFC", value).split())

    return canonical(posted) == canonical(text)


def _created_time(post: dict[str, Any]) -> datetime | None:
    value = post.get("created_time")
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def _after_cursor(document: dict[str, Any]) -> str | None:
    """The cursor of the next page, or None on the last page (Graph leaves `next` out)."""
    paging = document.get("paging")
    if not isinstance(paging, dict) or not paging.get("next"):
        return None
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, dict) else None
    return after if isinstance(after, str) and after else None


def _rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    data = document.get("data")
    return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []


class FacebookProvider(Provider):
    platform = "facebook"
    Config = FacebookConfig
    Credentials = FacebookCredentials
    connects_with = "oauth"
    honours_idempotency_key = False
    supports_lookup = True
    #: Meta sets no fixed number of Page posts: the Page's API allowance is 4,800 calls per
    #: engaged user per 24 hours, and posting fast risks the spam block (code 368). One post
    #: a minute on average, at most 10 at once, is Herald's conservative pace; accounts may
    #: set their own.
    default_budget = Budget(count=10, period_seconds=600.0)
    supports_media = True

    # --- OAuth ------------------------------------------------------------------------------

    def authorization_url(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                          state: str, code_challenge: str) -> str:
        """The Login dialog. PKCE (S256) is Facebook's documented OIDC code flow; the app
        secret is still sent at the exchange, as a confidential client does."""
        endpoints = _endpoints(config)
        query = urlencode({
            "client_id": app.client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "response_type": "code",
            "scope": ",".join(SCOPES),
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        })
        return f"{endpoints.auth_base.rstrip('/')}/{endpoints.api_version}/dialog/oauth?{query}"

    async def exchange_code(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                            code: str, code_verifier: str) -> Connected:
        """Code → user token → long-lived user token → the Page's token (which then never
        expires). Only the Page token is kept; the user tokens are not stored."""
        endpoints = _endpoints(config)
        if not app.client_secret:
            raise Permanent("facebook needs the app secret (HERALD_FACEBOOK_CLIENT_SECRET)")
        hidden = [app.client_secret, code, code_verifier]
        user_token = await self._token(endpoints, {
            "client_id": app.client_id, "client_secret": app.client_secret,
            "redirect_uri": redirect_uri, "code": code, "code_verifier": code_verifier,
        }, hidden)
        hidden.append(user_token)
        long_lived = await self._token(endpoints, {
            "grant_type": "fb_exchange_token", "client_id": app.client_id,
            "client_secret": app.client_secret, "fb_exchange_token": user_token,
        }, hidden)
        hidden.append(long_lived)
        wanted = config.get("page_id")
        page_id, page_token = await self._page_token(
            endpoints, wanted if isinstance(wanted, str) else None, long_lived, hidden)
        return Connected(credentials={"page_access_token": page_token},
                         config={"page_id": page_id})

    async def _token(self, endpoints: GraphEndpoints, params: dict[str, str],
                     hidden: list[str]) -> str:
        answer = await call(self.session, "GET", _graph_url(endpoints, "oauth/access_token"),
                            platform="facebook", secrets=hidden, params=params)
        if not answer.ok:
            raise login_failure(answer, hidden, datetime.now(UTC))
        token = answer.object().get("access_token")
        if not isinstance(token, str) or not token:
            raise Permanent("facebook answered the token request without an access_token")
        return token

    async def _page_token(self, endpoints: GraphEndpoints, wanted: str | None, user_token: str,
                          hidden: list[str]) -> tuple[str, str]:
        """The wanted Page's token from the Pages the person manages; with no Page named,
        the only one they manage."""
        pages: list[dict[str, Any]] = []
        params = {"fields": "id,name,access_token,tasks", "limit": PAGE_SIZE,
                  "access_token": user_token}
        for _ in range(ACCOUNT_PAGES):
            answer = await call(self.session, "GET", _graph_url(endpoints, "me/accounts"),
                                platform="facebook", secrets=hidden, params=params)
            if not answer.ok:
                raise login_failure(answer, hidden, datetime.now(UTC))
            document = answer.object()
            pages += [p for p in _rows(document)
                      if isinstance(p.get("id"), str) and isinstance(p.get("access_token"), str)]
            after = _after_cursor(document)
            if after is None:
                break
            params["after"] = after
        listed = ", ".join(f"{p['id']} ({p.get('name', '?')})" for p in pages) or "none"
        if wanted is not None:
            page = next((p for p in pages if p["id"] == wanted), None)
            if page is None:
                raise Permanent(f"facebook: the person who authorized does not manage Page "
                                f"{wanted} with these permissions (Pages: {listed})")
        elif len(pages) == 1:
            page = pages[0]
        else:
            raise Permanent(f"facebook: set config.page_id to the Page to post to "
                            f"(Pages this person manages: {listed})")
        tasks = page.get("tasks")
        if isinstance(tasks, list) and "CREATE_CONTENT" not in tasks:
            raise Permanent(f"facebook: the person who authorized cannot create content on "
                            f"Page {page['id']}")
        return page["id"], page["access_token"]

    # --- limits -----------------------------------------------------------------------------

    async def text_limit(self, config: dict[str, Any]) -> TextLimit:
        return TextLimit(MAX_MESSAGE, "UTF-16 code units")

    def measure(self, text: str) -> int:
        return utf16_units(text)

    # --- publishing -------------------------------------------------------------------------

    async def check_content(self, content: Content, config: dict[str, Any],
                            media: PartsInfo = ()) -> Problems:
        problems = await super().check_content(content, config, media)
        if media and media[0]:
            problems += media_problems(media[0])
        return problems

    async def publish(self, request: PublishRequest) -> Published:
        """A feed post, a photo post, photos attached to a feed post, or a video post."""
        config, token = _account(request)
        files = request.media_of(0)
        kinds = [_kind(file.info) for file in files]
        if None in kinds or ("video" in kinds and len(files) > 1):
            raise Permanent("facebook: a post takes photos, or one video alone")
        if kinds == ["video"]:
            return await self._video(request, config, token, files[0])
        if len(files) == 1:
            answer = await self._graph(config, token, f"{config.page_id}/photos", data=_file_form(
                files[0], "source", self._photo_fields(token, files[0], request.content.text)))
            document = answer.object()
            return self._published(document.get("post_id") or document.get("id"))
        fields = {"message": request.content.text, "access_token": token}
        try:
            for n, file in enumerate(files):
                media_id = await uploaded(request, 0, n, self._photo(config, token, file))
                fields[f"attached_media[{n}]"] = json.dumps({"media_fbid": media_id})
        except OutcomeUnknown as exc:  # an unpublished photo's lost answer makes no post
            raise Transient(str(exc)) from exc
        answer = await self._graph(config, token, f"{config.page_id}/feed", data=fields)
        return self._published(answer.object().get("id"))

    @staticmethod
    def _published(post_id: Any) -> Published:
        if not isinstance(post_id, str) or not post_id:
            return Published()
        return Published(post_id, POST_URL + post_id)

    @staticmethod
    def _photo_fields(token: str, file: MediaFile, caption: str | None) -> dict[str, str]:
        fields = {"access_token": token}
        if caption is None:
            fields["published"] = "false"
        elif caption:
            fields["message"] = caption
        if file.alt:
            fields["alt_text_custom"] = file.alt
        return fields

    async def _graph(self, config: FacebookConfig, token: str, path: str, *,
                     base: str | None = None, **kwargs: Any) -> Answer:
        url = (f"{base.rstrip('/')}/{config.api_version}/{path}" if base
               else _graph_url(config, path))
        timeout = (UPLOAD_TIMEOUT_SECONDS if isinstance(kwargs.get("data"),
                                                        aiohttp.MultipartWriter)
                   else DEFAULT_TIMEOUT_SECONDS)
        answer = await call(self.session, "POST", url, platform="facebook", secrets=[token],
                            timeout_seconds=timeout, **kwargs)
        if not answer.ok:
            raise graph_failure(answer, [token], datetime.now(UTC))
        return answer

    def _photo(self, config: FacebookConfig, token: str,
               file: MediaFile) -> Callable[[], Awaitable[str]]:
        async def upload() -> str:
            """An unpublished photo of the Page, for a later post's `attached_media`."""
            answer = await self._graph(config, token, f"{config.page_id}/photos",
                                       data=_file_form(file, "source",
                                                       self._photo_fields(token, file, None)))
            photo_id = answer.object().get("id")
            if not isinstance(photo_id, str) or not photo_id:
                raise Transient("facebook: a photo upload was answered without an id")
            return photo_id
        return upload

    async def _video(self, request: PublishRequest, config: FacebookConfig, token: str,
                     file: MediaFile) -> Published:
        """The resumable upload: start once (saved), each range the server names transferred
        (the next saved before it is sent), then finish, which publishes."""
        size = file.info.size
        if size is None:
            raise Permanent(f"facebook: media {file.id} has no known size to upload")
        path = f"{config.page_id}/videos"
        base = config.video_api_base
        session: dict[str, Any] | None = request.checkpoints.get("video_0")
        try:
            if session is None:
                answer = await self._graph(config, token, path, base=base, data={
                    "upload_phase": "start", "file_size": str(size), "access_token": token})
                started = answer.object()
                session = {"session": started.get("upload_session_id"),
                           "video_id": started.get("video_id"),
                           "start": _offset(started.get("start_offset")),
                           "end": _offset(started.get("end_offset"))}
                if not isinstance(session["session"], str) or session["start"] is None:
                    raise Transient("facebook: the video upload did not start a session")
                await request.checkpoints.save("video_0", session)
            while session["start"] < size:
                fields = {"upload_phase": "transfer", "access_token": token,
                          "upload_session_id": session["session"],
                          "start_offset": str(session["start"])}
                answer = await self._graph(config, token, path, base=base, data=_file_form(
                    file, "video_file_chunk", fields, session["start"], session["end"]))
                moved = answer.object()
                start, end = _offset(moved.get("start_offset")), _offset(moved.get("end_offset"))
                if start is None or end is None or start <= session["start"]:
                    raise Transient("facebook: a video transfer was answered without the next "
                                    "range")
                session = {**session, "start": start, "end": end}
                await request.checkpoints.save("video_0", session)
        except OutcomeUnknown as exc:  # only `finish` publishes
            raise Transient(str(exc)) from exc
        fields = {"upload_phase": "finish", "access_token": token,
                  "upload_session_id": str(session["session"])}
        if request.content.text:
            fields["description"] = request.content.text
        answer = await self._graph(config, token, path, base=base, data=fields)
        if answer.object().get("success") is not True:
            raise Transient("facebook: the video upload did not finish")
        video_id = session.get("video_id")
        if not isinstance(video_id, str) or not video_id:
            return Published()
        return Published(video_id, f"{POST_URL}{config.page_id}/videos/{video_id}")

    async def lookup(self, request: PublishRequest, since: datetime) -> Published | None:
        """The Page's published post with this message (`same_message`), created at or after
        `since` (less LOOKUP_SLACK_SECONDS)."""
        config, token = _account(request)
        start = int(utc(since).timestamp()) - LOOKUP_SLACK_SECONDS
        params = {"since": str(start), "fields": "id,message,created_time,permalink_url",
                  "limit": PAGE_SIZE, "access_token": token}
        for _ in range(LOOKUP_PAGES):
            answer = await call(
                self.session, "GET", _graph_url(config, f"{config.page_id}/published_posts"),
                platform="facebook", secrets=[token], params=params)
            if not answer.ok:
                raise graph_failure(answer, [token], datetime.now(UTC))
            document = answer.object()
            for post in _rows(document):
                created = _created_time(post)
                post_id = post.get("id")
                if (same_message(post.get("message"), request.content.text)
                        and isinstance(post_id, str)
                        and (created is None or created.timestamp() >= start)):
                    link = post.get("permalink_url")
                    return Published(post_id, link if isinstance(link, str)
                                     else POST_URL + post_id)
            after = _after_cursor(document)
            if after is None:
                return None
            params["after"] = after
        raise Transient(f"facebook: more than {LOOKUP_PAGES} pages of posts since "
                        f"{rfc3339_utc(since)}; the post could not be looked up")
