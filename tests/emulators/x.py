"""X API v2 as Herald meets it: the OAuth 2.0 authorization page and token endpoint (PKCE S256
required, HTTP Basic for the confidential client, rotating refresh tokens), `POST /2/tweets`,
`GET /2/users/me` and `GET /2/users/:id/tweets`, on X's own paths under the root URL.

It checks what X checks (a valid bearer token, the body's known fields, text within 280
weighted characters counted by twitter-text itself, no repeat of a recent text) and answers
with X's problem documents, rate-limit headers (`x-rate-limit-*` per 15 minutes,
`x-user-limit-24hour-*` and `x-app-limit-24hour-*`, epoch seconds) and statuses. A timeline
gives texts back as X does: `&`, `<`, `>` HTML-escaped and every URL shortened to a t.co link.

Media, as X API v2's chunked upload: `POST /2/media/upload/initialize` (JSON: a media type X
takes, `total_bytes` within the category's cap, a `media_category`), `POST
/2/media/upload/{id}/append` (multipart `segment_index` 0-999 and `media` of at most 5 MB),
`POST /2/media/upload/{id}/finalize` (the segments must be 0..n-1 and add up to `total_bytes`;
videos and GIFs answer `processing_info` and are done after `processing_polls` STATUS reads),
`GET /2/media/upload?command=STATUS&media_id=`, and `POST /2/media/metadata` (alt text of at
most 1000 characters). `drop_segment` (an attribute) drops the connection when that
segment's APPEND arrives, once: an upload cut off mid-way. Every media call needs the
`media.write` scope and the media's owner's token. A post's `media.media_ids` must be the
user's, finalized and processed; at most 4 images, or one GIF or video alone.
`reply.in_reply_to_tweet_id` must name a post.

The allowances are attributes (`window_limit`, `user_day_limit`, `app_day_limit`) a test in
the same process may lower. The default OAuth client is `herald-test-client` /
`herald-test-secret`; any redirect URI is accepted.
"""

from __future__ import annotations

import base64
import binascii
import html
import itertools
import math
import secrets
import string
import time
import warnings
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.emulators.platform import AuthCodes, PlatformEmulator, TokenBook, iso, oauth_error
from tests.emulators.uploads import Received, form_fields, form_parts, received

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from twitter_text import extract_urls_with_indices, parse_tweet

CLIENT_ID = "herald-test-client"
CLIENT_SECRET = "herald-test-secret"
KNOWN_SCOPES = frozenset({
    "tweet.read", "tweet.write", "tweet.moderate.write", "users.read", "users.email",
    "follows.read", "follows.write", "offline.access", "space.read", "mute.read", "mute.write",
    "like.read", "like.write", "list.read", "list.write", "block.read", "block.write",
    "bookmark.read", "bookmark.write", "media.write", "dm.read", "dm.write",
})
DEFAULT_SCOPES = "tweet.read tweet.write users.read offline.access media.write"
MEDIA_TYPES = {"image/jpeg": "tweet_image", "image/png": "tweet_image",
               "image/webp": "tweet_image", "image/gif": "tweet_gif",
               "video/mp4": "tweet_video", "video/quicktime": "tweet_video"}
CATEGORY_BYTES = {"tweet_image": 5 * 1024 * 1024, "tweet_gif": 15 * 1024 * 1024,
                  "tweet_video": 8 * 1024 ** 3}
SEGMENT_LIMIT = 5 * 1024 * 1024
POST_FIELDS = frozenset({
    "text", "media", "reply", "quote_tweet_id", "poll", "reply_settings", "geo",
    "for_super_followers_only", "direct_message_deep_link", "nullcast", "card_uri",
    "community_id", "edit_options", "share_with_followers", "made_with_ai", "paid_partnership",
})
ACCESS_TTL = 7200.0
WINDOW_SECONDS = 15 * 60
DAY_SECONDS = 24 * 3600
INVALID_REQUEST = "https://api.twitter.com/2/problems/invalid-request"
TOO_LONG = ("Your Tweet text is too long. For more information on how Twitter determines "
            "text length see https://github.com/twitter/twitter-text.")


