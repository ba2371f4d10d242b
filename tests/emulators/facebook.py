"""Facebook Graph API and Facebook Login, as far as a Page post needs them, on the real paths
under one root (point both `api_base` and `auth_base` at it):

- `GET /{version}/dialog/oauth`: the Login dialog, approving at once (302 to the redirect URI
  with `code` and `state`), or an error page for an unknown app, scope or bad PKCE parameters;
- `GET|POST /{version}/oauth/access_token`: the code grant (with the app secret and, when the
  dialog had a challenge, the PKCE verifier) and the `fb_exchange_token` grant (long-lived
  user token);
- `GET /{version}/me/accounts`: the Pages the user manages, each with a Page token (one that
  never expires when the user token is long-lived);
- `POST /{version}/{page}/feed` → `{"id": "<page>_<post>"}`;
- `GET /{version}/{page}/published_posts` (and `GET .../feed`) with `since`, `until`, `fields`,
  `limit` and cursor paging.

Media: `POST /{version}/{page}/photos` takes the file as the multipart part `source` (JPEG,
PNG, GIF, BMP or TIFF of at most 4 MB; code 324 otherwise), with `message` and
`alt_text_custom`; published (the default) it makes a post and answers `id` and `post_id`,
with `published=false` only `id`, for a feed post's `attached_media[n]` (`{"media_fbid"}`),
which must name an unpublished photo of the same Page, attached once. `POST
/{version}/{page}/videos` is the resumable upload: `upload_phase=start` (`file_size`) answers
the session, the video id and the first range of `video_chunk_size` bytes; `transfer` must
send exactly the range at `start_offset` as `video_file_chunk` and is answered with the next;
`finish` once every byte is in makes the post (`description` as its message). Each received
file's SHA-256 is kept (`media` in `/_state`).

Errors are Graph's body `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id",
"is_transient"}}`; throttling carries the usage headers with `estimated_time_to_regain_access`
in minutes. `throttle_code` chooses which throttle `rate_limited` plays (32 Page, 4 app, 17
user, 80001 Page business use case, 613 endpoint). Access tokens are accepted as the
`access_token` parameter (query, form or JSON) or as `Authorization: Bearer|OAuth <token>`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import secrets
import time
from typing import Any

from aiohttp import web

from tests.emulators.platform import (
    AuthCodes,
    PlatformEmulator,
    TokenBook,
    request_params,
    utf16_units,
)
from tests.emulators.uploads import FormPart, form_parts

CLIENT_ID = "herald-test-client"
CLIENT_SECRET = "herald-test-secret"
PAGE_ID = "100000000000001"
OTHER_PAGE_ID = "100000000000002"
PAGES = {PAGE_ID: "Herald Test Page", OTHER_PAGE_ID: "Herald Second Page"}
VERSION = r"{version:v[0-9]+\.[0-9]+}"
PERMISSIONS = frozenset({
    "pages_manage_posts", "pages_read_engagement", "pages_show_list", "pages_manage_metadata",
    "pages_read_user_content", "pages_manage_engagement", "public_profile", "email", "openid",
})
ALL_SCOPES = "pages_manage_posts,pages_read_engagement,pages_show_list"
SHORT_TTL = 2 * 3600.0
LONG_TTL = 60 * 86400.0
#: "Never expires", kept finite so `expire_all` can still move it into the past.
FOREVER = 100 * 365 * 86400.0
MAX_MESSAGE = 63_206
PHOTO_TYPES = frozenset({"image/jpeg", "image/bmp", "image/png", "image/gif", "image/tiff"})
MAX_PHOTO_BYTES = 4 * 1024 * 1024
THROTTLES = {
    4: "(#4) Application request limit reached",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80001: "(#80001) There have been too many calls to this Page account. Wait a bit and try "
           "again. For more info, please refer to "
           "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
}


def graph_error(status: int, message: str, code: int, *, subcode: int | None = None,
                kind: str = "OAuthException", transient: bool | None = None,
                headers: dict[str, str] | None = None) -> web.Response:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient is not None:
        error["is_transient"] = transient
    error["fbtrace_id"] = secrets.token_urlsafe(8)
    return web.json_response({"error": error}, status=status, headers=headers)


def created_time(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(at))


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(str(index).encode()).decode()


def _uncursor(value: str) -> int | None:
    try:
        return int(base64.urlsafe_b64decode(value.encode()).decode())
    except ValueError:
        return None


class FacebookEmulator(PlatformEmulator):
    platform = "facebook"
    #: Room for a photo, or one video range, and the form around it.
    client_max_size = 16 * 1024 * 1024

    def __init__(self) -> None:
        super().__init__()
        self.tokens = TokenBook(access_ttl=SHORT_TTL, rotate=False, refresh=False)
        self.auth = AuthCodes(require_pkce=False, code_ttl=600.0)
        self.auth.register(CLIENT_ID, CLIENT_SECRET)
        self.kinds: dict[str, str] = {}
        self.throttle_code = 32
        #: Every Graph request, tokens included, for tests to assert on.
        self.received: list[dict[str, Any]] = []
        self._post_numbers = itertools.count(900000000000001)
        #: media id -> {"kind", "page_id", "sha256", "size", "published", "attached_to", ...}
        self.media: dict[str, dict[str, Any]] = {}
        #: upload session id -> {"video_id", "page_id", "size", "data"}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.video_chunk_size = 1024 * 1024
        self._media_numbers = itertools.count(500000000000001)

    # --- what a platform provides -----------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_get(f"/{VERSION}/dialog/oauth", self._dialog)
        app.router.add_route("GET", f"/{VERSION}/oauth/access_token", self._access_token)
        app.router.add_route("POST", f"/{VERSION}/oauth/access_token", self._access_token)
        app.router.add_get(f"/{VERSION}/me/accounts", self._accounts)
        app.router.add_post(f"/{VERSION}/{{page_id:[0-9]+}}/feed", self._create_post)
        app.router.add_post(f"/{VERSION}/{{page_id:[0-9]+}}/photos", self._photo)
        app.router.add_post(f"/{VERSION}/{{page_id:[0-9]+}}/videos", self._video)
        app.router.add_get(f"/{VERSION}/{{page_id:[0-9]+}}/feed", self._posts)
        app.router.add_get(f"/{VERSION}/{{page_id:[0-9]+}}/published_posts", self._posts)
        app.router.add_route("*", "/{path:.*}", self._unknown)

    def rate_limited(self) -> web.Response:
        """Graph's throttle: the code's message, and the usage header Meta sends with it. The
        app-level throttle (4) reports usage percentages only, no time to regain access."""
        code = self.throttle_code
        minutes = math.ceil(self.faults.retry_after / 60)
        if code == 4:
            usage = {"call_count": 100, "total_cputime": 31, "total_time": 42}
            headers = {"X-App-Usage": json.dumps(usage)}
        else:
            usage_case = {"type": "pages", "call_count": 100, "total_cputime": 23,
                          "total_time": 35, "estimated_time_to_regain_access": minutes}
            headers = {"X-Business-Use-Case-Usage": json.dumps({PAGE_ID: [usage_case]})}
        return graph_error(400, THROTTLES.get(code, f"(#{code}) Rate limited"), code,
                           transient=True, headers=headers)

    def server_error(self, status: int) -> web.Response:
        return graph_error(status, "An unexpected error has occurred. Please retry your "
                           "request later.", 2, transient=True)

    def token_expired(self) -> web.Response:
        now = time.strftime("%A, %d-%b-%y %H:%M:%S PDT")
        return graph_error(400, f"Error validating access token: Session has expired on "
                           f"{now}. The current time is {now}.", 190, subcode=463,
                           headers={"WWW-Authenticate": 'OAuth "Facebook Platform" '
                                                        '"invalid_token"'})

    def account(self) -> dict[str, Any]:
        return {
            "platform": "facebook",
            "name": "emulated-facebook-page",
            "config": {"api_base": self.base_url, "auth_base": self.base_url,
                       "video_api_base": self.base_url, "page_id": PAGE_ID},
            "credentials": {"page_access_token": self.page_token(PAGE_ID)},
        }

    # --- tokens -----------------------------------------------------------------------------

    def _issue(self, kind: str, subject: str, scope: str, ttl: float) -> str:
        grant = self.tokens.issue(subject, scope)
        grant.expires_at = time.time() + ttl
        self.kinds[grant.access_token] = kind
        return grant.access_token

    def page_token(self, page_id: str, scope: str = ALL_SCOPES, ttl: float = FOREVER) -> str:
        """A Page token as `me/accounts` hands out from a long-lived user token."""
        return self._issue("page", page_id, scope, ttl)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "received": self.received,
                "media": [{"id": k, **{f: v for f, v in m.items() if f != "data"}}
                          for k, m in self.media.items()]}

    # --- requests ---------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, Any]:
        """Graph takes parameters in the query, a form or a JSON body, merged; a JSON body that
        is not an object adds none."""
        if request.content_type == "multipart/form-data":
            parts = await form_parts(request) or []
            params: dict[str, Any] | None = {
                **request.query, **{p.name: p.text() for p in parts if p.filename is None}}
        else:
            params = await request_params(request)
        if params is None:
            params = dict(request.query)
        self.received.append({"method": request.method, "path": request.path,
                              "params": {k: v for k, v in params.items() if isinstance(v, str)},
                              "authorization": request.headers.get("Authorization")})
        return params

    def _authenticate(self, request: web.Request, params: dict[str, Any]
                      ) -> tuple[str, str, str] | web.Response:
        """(token, kind, subject), or Graph's refusal."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        token = value.strip() if scheme in ("Bearer", "OAuth") else params.get("access_token")
        if not isinstance(token, str) or not token:
            return graph_error(400, "An access token is required to request this resource.",
                               104)
        status = self.tokens.check(token)
        if status == "expired":
            return self.token_expired()
        if status == "invalid":
            return graph_error(400, "Invalid OAuth access token - Cannot parse access token",
                               190)
        return token, self.kinds.get(token, "user"), self.tokens.subject(token)

    async def _page_access(self, request: web.Request, permission: str, denial: str
                           ) -> tuple[dict[str, Any], str] | web.StreamResponse:
        """The parameters and Page token of a call on the path's Page, or the answer instead:
        a scripted fault (`guard`), or Graph's refusal of a token without `permission` there."""
        fault = await self.guard(request)
        if fault is not None:
            return fault
        page_id = request.match_info["page_id"]
        params = await self._params(request)
        who = self._authenticate(request, params)
        if isinstance(who, web.Response):
            return who
        token, kind, subject = who
        if page_id not in PAGES:
            return graph_error(400, f"Unsupported {request.method.lower()} request. Object "
                               f"with ID '{page_id}' does not exist, cannot be loaded due to "
                               f"missing permissions, or does not support this operation.",
                               100, subcode=33, kind="GraphMethodException")
        scope = self.tokens.by_access[token].scope.split(",")
        if kind != "page" or subject != page_id or permission not in scope:
            return graph_error(403, denial, 200)
        return params, token

    async def _dialog(self, request: web.Request) -> web.Response:
        query = request.query
        unknown = [p for p in query.get("scope", "").replace(" ", ",").split(",")
                   if p and p not in PERMISSIONS]
        if unknown:
            return web.Response(status=400, content_type="text/html",
                                text=f"<h1>Invalid Scopes: {', '.join(unknown)}</h1>")
        if query.get("code_challenge") and query.get("code_challenge_method") != "S256":
            return web.Response(status=400, content_type="text/html",
                                text="<h1>Invalid code_challenge_method</h1>")
        location, reason = self.auth.authorize(query)
        if location is None:
            return web.Response(status=400, content_type="text/html",
                                text=f"<h1>Facebook Login: {reason}</h1>")
        raise web.HTTPFound(location)

    async def _access_token(self, request: web.Request) -> web.StreamResponse:
        fault = await self.guard(request)
        if fault is not None:
            return fault
        params = await self._params(request)
        client_id = params.get("client_id")
        client = self.auth.clients.get(client_id) if isinstance(client_id, str) else None
        if client is None:
            return graph_error(400, "Error validating application. Invalid application ID.",
                               101)
        secret = params.get("client_secret")
        if secret is not None and secret != client[0]:
            return graph_error(400, "Error validating client secret.", 1)
        if params.get("grant_type") == "fb_exchange_token":
            return self._extend(params, secret)
        return self._redeem(params, client_id or "", secret)

    def _extend(self, params: dict[str, Any], secret: Any) -> web.Response:
        """A long-lived user token for a short-lived one (Facebook's only "refresh")."""
        self.tokens.refresh_calls += 1
        if secret is None:
            return graph_error(400, "Missing client_secret parameter.", 100)
        token = params.get("fb_exchange_token")
        if not isinstance(token, str) or self.tokens.check(token) != "ok" or (
                self.kinds.get(token) != "user") or self.tokens.refusing:
            return graph_error(400, "Error validating access token: The session has been "
                               "invalidated because the user changed their password or "
                               "Facebook has changed the session for security reasons.",
                               190, subcode=460)
        grant = self.tokens.by_access[token]
        long_lived = self._issue("user", grant.subject, grant.scope, LONG_TTL)
        return web.json_response({"access_token": long_lived, "token_type": "bearer",
                                  "expires_in": int(LONG_TTL)})

    def _redeem(self, params: dict[str, Any], client_id: str, secret: Any) -> web.Response:
        for name in ("redirect_uri", "code"):
            if not params.get(name):
                return graph_error(400, f"Missing {name} parameter.", 100)
        verifier = params.get("code_verifier")
        if secret is None and not verifier:
            return graph_error(400, "Missing client_secret parameter.", 100)
        pending, reason = self.auth.redeem(
            str(params["code"]), client_id, secret if isinstance(secret, str) else None,
            str(params["redirect_uri"]), verifier if isinstance(verifier, str) else None)
        if pending is None:
            if "used" in reason:
                return graph_error(400, "This authorization code has been used.", 100,
                                   subcode=36009)
            if "redirect_uri" in reason:
                return graph_error(400, "Error validating verification code. Please make sure "
                                   "your redirect_uri is identical to the one you used in the "
                                   "OAuth dialog request", 100, subcode=36008)
            return graph_error(400, f"Invalid verification code: {reason}", 100,
                               subcode=36007)
        scope = pending.scope.replace(" ", ",") or "public_profile"
        token = self._issue("user", pending.subject, scope, SHORT_TTL)
        return web.json_response({"access_token": token, "token_type": "bearer",
                                  "expires_in": int(SHORT_TTL)})

    async def _accounts(self, request: web.Request) -> web.StreamResponse:
        fault = await self.guard(request)
        if fault is not None:
            return fault
        params = await self._params(request)
        who = self._authenticate(request, params)
        if isinstance(who, web.Response):
            return who
        token, kind, _subject = who
        if kind != "user":
            return graph_error(400, "(#100) Tried accessing nonexisting field (accounts) on "
                               "node type (Page)", 100)
        grant = self.tokens.by_access[token]
        if "pages_show_list" not in grant.scope.split(","):
            return web.json_response({"data": []})
        # A Page token lives as long as the user token it came from; from a long-lived one,
        # for ever.
        lifetime = grant.expires_at - time.time()
        ttl = FOREVER if lifetime > SHORT_TTL else lifetime
        rows = [{"access_token": self._issue("page", page_id, grant.scope, ttl),
                 "category": "Software", "category_list": [{"id": "2211", "name": "Software"}],
                 "name": name, "id": page_id,
                 "tasks": ["ANALYZE", "ADVERTISE", "MESSAGING", "MODERATE", "CREATE_CONTENT",
                           "MANAGE"]}
                for page_id, name in PAGES.items()]
        return self._listing(request, params, rows, default_fields="access_token,category,"
                             "category_list,name,id,tasks")

    async def _create_post(self, request: web.Request) -> web.StreamResponse:
        access = await self._page_access(
            request, "pages_manage_posts",
            "(#200) If posting to a page, requires both pages_read_engagement and "
            "pages_manage_posts as an admin with sufficient administrative permission")
        if isinstance(access, web.StreamResponse):
            return access
        params, token = access
        page_id = request.match_info["page_id"]
        attached = self._attached_media(params, page_id)
        if isinstance(attached, web.Response):
            return attached
        message = params.get("message")
        if not isinstance(message, str) or not message.strip():
            if not params.get("link") and not attached:
                return graph_error(400, "(#100) Missing message or attachment", 100)
            message = ""
        if utf16_units(message) > MAX_MESSAGE:
            return graph_error(400, f"(#100) Param message must be at most {MAX_MESSAGE} "
                               f"characters long", 100)
        post_id = f"{page_id}_{next(self._post_numbers)}"
        for media_id in attached:
            self.media[media_id]["attached_to"] = post_id
        self.record(message, id=post_id, page_id=page_id, access_token=token, media=attached)
        return self.answer_lost(request, web.json_response({"id": post_id}))

    def _attached_media(self, params: dict[str, Any], page_id: str) -> list[str] | web.Response:
        """`attached_media[n]` in order: each an unpublished photo of the Page, unattached."""
        found: list[str] = []
        for n in itertools.count():
            value = params.get(f"attached_media[{n}]")
            if value is None:
                return found
            try:
                media_id = str(json.loads(str(value)).get("media_fbid"))
            except (ValueError, AttributeError):
                media_id = ""
            media = self.media.get(media_id)
            if media is None or media["page_id"] != page_id or media["published"] or media.get(
                    "attached_to"):
                return graph_error(400, f"(#100) param attached_media[{n}] must be a valid "
                                   f"unpublished photo of this Page", 100)
            found.append(media_id)
        return found

    async def _photo(self, request: web.Request) -> web.StreamResponse:
        access = await self._page_access(
            request, "pages_manage_posts",
            "(#200) If posting to a page, requires both pages_read_engagement and "
            "pages_manage_posts as an admin with sufficient administrative permission")
        if isinstance(access, web.StreamResponse):
            return access
        params, token = access
        page_id = request.match_info["page_id"]
        files = [p for p in await form_parts(request) or []
                 if p.name == "source" and p.filename is not None]
        if not files:
            return graph_error(400, "(#324) Requires upload file", 324)
        source = files[0]
        content_type = (source.content_type or "").split(";")[0]
        if content_type not in PHOTO_TYPES or len(source.data) > MAX_PHOTO_BYTES:
            return graph_error(400, "(#324) Missing or invalid image file", 324)
        published = str(params.get("published", "true")).lower() != "false"
        message = str(params.get("message") or "")
        media_id = str(next(self._media_numbers))
        self.media[media_id] = self._file(source, "photo", page_id, published=published,
                                          alt_text=params.get("alt_text_custom"))
        if not published:
            return self.answer_lost(request, web.json_response({"id": media_id}))
        post_id = f"{page_id}_{next(self._post_numbers)}"
        self.media[media_id]["attached_to"] = post_id
        self.record(message, id=post_id, page_id=page_id, access_token=token, media=[media_id])
        return self.answer_lost(request, web.json_response({"id": media_id,
                                                            "post_id": post_id}))

    @staticmethod
    def _file(part: FormPart, kind: str, page_id: str, **details: Any) -> dict[str, Any]:
        return {"kind": kind, "page_id": page_id, "content_type": part.content_type,
                "size": len(part.data), "sha256": hashlib.sha256(part.data).hexdigest(),
                **details}

    async def _video(self, request: web.Request) -> web.StreamResponse:
        access = await self._page_access(
            request, "pages_manage_posts",
            "(#200) If posting to a page, requires both pages_read_engagement and "
            "pages_manage_posts as an admin with sufficient administrative permission")
        if isinstance(access, web.StreamResponse):
            return access
        params, token = access
        page_id = request.match_info["page_id"]
        phase = params.get("upload_phase")
        if phase == "start":
            size = str(params.get("file_size", ""))
            if not size.isdigit() or int(size) <= 0:
                return graph_error(400, "(#100) file_size must be a positive integer", 100)
            session_id = str(next(self._media_numbers))
            video_id = str(next(self._media_numbers))
            self.sessions[session_id] = {"video_id": video_id, "page_id": page_id,
                                         "size": int(size), "data": bytearray()}
            return self.answer_lost(request, web.json_response({
                "upload_session_id": session_id, "video_id": video_id, "start_offset": "0",
                "end_offset": str(min(self.video_chunk_size, int(size)))}))
        session = self.sessions.get(str(params.get("upload_session_id")))
        if session is None or session["page_id"] != page_id:
            return graph_error(400, "(#6000) There was a problem uploading your video file. "
                               "Please try again.", 6000, subcode=1363019)
        data: bytearray = session["data"]
        if phase == "transfer":
            start = str(params.get("start_offset", ""))
            chunks = [p for p in await form_parts(request) or []
                      if p.name == "video_file_chunk" and p.filename is not None]
            expected = min(len(data) + self.video_chunk_size, session["size"]) - len(data)
            if not chunks or start != str(len(data)) or len(chunks[0].data) != expected:
                return graph_error(400, "(#6001) There was a problem uploading your video. "
                                   "Please try again.", 6001, subcode=1363037)
            data += chunks[0].data
            nxt = min(len(data) + self.video_chunk_size, session["size"])
            return self.answer_lost(request, web.json_response({
                "start_offset": str(len(data)), "end_offset": str(nxt)}))
        if phase == "finish":
            if len(data) != session["size"] or session.get("finished"):
                return graph_error(400, "(#6000) There was a problem uploading your video "
                                   "file. Please try again.", 6000, subcode=1363019)
            session["finished"] = True
            video_id = session["video_id"]
            self.media[video_id] = {"kind": "video", "page_id": page_id, "size": len(data),
                                    "sha256": hashlib.sha256(bytes(data)).hexdigest(),
                                    "published": True}
            message = str(params.get("description") or "")
            self.record(message, id=f"{page_id}_{video_id}", page_id=page_id,
                        access_token=token, media=[video_id])
            return self.answer_lost(request, web.json_response({"success": True}))
        return graph_error(400, "(#100) upload_phase must be start, transfer or finish", 100)

    async def _posts(self, request: web.Request) -> web.StreamResponse:
        access = await self._page_access(
            request, "pages_read_engagement",
            "(#200) Requires pages_read_engagement permission to manage the object")
        if isinstance(access, web.StreamResponse):
            return access
        params, _token = access
        page_id = request.match_info["page_id"]
        bounds: dict[str, float] = {}
        for name in ("since", "until"):
            value = params.get(name)
            if value is None:
                continue
            try:
                bounds[name] = float(value)
            except (TypeError, ValueError):
                return graph_error(400, f"(#100) The parameter {name} is not a valid time", 100)
        rows = [
            {"id": post["id"], "message": post["text"], "created_time": created_time(post["at"]),
             "permalink_url": f"https://www.facebook.com/{page_id}/posts/"
                              f"{post['id'].split('_', 1)[1]}"}
            for post in reversed(self.posts)
            if post.get("page_id") == page_id and post["text"]
            and int(post["at"]) >= bounds.get("since", 0)
            and int(post["at"]) < bounds.get("until", math.inf)
        ]
        return self._listing(request, params, rows, default_fields="created_time,message,id")

    def _listing(self, request: web.Request, params: dict[str, Any],
                 rows: list[dict[str, Any]], default_fields: str) -> web.Response:
        """Graph's cursor paging over `rows`, each cut down to the requested `fields`."""
        fields = {f for f in str(params.get("fields") or default_fields).split(",") if f} | {
            "id"}
        try:
            limit = max(1, min(100, int(params.get("limit", 25))))
        except (TypeError, ValueError):
            return graph_error(400, "(#100) The parameter limit must be an integer", 100)
        start = 0
        if params.get("after"):
            position = _uncursor(str(params["after"]))
            if position is None:
                return graph_error(400, "(#100) Invalid cursor", 100)
            start = position + 1
        window = rows[start:start + limit]
        document: dict[str, Any] = {"data": [{k: v for k, v in row.items() if k in fields}
                                             for row in window]}
        if window:
            paging: dict[str, Any] = {"cursors": {"before": _cursor(start),
                                                  "after": _cursor(start + len(window) - 1)}}
            if start + len(window) < len(rows):
                query = {k: v for k, v in params.items() if isinstance(v, str)}
                query["after"] = paging["cursors"]["after"]
                paging["next"] = str(request.url.with_query(query))
            document["paging"] = paging
        return web.json_response(document)

    async def _unknown(self, request: web.Request) -> web.Response:
        return graph_error(400, f"Unknown path components: {request.path}", 2500)


EMULATOR = FacebookEmulator
