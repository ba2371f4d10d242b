"""LinkedIn as Herald meets it: the OAuth 2.0 pages on www.linkedin.com's paths
(`/oauth/v2/authorization`, `/oauth/v2/accessToken`; refresh tokens that keep the first
grant's 365-day lifetime and do not rotate), the OpenID Connect `/v2/userinfo`, and the
versioned Posts API (`POST /rest/posts`, `GET /rest/posts?q=author`) under the root URL.

It checks what LinkedIn checks: a bearer token with the right permission for the author, an
active `LinkedIn-Version` (YYYYMM, served for a year; an inactive one is 426
NONEXISTENT_VERSION), `X-Restli-Protocol-Version: 2.0.0`, the post body's fields and values,
URN query parameters encoded as Rest.li 2.0 wants, and no repeat of a recent commentary by the
same author (422 DUPLICATE_POST naming the earlier post). Errors carry LinkedIn's bodies
(`status`, `serviceErrorCode`, `code`, `message`); a 429 names the daily throttle and carries
no rate-limit header, as LinkedIn's does, so `faults.retry_after` has no unit to go in.

`commentary` is read as little text: escapes are undone, mentions and hashtags kept, and an
unescaped reserved character cuts the shown text there (LinkedIn's silent truncation). Each
post is recorded with the commentary as received, the text as shown, `mangled` when it was
cut, and the headers that matter. The default OAuth client is `herald-test-client` /
`herald-test-secret`; every member administers `ORGANIZATION`.

Media: the Images API (`POST /rest/images?action=initializeUpload` with an `owner` the token
may post for; one PUT of the bytes to the `uploadUrl`) and the Videos API (`POST
/rest/videos?action=initializeUpload` with `fileSizeBytes`, answered with `uploadInstructions`
of `video_part_size` byte ranges; each PUT must carry exactly its range and is answered with
an ETag; `finalizeUpload` must name every ETag in order). An asset is WAITING_UPLOAD, then
PROCESSING for `processing_polls` reads of `GET /rest/{images,videos}/{urn}`, then AVAILABLE.
A post's `content.media.id` (one image or video) or `content.multiImage.images` (2-20 images)
must name AVAILABLE assets of the post's author (422 otherwise). Each asset keeps its bytes'
SHA-256 (`assets` in `/_state`); `puts` counts the PUTs received.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
import string
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from aiohttp import web

from tests.emulators.platform import (
    AuthCodes,
    PlatformEmulator,
    TokenBook,
    json_object,
    oauth_error,
    utf16_units,
)

CLIENT_ID = "herald-test-client"
CLIENT_SECRET = "herald-test-secret"
ORGANIZATION = "urn:li:organization:2414183"
KNOWN_SCOPES = frozenset({
    "openid", "profile", "email", "w_member_social", "r_member_social",
    "w_organization_social", "r_organization_social", "rw_organization_admin",
})
ACCESS_TTL = 60 * 24 * 3600.0
REFRESH_TTL = 365 * 24 * 3600.0
MAX_COMMENTARY = 3000
RESERVED = frozenset("\\|{}@[]()<>#*_~")
POST_FIELDS = frozenset({
    "author", "commentary", "visibility", "distribution", "lifecycleState",
    "isReshareDisabledByAuthor", "content", "contentLandingPage", "contentCallToActionLabel",
    "container", "reshareContext", "adContext",
})
REQUIRED_FIELDS = ("author", "commentary", "visibility", "distribution", "lifecycleState")
VISIBILITY = frozenset({"PUBLIC", "CONNECTIONS", "LOGGED_IN", "CONTAINER"})
FEED = frozenset({"MAIN_FEED", "NONE"})
LIFECYCLE = frozenset({"PUBLISHED", "DRAFT"})
_MENTION = re.compile(r"@\[(?P<name>[^\]]*)\]\((?P<urn>urn:li:[A-Za-z]+:[^)\s]+)\)")
_HASHTAG_TEMPLATE = re.compile(r"\{hashtag\|(?P<sign>\\?#|\uff03)\|(?P<tag>[^|{}]+)\}")
_HASHTAG = re.compile(r"#\w+")


@dataclass
class Asset:
    """An image or video being uploaded: its ranges, the parts received, its state."""

    urn: str
    kind: str
    owner: str
    ranges: list[tuple[int, int]]
    upload_token: str = ""
    parts: dict[int, bytes] = field(default_factory=dict)
    etags: dict[int, str] = field(default_factory=dict)
    status: str = "WAITING_UPLOAD"
    polls_left: int = 0
    sha256: str = ""
    size: int = 0

    def state(self) -> dict[str, Any]:
        return {"urn": self.urn, "kind": self.kind, "owner": self.owner,
                "status": self.status, "sha256": self.sha256, "size": self.size,
                "parts": len(self.ranges)}

    def complete(self) -> None:
        data = b"".join(self.parts[n] for n in range(len(self.ranges)))
        self.sha256, self.size = hashlib.sha256(data).hexdigest(), len(data)


def li_error(status: int, message: str, *, code: str | None = None,
             service_code: int | None = None, **extra: Any) -> web.Response:
    """LinkedIn's error document."""
    body: dict[str, Any] = {"status": status, "message": message, **extra}
    if code is not None:
        body["code"] = code
    if service_code is not None:
        body["serviceErrorCode"] = service_code
    return web.json_response(body, status=status)