def problem(status: int, title: str, detail: str, *, kind: str = "about:blank",
            headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    """X's error document (RFC 7807 problem details)."""
    return web.json_response({"title": title, "detail": detail, "type": kind, "status": status,
                              **extra}, status=status, headers=headers,
                             content_type="application/problem+json")


def invalid_request(*messages: str) -> web.Response:
    return web.json_response(
        {"errors": [{"message": m} for m in messages], "title": "Invalid Request",
         "detail": "One or more parameters to your request was invalid.",
         "type": INVALID_REQUEST}, status=400)


def rendered(text: str) -> str:
    """The text as X stores and returns it: URLs as t.co links, `&<>` HTML-escaped."""
    parts: list[str] = []
    last = 0
    alphabet = string.ascii_letters + string.digits
    for url in extract_urls_with_indices(text):
        start, end = url["indices"]
        short = "".join(secrets.choice(alphabet) for _ in range(10))
        parts += [html.escape(text[last:start], quote=False), f"https://t.co/{short}"]
        last = end
    parts.append(html.escape(text[last:], quote=False))
    return "".join(parts)


class Upload:
    """A chunked upload session: its segments until finalized, then the file's record."""

    def __init__(self, media_id: str, owner: str, media_type: str, total: int,
                 media_category: str) -> None:
        self.id, self.owner, self.media_type = media_id, owner, media_type
        self.total, self.category = total, media_category
        self.segments: dict[int, bytes] = {}
        self.file: Received | None = None
        self.alt: str | None = None

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "media_key": f"7_{self.id}",
                                "expires_after_secs": 86400}
        if self.file is not None:
            data["size"] = self.file.size
            if self.category != "tweet_image":
                state = "succeeded" if self.file.ready else (
                    "pending" if self.file.details["reads"] == 0 else "in_progress")
                data["processing_info"] = {"state": state, **(
                    {} if self.file.ready else {"check_after_secs": 1})}
        return data


