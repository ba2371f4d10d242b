"""TikTok's Content Posting API (direct post) and Login Kit, on the real paths under one root
(point `api_base` and `auth_base` at it):

- `GET /v2/auth/authorize/` (`client_key`, comma-separated `scope`), approving at once;
- `POST /v2/oauth/token/`: the code and refresh grants (client key and secret in the form);
  refresh tokens rotate; errors as `{"error", "error_description", "log_id"}`;
- `POST /v2/post/publish/creator_info/query/` → the privacy levels the creator allows
  (`privacy_level_options`, scriptable) and `max_video_post_duration_sec`;
- `POST /v2/post/publish/video/init/` with `source_info.source=FILE_UPLOAD`: `video_size`,
  `chunk_size` and `total_chunk_count` checked by TikTok's chunk rules (5 MB to 64 MB, the last
  chunk up to 128 MB, under 5 MB whole, count = size // chunk), the privacy level among the
  creator's → `publish_id`, `upload_url`;
- `PUT <upload_url>` with `Content-Range: bytes a-b/total`: chunks in order and on their
  boundaries, 206 while more is expected, 201 when complete, 416 for any other range, 400 for
  a missing or wrong header or a length that is not the range's;
- `POST /v2/post/publish/status/fetch/` → PROCESSING_UPLOAD (with `uploaded_bytes`) until the
  file is in and `processing_seconds` passed, then PUBLISH_COMPLETE (a public post names its
  id in `publicaly_available_post_id`) or FAILED (`fail_next_publish`).

Every answer is TikTok's envelope `{"data": {...}, "error": {"code", "message", "log_id"}}`.
`cut_next_chunk` closes the connection in the middle of the next chunk's body and
`fail_next_chunk` answers it 503 (the chunk is not kept either way); the received file's
SHA-256 is in `/_state` (`publishes`) and in the post.
The platform's own faults (`FAULTS`) are attributes, also set through `POST /_faults`.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.emulators.platform import (
    AuthCodes,
    PlatformEmulator,
    TokenBook,
    json_object,
    oauth_error,
    utf16_units,
)
from tests.emulators.scripted import faults_route

CLIENT_ID = "herald-test-client"
CLIENT_SECRET = "herald-test-secret"
KNOWN_SCOPES = frozenset({"user.info.basic", "user.info.profile", "user.info.stats",
                          "video.list", "video.upload", "video.publish"})
ACCESS_TTL = 7200
REFRESH_TTL = 180 * 86400
MB = 1024 * 1024
MIN_CHUNK, MAX_CHUNK, MAX_FINAL = 5 * MB, 64 * MB, 128 * MB
PRIVACY = ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"]
RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


#: The platform's own faults and knobs, settable through `POST /_faults` (`scripted`).
FAULTS: dict[str, type] = {
    "cut_next_chunk": int,
    "fail_next_chunk": int,
    "fail_next_publish": int,
    "processing_seconds": float,
    "max_duration": int,
}


def envelope(data: dict[str, Any] | None = None, *, code: str = "ok", message: str = "",
             status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"data": data or {}, "error": {
        "code": code, "message": message, "log_id": secrets.token_hex(8)}},
        status=status, headers=headers)


@dataclass
class Publish:
    id: str
    owner: str
    title: str
    privacy_level: str
    video_size: int
    chunk_size: int
    chunk_count: int
    token: str
    received: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    complete_at: float | None = None
    status: str = "PROCESSING_UPLOAD"
    fail_reason: str = ""
    post_id: str | None = None

    def expected(self) -> tuple[int, int] | None:
        """[start, end] of the next chunk TikTok takes, or None when the file is in."""
        if self.received >= self.video_size:
            return None
        index = self.received // self.chunk_size
        end = (self.video_size if index == self.chunk_count - 1
               else (index + 1) * self.chunk_size)
        return self.received, end - 1


def chunk_problem(size: Any, chunk: Any, count: Any) -> str:
    """Why TikTok refuses this source_info, or ""."""
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
               for v in (size, chunk, count)):
        return "video_size, chunk_size and total_chunk_count must be positive integers"
    if size < MIN_CHUNK:
        return "" if (chunk, count) == (size, 1) else (
            "a video under 5 MB is uploaded whole: chunk_size = video_size, 1 chunk")
    if chunk > size:
        return "chunk_size is larger than video_size"
    if chunk < MIN_CHUNK and chunk != size:
        return "chunk_size must be at least 5 MB"
    if chunk > MAX_CHUNK:
        return "chunk_size must be at most 64 MB"
    if count != size // chunk:
        return "total_chunk_count must be video_size / chunk_size rounded down"
    if not 1 <= count <= 1000:
        return "total_chunk_count must be 1 to 1000"
    if size - (count - 1) * chunk > MAX_FINAL:
        return "the last chunk would be larger than 128 MB"
    return ""


async def _drain(request: web.Request) -> None:
    """Read a refused body to its end, as a server does before answering, a piece at a
    time (a chunk may be far larger than the server's in-memory request limit)."""
    async for _piece in request.content.iter_chunked(256 * 1024):
        pass


class TikTokEmulator(PlatformEmulator):
    platform = "tiktok"

    def __init__(self) -> None:
        super().__init__()
        self.tokens = TokenBook(access_ttl=ACCESS_TTL, rotate=True)
        self.auth = AuthCodes(require_pkce=False, code_ttl=600.0)
        self.auth.register(CLIENT_ID, CLIENT_SECRET)
        self.publishes: dict[str, Publish] = {}
        self.privacy_options = list(PRIVACY)
        self.max_duration = 600
        self.processing_seconds = 0.2
        self.init_calls = 0
        #: Chunk faults: the connection cut halfway through the body, or a 503 (the chunk
        #: is not kept either way).
        self.cut_next_chunk = 0
        self.fail_next_chunk = 0
        self.fail_next_publish = 0
        self._ids = itertools.count(7_300_000_000_000_000_001)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/_faults", faults_route(self, FAULTS))
        app.router.add_get("/v2/auth/authorize/", self._authorize)
        app.router.add_post("/v2/oauth/token/", self._token)
        app.router.add_post("/v2/post/publish/creator_info/query/", self._creator)
        app.router.add_post("/v2/post/publish/video/init/", self._init)
        app.router.add_post("/v2/post/publish/status/fetch/", self._status)
        app.router.add_put("/upload/{publish_id}", self._put)

    def rate_limited(self) -> web.Response:
        return envelope(code="rate_limit_exceeded", status=429,
                        message="API rate limit was exceeded; try again later.",
                        headers={"Retry-After": str(int(self.faults.retry_after))})

    def server_error(self, status: int) -> web.Response:
        return envelope(code="internal_error", status=status,
                        message="Something went wrong. Please try again later.")

    def token_expired(self) -> web.Response:
        return envelope(code="access_token_invalid", status=401,
                        message="The access token is invalid or not found in the request.")

    def account(self) -> dict[str, Any]:
        grant = self.tokens.issue(f"open-{secrets.token_hex(6)}", "user.info.basic,video.publish")
        return {
            "platform": "tiktok", "name": "tiktok-emulator",
            "config": {"api_base": self.base_url, "privacy_level": "SELF_ONLY"},
            "credentials": {"access_token": grant.access_token,
                            "refresh_token": grant.refresh_token, "open_id": grant.subject},
        }

    def state(self) -> dict[str, Any]:
        return {**super().state(), "init_calls": self.init_calls,
                "publishes": {p.id: {"status": p.status, "received": p.received,
                                     "sha256": p.digest.hexdigest(), "post_id": p.post_id}
                              for p in self.publishes.values()}}

    # --- OAuth ------------------------------------------------------------------------------

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        scopes = set(query.get("scope", "").split(","))
        if not scopes <= KNOWN_SCOPES or "client_key" not in query:
            return web.Response(status=400, text="param error: client_key or scope")
        query["client_id"] = query.pop("client_key")
        location, reason = self.auth.authorize(query)
        if location is None:
            return web.Response(status=400, text=f"param error: {reason}")
        return web.Response(status=302, headers={"Location": location})

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        client = self.auth.clients.get(form.get("client_key", ""))
        if client is None or client[0] != form.get("client_secret"):
            return oauth_error(401, "invalid_client", "Client key or secret is invalid.")
        if form.get("grant_type") == "authorization_code":
            pending, reason = self.auth.redeem(form.get("code"), form.get("client_key"),
                                               form.get("client_secret"),
                                               form.get("redirect_uri"), None)
            if pending is None:
                return oauth_error(400, "invalid_grant", f"Authorization code is invalid "
                                                         f"({reason}).")
            grant = self.tokens.issue(f"open-{secrets.token_hex(6)}", pending.scope)
        elif form.get("grant_type") == "refresh_token":
            renewed = self.tokens.refresh(form.get("refresh_token"))
            if renewed is None:
                return oauth_error(400, "invalid_grant", "Refresh token is invalid or "
                                                         "expired.")
            grant = renewed
        else:
            return oauth_error(400, "unsupported_grant_type", "grant_type is not supported")
        return web.json_response({
            "access_token": grant.access_token, "expires_in": ACCESS_TTL,
            "open_id": grant.subject, "refresh_token": grant.refresh_token,
            "refresh_expires_in": REFRESH_TTL, "scope": grant.scope, "token_type": "Bearer"})

    # --- posting ----------------------------------------------------------------------------

    async def _authenticate(self, request: web.Request
                            ) -> tuple[str, dict[str, Any], web.StreamResponse | None]:
        fault = await self.guard(request)
        if fault is not None:
            return "", {}, fault
        grant, _state = self.bearer_grant(request)
        if grant is None:
            return "", {}, self.token_expired()
        if "video.publish" not in grant.scope.split(","):
            return "", {}, envelope(code="scope_not_authorized", status=401,
                                    message="The user did not authorize video.publish.")
        body = await json_object(request)
        if body is None:
            return "", {}, envelope(code="invalid_params", status=400,
                                    message="The request body is not a JSON object.")
        return grant.subject, body, None

    async def _creator(self, request: web.Request) -> web.StreamResponse:
        user, _body, refusal = await self._authenticate(request)
        if refusal is not None:
            return refusal
        return envelope({"creator_avatar_url": "", "creator_username": f"user_{user[-4:]}",
                         "creator_nickname": "Herald Test",
                         "privacy_level_options": self.privacy_options,
                         "comment_disabled": False, "duet_disabled": False,
                         "stitch_disabled": False,
                         "max_video_post_duration_sec": self.max_duration})

    async def _init(self, request: web.Request) -> web.StreamResponse:
        self.init_calls += 1
        user, body, refusal = await self._authenticate(request)
        if refusal is not None:
            return refusal
        post_info, source = body.get("post_info"), body.get("source_info")
        if not isinstance(post_info, dict) or not isinstance(source, dict):
            return envelope(code="invalid_params", status=400,
                            message="post_info and source_info are required")
        title = post_info.get("title", "")
        if not isinstance(title, str) or utf16_units(title) > 2200:
            return envelope(code="invalid_params", status=400,
                            message="title must be a string of at most 2200 UTF-16 runes")
        privacy = post_info.get("privacy_level")
        if privacy not in self.privacy_options:
            return envelope(code="privacy_level_option_mismatch", status=400,
                            message="privacy_level is not one of the creator's options")
        if source.get("source") != "FILE_UPLOAD":
            return envelope(code="invalid_params", status=400,
                            message="only FILE_UPLOAD is emulated")
        size, chunk, count = (source.get("video_size"), source.get("chunk_size"),
                              source.get("total_chunk_count"))
        problem = chunk_problem(size, chunk, count)
        if problem:
            return envelope(code="invalid_params", status=400, message=problem)
        publish = Publish(f"v_pub_file~v2-1.{next(self._ids)}", user, title, str(privacy),
                          int(source["video_size"]), int(source["chunk_size"]),
                          int(source["total_chunk_count"]), secrets.token_urlsafe(12))
        self.publishes[publish.id] = publish
        upload_url = f"{self.base_url}/upload/{publish.id}?upload_token={publish.token}"
        return self.answer_lost(request, envelope({"publish_id": publish.id,
                                                   "upload_url": upload_url}))

    async def _put(self, request: web.Request) -> web.StreamResponse:
        publish = self.publishes.get(request.match_info["publish_id"])
        if publish is None or request.query.get("upload_token") != publish.token:
            return web.Response(status=404, text="upload not found")
        if self.fail_next_chunk > 0:
            self.fail_next_chunk -= 1
            await _drain(request)
            return self.server_error(503)
        match = RANGE.match(request.headers.get("Content-Range", ""))
        content_type = request.headers.get("Content-Type", "")
        if match is None or content_type not in ("video/mp4", "video/quicktime", "video/webm"):
            await _drain(request)
            return web.Response(status=400, text="Content-Range and a video Content-Type "
                                                 "are required")
        first, last, total = (int(g) for g in match.groups())
        expected = publish.expected()
        if total != publish.video_size or expected is None or (first, last) != expected:
            await _drain(request)
            return web.Response(status=416, text="Range Not Satisfiable")
        if request.content_length != last - first + 1:
            await _drain(request)
            return web.Response(status=400, text="Content-Length is not the range's length")
        if self.cut_next_chunk > 0:
            self.cut_next_chunk -= 1
            await request.content.readexactly((last - first + 1) // 2)
            return self.drop(request)
        digest, length = publish.digest.copy(), 0
        async for piece in request.content.iter_chunked(256 * 1024):
            digest.update(piece)
            length += len(piece)
        if length != last - first + 1:
            return web.Response(status=400, text="the body is not the range's length")
        publish.digest, publish.received = digest, last + 1
        if publish.received < publish.video_size:
            return web.Response(status=206)
        publish.complete_at = time.time()
        return web.Response(status=201)

    async def _status(self, request: web.Request) -> web.StreamResponse:
        user, body, refusal = await self._authenticate(request)
        if refusal is not None:
            return refusal
        publish = self.publishes.get(str(body.get("publish_id")))
        if publish is None or publish.owner != user:
            return envelope(code="invalid_publish_id", status=400,
                            message="publish_id does not exist")
        if (publish.status == "PROCESSING_UPLOAD" and publish.complete_at is not None
                and time.time() >= publish.complete_at + self.processing_seconds):
            self._finish(publish)
        data: dict[str, Any] = {"status": publish.status, "uploaded_bytes": publish.received}
        if publish.status == "FAILED":
            data["fail_reason"] = publish.fail_reason
        if publish.status == "PUBLISH_COMPLETE":
            data["publicaly_available_post_id"] = [int(publish.post_id)] if (
                publish.post_id and publish.privacy_level == "PUBLIC_TO_EVERYONE") else []
        return envelope(data)

    def _finish(self, publish: Publish) -> None:
        if self.fail_next_publish > 0:
            self.fail_next_publish -= 1
            publish.status, publish.fail_reason = "FAILED", "video_pull_failed"
            return
        publish.status = "PUBLISH_COMPLETE"
        publish.post_id = str(next(self._ids))
        self.record(publish.title, id=publish.post_id, author=publish.owner,
                    publish_id=publish.id, privacy_level=publish.privacy_level,
                    sha256=publish.digest.hexdigest(), size=publish.received)


EMULATOR = TikTokEmulator