def shown(commentary: str) -> tuple[str, bool]:
    """(the text LinkedIn shows for this little text, whether it was cut short at an
    unescaped reserved character)."""
    out: list[str] = []
    i = 0
    while i < len(commentary):
        c = commentary[i]
        if c == "\\" and i + 1 < len(commentary):
            out.append(commentary[i + 1])
            i += 2
            continue
        element = (_MENTION.match(commentary, i) if c == "@" else
                   _HASHTAG_TEMPLATE.match(commentary, i) if c == "{" else
                   _HASHTAG.match(commentary, i) if c == "#" else None)
        if element is not None:
            groups = element.groupdict()
            out.append(groups.get("name") or (f"#{groups['tag']}" if "tag" in groups
                                              else element.group()))
            i = element.end()
            continue
        if c in RESERVED:
            return "".join(out), True
        out.append(c)
        i += 1
    return "".join(out), False


def months(version: str) -> int | None:
    match = re.fullmatch(r"(\d{4})(\d{2})(\.\d{2})?", version)
    if match is None or not 1 <= int(match[2]) <= 12:
        return None
    return int(match[1]) * 12 + int(match[2]) - 1


class LinkedInEmulator(PlatformEmulator):
    platform = "linkedin"
    #: Room for a video part, or a whole image.
    client_max_size = 64 * 1024 * 1024

    def __init__(self) -> None:
        super().__init__()
        self.tokens = TokenBook(access_ttl=ACCESS_TTL, rotate=False)
        self.auth = AuthCodes(require_pkce=False, code_ttl=30 * 60.0)
        self.auth.register(CLIENT_ID, CLIENT_SECRET)
        #: Refresh tokens are issued to approved partners only; this emulator's app is one.
        self.partner = True
        #: How long LinkedIn refuses the same commentary again from the same author.
        self.duplicate_seconds = 24 * 3600.0
        self.userinfo_calls = 0
        self.refresh_issued: dict[str, float] = {}
        self.members: dict[str, str] = {}
        self._post_ids = itertools.count(7_400_000_000_000_000_001)
        self.assets: dict[str, Asset] = {}
        #: Bytes per range of a video's `uploadInstructions` (LinkedIn's are 4 MB).
        self.video_part_size = 4 * 1024 * 1024
        #: Status reads an uploaded asset stays PROCESSING for.
        self.processing_polls = 2
        self.puts = 0
        self._asset_ids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/oauth/v2/authorization", self._authorize)
        app.router.add_post("/oauth/v2/accessToken", self._token)
        app.router.add_get("/v2/userinfo", self._userinfo)
        app.router.add_post("/rest/posts", self._post)
        app.router.add_get("/rest/posts", self._get)
        app.router.add_post("/rest/images", self._initialize_or_finalize)
        app.router.add_post("/rest/videos", self._initialize_or_finalize)
        app.router.add_get("/rest/images/{urn}", self._asset)
        app.router.add_get("/rest/videos/{urn}", self._asset)
        app.router.add_put("/dms-uploads/{asset}/{part}", self._put)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "assets": [a.state() for a in self.assets.values()],
                "puts": self.puts}

    # --- the platform's own answers ---------------------------------------------------------

    def rate_limited(self) -> web.Response:
        return li_error(429, "Resource level throttle APPLICATION_AND_MEMBER DAY limit for "
                             "calls to this resource is reached.",
                        code="TOO_MANY_REQUESTS", service_code=101)

    def server_error(self, status: int) -> web.Response:
        return li_error(status, "Service Unavailable" if status == 503
                        else "Internal Server Error")

    def token_expired(self) -> web.Response:
        return li_error(401, "The token used in the request has expired",
                        code="EXPIRED_ACCESS_TOKEN", service_code=65601)

    def account(self, *, refresh_token: bool = True,
                scope: str = "openid profile w_member_social r_member_social"
                ) -> dict[str, Any]:
        member = self._new_member()
        grant = self.tokens.issue(member, scope)
        credentials: dict[str, Any] = {
            "access_token": grant.access_token,
            "expires_at": datetime.fromtimestamp(grant.expires_at, UTC).isoformat(
                timespec="seconds").replace("+00:00", "Z")}
        if refresh_token and grant.refresh_token:
            self.refresh_issued[grant.refresh_token] = time.time()
            credentials["refresh_token"] = grant.refresh_token
        elif grant.refresh_token:
            self.tokens.by_refresh.pop(grant.refresh_token, None)
        return {
            "platform": "linkedin", "name": "linkedin-emulator",
            "config": {"api_base": self.base_url, "auth_base": self.base_url,
                       "author_urn": f"urn:li:person:{member}"},
            "credentials": credentials,
        }

    # --- OAuth ------------------------------------------------------------------------------

    def _new_member(self) -> str:
        alphabet = string.ascii_letters + string.digits
        member = "".join(secrets.choice(alphabet) for _ in range(10))
        self.members[member] = f"urn:li:person:{member}"
        return member

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        unknown = sorted(set(query.get("scope", "").replace(",", " ").split()) - KNOWN_SCOPES)
        if unknown and query.get("client_id") in self.auth.clients and query.get("redirect_uri"):
            params = {"error": "unauthorized_scope_error",
                      "error_description": f"Scope \"{unknown[0]}\" is not authorized for your "
                                           f"application", "state": query.get("state", "")}
            return web.Response(status=302, headers={
                "Location": f"{query['redirect_uri']}?{urlencode(params)}"})
        location, reason = (None, "scope is required") if not query.get("scope") else (
            self.auth.authorize(query))
        if location is None:
            return web.Response(status=400, content_type="text/html",
                                text=f"<html><body><h1>Bummer, something went wrong.</h1>"
                                     f"<p>{reason}</p></body></html>")
        return web.Response(status=302, headers={"Location": location})

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if not isinstance(client_id, str) or not isinstance(client_secret, str):
            return oauth_error(401, "invalid_client", "Client authentication failed")
        client = self.auth.clients.get(client_id)
        if client is None or client[0] != client_secret:
            return oauth_error(401, "invalid_client", "Client authentication failed")
        grant_type = form.get("grant_type")
        now = time.time()
        if grant_type == "authorization_code":
            code, redirect_uri = form.get("code"), form.get("redirect_uri")
            pending, _reason = self.auth.redeem(
                code if isinstance(code, str) else None, client_id, client_secret,
                redirect_uri if isinstance(redirect_uri, str) else None, None)
            if pending is None:
                return oauth_error(400, "invalid_request",
                                   "Unable to retrieve access token: appid/redirect uri/code "
                                   "verifier does not match authorization code. Or "
                                   "authorization code expired.")
            grant = self.tokens.issue(self._new_member(), pending.scope.replace(",", " "))
            if grant.refresh_token:
                self.refresh_issued[grant.refresh_token] = now
        elif grant_type == "refresh_token":
            token = form.get("refresh_token")
            issued = self.refresh_issued.get(token if isinstance(token, str) else "", 0.0)
            renewed = (self.tokens.refresh(token if isinstance(token, str) else None)
                       if now - issued < REFRESH_TTL else None)
            if renewed is None:
                return oauth_error(400, "invalid_grant", "The provided authorization grant "
                                   "or refresh token is invalid, expired or revoked.")
            grant = renewed
        else:
            return oauth_error(400, "unsupported_grant_type", "grant_type is not supported")
        answer: dict[str, Any] = {"access_token": grant.access_token,
                                  "expires_in": int(ACCESS_TTL), "scope": grant.scope}
        if self.partner and grant.refresh_token:
            issued = self.refresh_issued.get(grant.refresh_token, now)
            answer["refresh_token"] = grant.refresh_token
            answer["refresh_token_expires_in"] = int(REFRESH_TTL - (now - issued))
        elif grant.refresh_token:
            self.tokens.by_refresh.pop(grant.refresh_token, None)
        return web.json_response(answer)

    # --- the API ----------------------------------------------------------------------------

    async def _authenticate(self, request: web.Request
                            ) -> tuple[str, set[str], web.StreamResponse | None]:
        """The token's member and scopes, or the answer instead: a scripted fault (`guard`),
        an expired token's 401 or an unknown token's."""
        fault = await self.guard(request)
        if fault is not None:
            return "", set(), fault
        grant, state = self.bearer_grant(request)
        if state == "expired":
            return "", set(), self.token_expired()
        if grant is None:
            return "", set(), li_error(401, "Invalid access token", code="INVALID_ACCESS_TOKEN",
                                       service_code=65600)
        return grant.subject, set(grant.scope.split()), None

    @staticmethod
    def _versioned(request: web.Request) -> web.Response | None:
        version = request.headers.get("LinkedIn-Version")
        if not version:
            return li_error(400, "A version must be present. Please specify a version by "
                                 "adding the LinkedIn-Version header.", code="VERSION_MISSING")
        now = datetime.now(UTC)
        current = now.year * 12 + now.month - 1
        asked = months(version)
        if asked is None or not current - 12 <= asked <= current:
            return li_error(426, f"Requested version {version} is not active",
                            code="NONEXISTENT_VERSION")
        if request.headers.get("X-Restli-Protocol-Version") != "2.0.0":
            return li_error(400, "X-Restli-Protocol-Version 2.0.0 is required for this "
                                 "resource", code="ILLEGAL_ARGUMENT")
        return None

    @staticmethod
    def _denied(operation: str) -> web.Response:
        return li_error(403, f"Not enough permissions to access: {operation}",
                        code="ACCESS_DENIED", service_code=100)

    @staticmethod
    def _may(member: str, scopes: set[str], author: str, *, write: bool) -> bool:
        if author == f"urn:li:person:{member}":
            return ("w_member_social" if write else "r_member_social") in scopes
        if author == ORGANIZATION:
            return ("w_organization_social" if write else "r_organization_social") in scopes
        return False

    @staticmethod
    def _body_problem(body: Any) -> web.Response | None:
        if not isinstance(body, dict):
            return li_error(400, "Request body must be a JSON object")
        unknown = sorted(set(body) - POST_FIELDS)
        if unknown:
            fields = ", ".join("/" + k for k in unknown)
            return li_error(400, "Unpermitted fields present in REQUEST_BODY: Data Processing "
                                 f"Exception while processing fields [{fields}]")
        problems = [f"ERROR :: /{k} :: field is required but not found and has no default "
                    f"value" for k in REQUIRED_FIELDS if k not in body]
        for key, kind in (("author", str), ("commentary", str), ("visibility", str),
                          ("lifecycleState", str), ("distribution", dict)):
            if key in body and not isinstance(body[key], kind):
                problems.append(f"ERROR :: /{key} :: {type(body[key]).__name__} is not a "
                                f"{kind.__name__}")
        if "isReshareDisabledByAuthor" in body and not isinstance(
                body["isReshareDisabledByAuthor"], bool):
            problems.append("ERROR :: /isReshareDisabledByAuthor :: not a boolean")
        if isinstance(body.get("visibility"), str) and body["visibility"] not in VISIBILITY:
            problems.append(f"ERROR :: /visibility :: \"{body['visibility']}\" is not an enum "
                            f"symbol")
        if isinstance(body.get("lifecycleState"), str) and body["lifecycleState"] not in LIFECYCLE:
            problems.append(f"ERROR :: /lifecycleState :: \"{body['lifecycleState']}\" is not "
                            f"an enum symbol")
        distribution = body.get("distribution")
        if isinstance(distribution, dict):
            if distribution.get("feedDistribution") not in FEED:
                problems.append("ERROR :: /distribution/feedDistribution :: field is required "
                                "and must be MAIN_FEED or NONE")
            for key in ("targetEntities", "thirdPartyDistributionChannels"):
                if key in distribution and not isinstance(distribution[key], list):
                    problems.append(f"ERROR :: /distribution/{key} :: not an array")
        if isinstance(body.get("author"), str) and not re.fullmatch(
                r"urn:li:(person|organization):[A-Za-z0-9_\-]+", body["author"]):
            problems.append(f"ERROR :: /author :: \"{body['author']}\" is not a valid URN")
        if problems:
            return li_error(422, "\n".join(problems) + "\n")
        return None

    async def _post(self, request: web.Request) -> web.StreamResponse:
        """A create, or a finder sent through query tunnelling (the query as a form body)."""
        override = request.headers.get("X-HTTP-Method-Override")
        if override is None:
            return await self._create(request)
        if override.upper() != "GET" or not request.headers.get(
                "Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return li_error(400, "Query tunnelling takes X-HTTP-Method-Override: GET and an "
                                 "application/x-www-form-urlencoded body",
                            code="ILLEGAL_ARGUMENT")
        return await self._find(request, await request.text())

    async def _get(self, request: web.Request) -> web.StreamResponse:
        return await self._find(request, request.rel_url.raw_query_string)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        member, scopes, refusal = await self._authenticate(request)
        if refusal is not None:
            return refusal
        refusal = self._versioned(request)
        if refusal is not None:
            return refusal
        try:
            body = await request.json()
        except ValueError:
            return li_error(400, "Request body is not valid JSON")
        refusal = self._body_problem(body)
        if refusal is not None:
            return refusal
        author, commentary = body["author"], body["commentary"]
        if not self._may(member, scopes, author, write=True):
            return self._denied("partnerApiPostsExternal.CREATE.20260901")
        media = self._content_media(body.get("content"), author)
        if isinstance(media, web.Response):
            return media
        text, mangled = shown(commentary)
        if utf16_units(text) > MAX_COMMENTARY:
            return li_error(422, f"ERROR :: /commentary :: length {utf16_units(text)} exceeds the "
                                 f"maximum of {MAX_COMMENTARY}\n")
        now = time.time()
        for earlier in self.posts:
            if (earlier["author"] == author and earlier["commentary"] == commentary
                    and earlier["at"] > now - self.duplicate_seconds):
                return web.json_response({
                    "errorDetailType": "com.linkedin.common.error.BadRequest",
                    "message": "com.linkedin.content.common.exception."
                               f"BadRequestResponseException: Content is a duplicate of "
                               f"{earlier['id']}",
                    "errorDetails": {"inputErrors": [{
                        "description": "Duplicate post is detected", "input": {},
                        "code": "DUPLICATE_POST"}]},
                    "status": 422}, status=422)
        urn = f"urn:li:share:{next(self._post_ids)}"
        self.record(text, id=urn, author=author, commentary=commentary, mangled=mangled,
                    body=body, created_ms=int(now * 1000), media=media, headers={
                        k: request.headers.get(k, "") for k in (
                            "LinkedIn-Version", "X-Restli-Protocol-Version", "Content-Type")})
        response = web.Response(status=201, headers={"x-restli-id": urn, "x-linkedin-id": urn})
        return self.answer_lost(request, response)

    # --- media ------------------------------------------------------------------------------

    def _content_media(self, content: Any, author: str) -> list[str] | web.Response:
        """The URNs a post's `content` names, each an AVAILABLE asset of the author."""
        if content is None:
            return []
        if not isinstance(content, dict) or len(content) != 1:
            return li_error(422, "ERROR :: /content :: must have exactly one member\n")
        if "media" in content:
            media = content["media"]
            urns = [media.get("id")] if isinstance(media, dict) else [None]
        elif "multiImage" in content:
            images = content["multiImage"].get("images") if isinstance(
                content["multiImage"], dict) else None
            if not isinstance(images, list) or not 2 <= len(images) <= 20:
                return li_error(422, "ERROR :: /content/multiImage/images :: must have 2 to "
                                     "20 images\n")
            urns = [i.get("id") if isinstance(i, dict) else None for i in images]
            if not all(isinstance(u, str) and u.startswith("urn:li:image:") for u in urns):
                return li_error(422, "ERROR :: /content/multiImage/images :: only images\n")
        else:
            return li_error(422, f"ERROR :: /content :: {next(iter(content))} is not "
                                 f"supported here\n")
        for urn in urns:
            asset = self.assets.get(urn) if isinstance(urn, str) else None
            if asset is None or asset.owner != author:
                return li_error(422, f"ERROR :: /content :: {urn} does not exist or is not "
                                     f"the author's\n")
            if asset.status != "AVAILABLE":
                return li_error(422, f"ERROR :: /content :: {urn} is {asset.status}, not "
                                     f"AVAILABLE\n")
        return [str(u) for u in urns]

    async def _initialize_or_finalize(self, request: web.Request) -> web.StreamResponse:
        member, scopes, refusal = await self._authenticate(request)
        if refusal is not None:
            return refusal
        refusal = self._versioned(request)
        if refusal is not None:
            return refusal
        kind = "image" if request.path.endswith("/images") else "video"
        action = request.query.get("action")
        body = await json_object(request)
        if body is None:
            return li_error(400, "Request body must be a JSON object")
        if action == "initializeUpload":
            return self._initialize(request, member, scopes, kind, body)
        if action == "finalizeUpload" and kind == "video":
            return self._finalize(request, member, body)
        return li_error(400, "Resource method could not be resolved from request parameters.",
                        code="ILLEGAL_ARGUMENT")

    def _initialize(self, request: web.Request, member: str, scopes: set[str], kind: str,
                    body: dict[str, Any]) -> web.StreamResponse:
        init = body.get("initializeUploadRequest")
        owner = init.get("owner") if isinstance(init, dict) else None
        if not isinstance(owner, str):
            return li_error(422, "ERROR :: /initializeUploadRequest/owner :: field is "
                                 "required but not found and has no default value\n")
        if not self._may(member, scopes, owner, write=True):
            return self._denied(f"{kind}s.ACTION-initializeUpload")
        asset_id = f"C4E{next(self._asset_ids):07d}"
        urn = f"urn:li:{kind}:{asset_id}"
        expires = int((time.time() + 24 * 3600) * 1000)
        if kind == "image":
            asset = Asset(urn, kind, owner, [(0, -1)])
            self.assets[urn] = asset
            return self.answer_lost(request, web.json_response({"value": {
                "uploadUrlExpiresAt": expires, "image": urn,
                "uploadUrl": f"{self.base_url}/dms-uploads/{asset_id}/0?ca=vector_feedshare"
                             f"&sig={secrets.token_urlsafe(8)}"}}))
        assert isinstance(init, dict)
        size = init.get("fileSizeBytes")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            return li_error(422, "ERROR :: /initializeUploadRequest/fileSizeBytes :: field is "
                                 "required and must be a positive integer\n")
        step = self.video_part_size
        ranges = [(first, min(first + step, size) - 1) for first in range(0, size, step)]
        asset = Asset(urn, kind, owner, ranges, upload_token=secrets.token_hex(8))
        self.assets[urn] = asset
        return self.answer_lost(request, web.json_response({"value": {
            "uploadUrlsExpireAt": expires, "video": urn, "uploadToken": asset.upload_token,
            "uploadInstructions": [
                {"uploadUrl": f"{self.base_url}/dms-uploads/{asset_id}/{n}"
                              f"?sig={secrets.token_urlsafe(8)}",
                 "firstByte": first, "lastByte": last}
                for n, (first, last) in enumerate(ranges)]}}))

    def _finalize(self, request: web.Request, member: str, body: dict[str, Any]
                  ) -> web.StreamResponse:
        final = body.get("finalizeUploadRequest")
        final = final if isinstance(final, dict) else {}
        asset = self.assets.get(str(final.get("video")))
        if asset is None or asset.owner not in (f"urn:li:person:{member}", ORGANIZATION):
            return li_error(404, "Not Found", code="NOT_FOUND")
        if asset.status != "WAITING_UPLOAD":
            return li_error(400, f"{asset.urn} is already finalized", code="ILLEGAL_ARGUMENT")
        expected = [asset.etags.get(n) for n in range(len(asset.ranges))]
        if final.get("uploadToken") != asset.upload_token or final.get(
                "uploadedPartIds") != expected or None in expected:
            return li_error(400, "uploadedPartIds do not match the parts uploaded",
                            code="ILLEGAL_ARGUMENT")
        asset.complete()
        asset.status, asset.polls_left = "PROCESSING", self.processing_polls
        return self.answer_lost(request, web.Response(status=200))

    async def _put(self, request: web.Request) -> web.StreamResponse:
        fault = await self.guard(request)
        if fault is not None:
            return fault
        self.puts += 1
        grant, _state = self.bearer_grant(request)
        if grant is None:
            return li_error(401, "Invalid access token", code="INVALID_ACCESS_TOKEN")
        asset = next((a for a in self.assets.values()
                      if a.urn.endswith(":" + request.match_info["asset"])), None)
        part = request.match_info["part"]
        if asset is None or not part.isdigit() or int(part) >= len(asset.ranges):
            return web.Response(status=404)
        if asset.status != "WAITING_UPLOAD":
            return li_error(400, "The upload is already complete")
        data = await request.read()
        first, last = asset.ranges[int(part)]
        if last >= 0 and len(data) != last + 1 - first:
            return li_error(400, f"Part {part} must be {last + 1 - first} bytes, got "
                                 f"{len(data)}")
        if not data:
            return li_error(400, "Empty upload")
        asset.parts[int(part)] = data
        etag = hashlib.md5(data).hexdigest()  # an ETag, not a secret
        asset.etags[int(part)] = etag
        if asset.kind == "image":
            asset.complete()
            asset.status, asset.polls_left = "PROCESSING", self.processing_polls
        return self.answer_lost(request, web.Response(status=201, headers={"ETag": etag}))

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        member, scopes, refusal = await self._authenticate(request)
        if refusal is not None:
            return refusal
        refusal = self._versioned(request)
        if refusal is not None:
            return refusal
        asset = self.assets.get(request.match_info["urn"])
        if asset is None or not self._may(member, scopes, asset.owner, write=True):
            return li_error(404, "Not Found", code="NOT_FOUND")
        if asset.status == "PROCESSING":
            asset.polls_left -= 1
            if asset.polls_left < 0:
                asset.status = "AVAILABLE"
        document: dict[str, Any] = {"id": asset.urn, "owner": asset.owner,
                                    "status": asset.status}
        if asset.status == "AVAILABLE":
            document["downloadUrl"] = f"{self.base_url}/dms/{asset.urn}"
        return web.json_response(document)

    async def _find(self, request: web.Request, raw: str) -> web.StreamResponse:
        member, scopes, refusal = await self._authenticate(request)
        if refusal is not None:
            return refusal
        refusal = self._versioned(request)
        if refusal is not None:
            return refusal
        query = {k: v[0] for k, v in parse_qs(raw).items()}
        if query.get("q") != "author" or "author" not in query:
            return li_error(400, "Resource method could not be resolved from request "
                                 "parameters.", code="ILLEGAL_ARGUMENT")
        if "author=urn:" in raw:
            return li_error(400, "Invalid value for query parameter author: a URN must be "
                                 "URL-encoded under Rest.li protocol 2.0.0",
                            code="ILLEGAL_ARGUMENT")
        author = query["author"]
        if not self._may(member, scopes, author, write=False):
            return self._denied("partnerApiPostsExternal.FINDER-author.20260901")
        count, start = query.get("count", "10"), query.get("start", "0")
        if not (count.isdigit() and start.isdigit()) or not 1 <= int(count) <= 100:
            return li_error(400, "count must be between 1 and 100 and start a non-negative "
                                 "integer", code="ILLEGAL_ARGUMENT")
        posts = sorted((p for p in self.posts if p["author"] == author),
                       key=lambda p: p["created_ms"], reverse=True)
        page = posts[int(start):int(start) + int(count)]
        elements = [{
            "id": p["id"], "author": p["author"], "commentary": p["commentary"],
            "visibility": p["body"]["visibility"], "distribution": p["body"]["distribution"],
            "lifecycleState": p["body"]["lifecycleState"],
            "isReshareDisabledByAuthor": p["body"].get("isReshareDisabledByAuthor", False),
            "createdAt": p["created_ms"], "lastModifiedAt": p["created_ms"],
            "publishedAt": p["created_ms"], "lifecycleStateInfo": {"isEditedByAuthor": False},
        } for p in page]
        return web.json_response({"paging": {"start": int(start), "count": int(count),
                                             "links": [], "total": len(posts)},
                                  "elements": elements})

    async def _userinfo(self, request: web.Request) -> web.StreamResponse:
        member, scopes, refusal = await self._authenticate(request)
        if refusal is not None:
            return refusal
        if not {"openid", "profile"} <= scopes:
            return self._denied("userinfo.GET.NO_VERSION")
        self.userinfo_calls += 1
        return web.json_response({
            "sub": member, "name": "Herald Member", "given_name": "Herald",
            "family_name": "Member", "locale": {"country": "US", "language": "en"},
            "email_verified": True})


EMULATOR = LinkedInEmulator