class XEmulator(PlatformEmulator):
    platform = "x"
    client_max_size = SEGMENT_LIMIT + 1024 * 1024

    def __init__(self) -> None:
        super().__init__()
        self.tokens = TokenBook(access_ttl=ACCESS_TTL, rotate=True)
        self.auth = AuthCodes(require_pkce=True, code_ttl=30.0)
        self.auth.register(CLIENT_ID, CLIENT_SECRET)
        self.window_limit = 100
        self.user_day_limit = 2400
        self.app_day_limit = 100_000
        #: How long X refuses a repeat of the same text by the same user.
        self.duplicate_seconds = float(DAY_SECONDS)
        self._user_ids = itertools.count(1_600_000_000_000_000_001)
        self._post_ids = itertools.count(1_900_000_000_000_000_001)
        self._media_ids = itertools.count(1_880_000_000_000_000_001)
        self.users: dict[str, str] = {}
        #: STATUS reads before a video or GIF is processed.
        self.processing_polls = 2
        #: The segment index whose APPEND has its connection dropped, once (None: none).
        self.drop_segment: int | None = None
        self.uploads: dict[str, Upload] = {}
        self.calls: list[str] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/i/oauth2/authorize", self._authorize)
        app.router.add_post("/2/oauth2/token", self._token)
        app.router.add_post("/2/tweets", self._create)
        app.router.add_get("/2/users/me", self._me)
        app.router.add_get("/2/users/{id}/tweets", self._timeline)
        app.router.add_post("/2/media/upload/initialize", self._initialize)
        app.router.add_post("/2/media/upload/{id}/append", self._append)
        app.router.add_post("/2/media/upload/{id}/finalize", self._finalize)
        app.router.add_get("/2/media/upload", self._status)
        app.router.add_post("/2/media/metadata", self._metadata)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "calls": self.calls,
                "media": [{**u.file.state(), "alt": u.alt} for u in self.uploads.values()
                          if u.file is not None]}

    # --- the platform's own answers ---------------------------------------------------------

    def rate_limited(self) -> web.Response:
        reset = math.ceil(time.time() + self.faults.retry_after)
        return problem(429, "Too Many Requests", "Too Many Requests", headers={
            "x-rate-limit-limit": str(self.window_limit), "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(reset)})

    def server_error(self, status: int) -> web.Response:
        title = "Service Unavailable" if status == 503 else "Internal Server Error"
        return problem(status, title, title)

    def token_expired(self) -> web.Response:
        return problem(401, "Unauthorized", "Unauthorized")

    def account(self) -> dict[str, Any]:
        grant = self.tokens.issue(self._new_user(), DEFAULT_SCOPES)
        return {
            "platform": "x", "name": "x-emulator",
            "config": {"api_base": self.base_url, "auth_base": self.base_url},
            "credentials": {"access_token": grant.access_token,
                            "refresh_token": grant.refresh_token,
                            "expires_at": iso(grant.expires_at)},
        }

    # --- OAuth ------------------------------------------------------------------------------

    def _new_user(self) -> str:
        user_id = str(next(self._user_ids))
        self.users[user_id] = f"herald_{user_id[-4:]}"
        return user_id

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        scopes = set(query.get("scope", "").split())
        reason = ""
        if not scopes or not scopes <= KNOWN_SCOPES:
            reason = "scope is missing or names an unknown scope"
        elif not query.get("state"):
            reason = "state is required"
        location = None
        if not reason:
            location, reason = self.auth.authorize(query)
        if location is None:
            return web.Response(status=400, content_type="text/html",
                                text=f"<html><body><h1>Something went wrong</h1><p>{reason}"
                                     f"</p></body></html>")
        return web.Response(status=302, headers={"Location": location})

    def _client(self, request: web.Request, form: Any) -> tuple[str | None, str | None,
                                                                web.Response | None]:
        """(client id, secret, refusal): a client registered with a secret must send HTTP
        Basic credentials; a public client names itself in the form."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                client_id, secret = "", ""
            registered = self.auth.clients.get(client_id)
            if registered is None or registered[0] != secret:
                return None, None, oauth_error(401, "unauthorized_client",
                                               "Missing valid authorization header")
            return client_id, secret, None
        client_id = form.get("client_id")
        registered = self.auth.clients.get(client_id or "")
        if registered is None or registered[0] is not None:
            return None, None, oauth_error(401, "unauthorized_client",
                                           "Missing valid authorization header")
        return client_id, None, None

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id, secret, refusal = self._client(request, form)
        if refusal is not None:
            return refusal
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            code, redirect_uri, verifier = (form.get("code"), form.get("redirect_uri"),
                                            form.get("code_verifier"))
            pending, _reason = self.auth.redeem(
                code if isinstance(code, str) else None, client_id, secret,
                redirect_uri if isinstance(redirect_uri, str) else None,
                verifier if isinstance(verifier, str) else None)
            if pending is None:
                return oauth_error(400, "invalid_request",
                                   "Value passed for the authorization code was invalid.")
            grant = self.tokens.issue(self._new_user(), pending.scope)
        elif grant_type == "refresh_token":
            refresh_token = form.get("refresh_token")
            renewed = self.tokens.refresh(refresh_token if isinstance(refresh_token, str)
                                          else None)
            if renewed is None:
                return oauth_error(400, "invalid_request",
                                   "Value passed for the token was invalid.")
            grant = renewed
        else:
            return oauth_error(400, "unsupported_grant_type", "grant_type is not supported")
        answer: dict[str, Any] = {"token_type": "bearer", "expires_in": int(ACCESS_TTL),
                                  "access_token": grant.access_token, "scope": grant.scope}
        if grant.refresh_token and "offline.access" in grant.scope.split():
            answer["refresh_token"] = grant.refresh_token
        elif grant.refresh_token:
            self.tokens.by_refresh.pop(grant.refresh_token, None)
        return web.json_response(answer)

    # --- the API ----------------------------------------------------------------------------

    async def _authenticate(self, request: web.Request
                            ) -> tuple[str, web.StreamResponse | None]:
        """The token's user, or the answer instead: a scripted fault (`guard`) or X's 401."""
        fault = await self.guard(request)
        if fault is not None:
            return "", fault
        grant, _state = self.bearer_grant(request)
        if grant is None:
            return "", self.token_expired()
        return grant.subject, None

    def _counts(self, user: str, now: float) -> dict[str, tuple[int, int]]:
        """(posts made, reset epoch) per allowance: this user's 15-minute window and 24 hours,
        and the app's 24 hours."""
        def window(posts: list[dict[str, Any]], seconds: float) -> tuple[int, int]:
            recent = [p["at"] for p in posts if p["at"] > now - seconds]
            return len(recent), math.ceil((min(recent) if recent else now) + seconds)
        mine = [p for p in self.posts if p.get("author") == user]
        return {"window": window(mine, WINDOW_SECONDS), "user": window(mine, DAY_SECONDS),
                "app": window(self.posts, DAY_SECONDS)}

    def _limit_headers(self, user: str, now: float) -> dict[str, str]:
        counts = self._counts(user, now)
        headers: dict[str, str] = {}
        for prefix, key, limit in (("x-rate-limit", "window", self.window_limit),
                                   ("x-user-limit-24hour", "user", self.user_day_limit),
                                   ("x-app-limit-24hour", "app", self.app_day_limit)):
            made, reset = counts[key]
            headers.update({f"{prefix}-limit": str(limit),
                            f"{prefix}-remaining": str(max(0, limit - made)),
                            f"{prefix}-reset": str(reset)})
        return headers

    async def _create(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("tweets")
        user, refusal = await self._authenticate(request)
        if refusal is not None:
            return refusal
        try:
            body = await request.json()
        except ValueError:
            return invalid_request("Request body is not valid JSON")
        if not isinstance(body, dict):
            return invalid_request("$: object expected")
        unknown = sorted(set(body) - POST_FIELDS)
        if unknown:
            return invalid_request(*(f"$.{k}: is not defined in the schema and the schema "
                                     f"does not allow additional properties" for k in unknown))
        media = body.get("media", {"media_ids": []})
        media_ids = media.get("media_ids") if isinstance(media, dict) else None
        if not isinstance(media_ids, list) or not all(isinstance(m, str) for m in media_ids):
            return invalid_request("$.media.media_ids: array of strings expected")
        text = body.get("text", "" if media_ids else None)
        if not isinstance(text, str):
            return invalid_request("$.text: string expected")
        parsed = parse_tweet(text)
        if parsed.weightedLength > 280:
            return invalid_request(TOO_LONG)
        if not text.strip() and not media_ids:
            return invalid_request("Tweet text is empty")
        refusal = self._media_refusal(user, media_ids)
        if refusal is not None:
            return refusal
        reply = body.get("reply")
        reply_to = reply.get("in_reply_to_tweet_id") if isinstance(reply, dict) else None
        if reply is not None and not any(p["id"] == reply_to for p in self.posts):
            return invalid_request("$.reply.in_reply_to_tweet_id: the post to reply to does "
                                   "not exist or is not visible to you")
        now = time.time()
        headers = self._limit_headers(user, now)
        for key in ("x-user-limit-24hour", "x-app-limit-24hour", "x-rate-limit"):
            if headers[f"{key}-remaining"] == "0":
                return problem(429, "Too Many Requests", "Too Many Requests", headers=headers)
        if text.strip() and any(p.get("author") == user and p["text"] == text
                                and p["at"] > now - self.duplicate_seconds for p in self.posts):
            return problem(403, "Forbidden",
                           "You are not allowed to create a Tweet with duplicate content.",
                           headers=headers)
        post_id = str(next(self._post_ids))
        post = self.record(text, id=post_id, author=user, rendered=rendered(text),
                           created_at=iso(now), media_ids=media_ids, in_reply_to=reply_to,
                           alts=[self.uploads[m].alt for m in media_ids])
        response = web.json_response({"data": {"id": post_id, "text": post["rendered"]}},
                                     status=201, headers=self._limit_headers(user, now))
        return self.answer_lost(request, response)

    def _media_refusal(self, user: str, media_ids: list[str]) -> web.Response | None:
        """What `POST /2/tweets` refuses of a post's media ids."""
        for media_id in media_ids:
            upload = self.uploads.get(media_id)
            if upload is None or upload.owner != user or upload.file is None:
                return invalid_request(f"Your media IDs are invalid: {media_id}")
            if not upload.file.ready:
                return invalid_request(f"Media {media_id} is still processing")
        kinds = [self.uploads[m].category for m in media_ids]
        if len(kinds) > 4 or (len(kinds) > 1 and set(kinds) != {"tweet_image"}):
            return invalid_request("$.media.media_ids: at most 4 images, or one GIF or video")
        return None

    # --- media ------------------------------------------------------------------------------

    async def _media_user(self, request: web.Request) -> tuple[str, web.StreamResponse | None]:
        user, refusal = await self._authenticate(request)
        if refusal is not None:
            return user, refusal
        grant = self.tokens.by_access[request.headers["Authorization"][7:]]
        if "media.write" not in grant.scope.split():
            return user, problem(403, "Forbidden", "Missing scope: media.write",
                                 kind="https://api.twitter.com/2/problems/client-forbidden")
        return user, None

    def _session(self, user: str, media_id: str) -> Upload | web.Response:
        upload = self.uploads.get(media_id)
        if upload is None or upload.owner != user:
            return invalid_request(f"The media_id {media_id} is not a valid upload session")
        return upload

    async def _initialize(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("initialize")
        user, refusal = await self._media_user(request)
        if refusal is not None:
            return refusal
        try:
            body = await request.json()
        except ValueError:
            return invalid_request("Request body is not valid JSON")
        media_type = body.get("media_type") if isinstance(body, dict) else None
        total = body.get("total_bytes") if isinstance(body, dict) else None
        wanted = body.get("media_category") if isinstance(body, dict) else None
        if media_type not in MEDIA_TYPES:
            return invalid_request(f"$.media_type: unsupported media type {media_type}")
        media_category = wanted or MEDIA_TYPES[media_type]
        if media_category != MEDIA_TYPES[media_type]:
            return invalid_request(f"$.media_category: {media_category} does not fit "
                                   f"{media_type}")
        if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
            return invalid_request("$.total_bytes: positive integer expected")
        if total > CATEGORY_BYTES[media_category]:
            return invalid_request(f"$.total_bytes: {total} is over the "
                                   f"{CATEGORY_BYTES[media_category]} bytes of "
                                   f"{media_category}")
        media_id = str(next(self._media_ids))
        self.uploads[media_id] = Upload(media_id, user, media_type, total, media_category)
        return self.answer_lost(request, web.json_response(
            {"data": self.uploads[media_id].json()}))

    async def _append(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("append")
        user, refusal = await self._media_user(request)
        if refusal is not None:
            return refusal
        upload = self._session(user, request.match_info["id"])
        if isinstance(upload, web.Response):
            return upload
        if upload.file is not None:
            return invalid_request("The upload session is already finalized")
        parts = await form_parts(request)
        if parts is None:
            return invalid_request("Request body must be multipart/form-data")
        fields = form_fields(parts)
        index_text = fields.get("segment_index", [None])[0]
        media = fields.get("media", [])
        index = index_text.text() if index_text is not None else ""
        if not index.isdigit() or not 0 <= int(index) <= 999:
            return invalid_request("$.segment_index: integer between 0 and 999 expected")
        if len(media) != 1:
            return invalid_request("$.media: exactly one file expected")
        if len(media[0].data) > SEGMENT_LIMIT:
            return invalid_request(f"$.media: a segment is at most {SEGMENT_LIMIT} bytes")
        if self.drop_segment == int(index):
            self.drop_segment = None
            return self.drop(request)
        upload.segments[int(index)] = media[0].data
        return self.answer_lost(request, web.json_response({"data": {"expires_at": int(
            time.time()) + 86400}}))

    async def _finalize(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("finalize")
        user, refusal = await self._media_user(request)
        if refusal is not None:
            return refusal
        upload = self._session(user, request.match_info["id"])
        if isinstance(upload, web.Response):
            return upload
        if upload.file is None:
            if sorted(upload.segments) != list(range(len(upload.segments))):
                return invalid_request("Segments are missing: segment_index must run from 0")
            data = b"".join(upload.segments[n] for n in range(len(upload.segments)))
            if len(data) != upload.total:
                return invalid_request(f"File size mismatch: {len(data)} bytes received, "
                                       f"total_bytes was {upload.total}")
            polls = 0 if upload.category == "tweet_image" else self.processing_polls
            upload.file = received(upload.id, user, upload.media_type, data, polls, reads=0)
            upload.segments.clear()
        return self.answer_lost(request, web.json_response({"data": upload.json()}))

    async def _status(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("status")
        user, refusal = await self._media_user(request)
        if refusal is not None:
            return refusal
        if request.query.get("command") != "STATUS":
            return invalid_request("The `command` query parameter must be STATUS")
        upload = self._session(user, request.query.get("media_id", ""))
        if isinstance(upload, web.Response):
            return upload
        if upload.file is None:
            return invalid_request("The upload session is not finalized")
        upload.file.details["reads"] += 1
        upload.file.polled()
        return web.json_response({"data": upload.json()})

    async def _metadata(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("metadata")
        user, refusal = await self._media_user(request)
        if refusal is not None:
            return refusal
        try:
            body = await request.json()
        except ValueError:
            return invalid_request("Request body is not valid JSON")
        metadata = body.get("metadata") if isinstance(body, dict) else None
        alt = metadata.get("alt_text") if isinstance(metadata, dict) else None
        text = alt.get("text") if isinstance(alt, dict) else None
        if not isinstance(text, str) or len(text) > 1000:
            return invalid_request("$.metadata.alt_text.text: string of at most 1000 "
                                   "characters expected")
        upload = self._session(user, str(body.get("id")))
        if isinstance(upload, web.Response):
            return upload
        if upload.file is None:
            return invalid_request("The upload session is not finalized")
        upload.alt = text
        return web.json_response({"data": {"associated_metadata": True, "id": upload.id}})

    async def _me(self, request: web.Request) -> web.StreamResponse:
        user, refusal = await self._authenticate(request)
        if refusal is not None:
            return refusal
        username = self.users.get(user, f"herald_{user[-4:]}")
        return web.json_response({"data": {"id": user, "name": "Herald Test",
                                           "username": username}})

    async def _timeline(self, request: web.Request) -> web.StreamResponse:
        _user, refusal = await self._authenticate(request)
        if refusal is not None:
            return refusal
        query = request.query
        errors: list[str] = []
        start = 0.0
        if "start_time" in query:
            try:
                start = datetime.strptime(query["start_time"], "%Y-%m-%dT%H:%M:%SZ").replace(
                    tzinfo=UTC).timestamp()
            except ValueError:
                errors.append(f"Invalid 'start_time':'{query['start_time']}'. 'start_time' "
                              f"must be a valid RFC 3339 timestamp (YYYY-MM-DDTHH:mm:ssZ).")
        size = query.get("max_results", "10")
        if not size.isdigit() or not 5 <= int(size) <= 100:
            errors.append(f"The `max_results` query parameter value [{size}] is not between "
                          f"5 and 100")
        offset = query.get("pagination_token", "0")
        if not offset.isdigit():
            errors.append("The `pagination_token` query parameter value is not valid")
        if errors:
            return invalid_request(*errors)
        fields = set(query.get("tweet.fields", "").split(","))
        posts = sorted((p for p in self.posts
                        if p.get("author") == request.match_info["id"] and p["at"] >= start),
                       key=lambda p: p["at"], reverse=True)
        page = posts[int(offset):int(offset) + int(size)]
        if not page:
            return web.json_response({"meta": {"result_count": 0}})
        data = [{"id": p["id"], "text": p["rendered"], "edit_history_tweet_ids": [p["id"]],
                 **({"created_at": p["created_at"]} if "created_at" in fields else {})}
                for p in page]
        meta: dict[str, Any] = {"result_count": len(page), "newest_id": page[0]["id"],
                                "oldest_id": page[-1]["id"]}
        if int(offset) + len(page) < len(posts):
            meta["next_token"] = str(int(offset) + len(page))
        return web.json_response({"data": data, "meta": meta})


EMULATOR = XEmulator
