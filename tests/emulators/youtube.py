"""The YouTube Data API v3 resumable upload and Google's OAuth 2.0 endpoints, on the real paths
under one root (point `api_base`, `upload_base`, `auth_base` and `token_base` at it):

- `GET /o/oauth2/v2/auth` (approving at once; a refresh token only with
  `access_type=offline`), `POST /token` (code with PKCE, refresh; refresh tokens do not
  rotate; refusals are `invalid_grant`);
- `POST /upload/youtube/v3/videos?uploadType=resumable&part=snippet,status` with the video
  resource and `X-Upload-Content-Length`/`-Type` → 200 with the session URI in `Location`;
  the title is required (at most 100 characters, no `<` `>`), the description at most 5,000
  bytes; each session is one call of the project's `videos.insert` bucket (`daily_inserts`,
  100 a day), beyond which it is a 403 `quotaExceeded`; a channel past `channel_uploads` in
  24 hours gets a 400 `uploadLimitExceeded`;
- `PUT <session>` with `Content-Range: bytes a-b/total`: the chunk must start at the first
  byte the session lacks (else 416) and, unless it is the last, be a multiple of 256 KiB
  (else 400); `308 Resume Incomplete` with `Range: bytes=0-N` until the last byte, then 200
  with the video resource. `Content-Range: bytes */total` (empty body) asks where the session
  stands. A session that `expire_session` ended answers 404;
- `GET /youtube/v3/videos?id=&part=status,processingDetails`: `processing` for
  `processing_seconds` after the upload, then `succeeded`.

Faults of the upload itself: `cut_next_chunk` drops the connection halfway through a chunk
(the session keeps the whole 256 KiB units it got, as Google does), `fail_next_chunk` answers
503, `lose_final_answer` makes the video and drops the answer. The received file's SHA-256 is
in the post and in `/_state` (`sessions`). Errors are Google's `{"error": {"code",
"message", "errors": [{"reason", "domain"}]}}`.
The platform's own faults (`FAULTS`) are attributes, also set through `POST /_faults`.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.emulators.platform import AuthCodes, PlatformEmulator, TokenBook, oauth_error
from tests.emulators.scripted import faults_route

CLIENT_ID = "herald-test-client"
CLIENT_SECRET = "herald-test-secret"
UPLOAD_SCOPE = "https://www.googleapis.com/auth/youtube.upload"
KNOWN_SCOPES = frozenset({UPLOAD_SCOPE, "https://www.googleapis.com/auth/youtube",
                          "https://www.googleapis.com/auth/youtube.readonly"})
UNIT = 256 * 1024
ACCESS_TTL = 3599
RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
PROBE = re.compile(r"^bytes \*/(\d+)$")
PATH = "/upload/youtube/v3/videos"


#: The platform's own faults and knobs, settable through `POST /_faults` (`scripted`).
FAULTS: dict[str, type] = {
    "cut_next_chunk": int,
    "fail_next_chunk": int,
    "chunk_delay": float,
    "lose_final_answer": int,
    "processing_seconds": float,
    "daily_inserts": int,
    "channel_uploads": int,
}


def google_error(status: int, reason: str, message: str, domain: str = "youtube.video",
                 headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": status, "message": message, "errors": [
        {"message": message, "domain": domain, "reason": reason}]}}, status=status,
        headers=headers)


@dataclass
class Session:
    id: str
    owner: str
    size: int
    content_type: str
    metadata: dict[str, Any]
    received: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    video_id: str | None = None
    gone: bool = False
    #: The digest at each 256 KiB boundary, so an interrupted session can go back to the
    #: whole units it kept.
    marks: dict[int, Any] = field(default_factory=dict)

    def feed(self, data: bytes) -> None:
        while data:
            room = UNIT - self.received % UNIT
            piece, data = data[:room], data[room:]
            self.digest.update(piece)
            self.received += len(piece)
            if self.received % UNIT == 0:
                self.marks[self.received] = self.digest.copy()

    def rewind(self) -> None:
        """Keep only whole 256 KiB units, as an interrupted Google session does."""
        kept = self.received - self.received % UNIT
        self.received = kept
        self.digest = self.marks[kept].copy() if kept else hashlib.sha256()


class YouTubeEmulator(PlatformEmulator):
    platform = "youtube"

    def __init__(self) -> None:
        super().__init__()
        self.tokens = TokenBook(access_ttl=ACCESS_TTL, rotate=False)
        self.auth = AuthCodes(require_pkce=False, code_ttl=600.0)
        self.auth.register(CLIENT_ID, CLIENT_SECRET)
        self.sessions: dict[str, Session] = {}
        self.videos: dict[str, dict[str, Any]] = {}
        self.daily_inserts = 100
        self.inserts = 0
        self.channel_uploads = 1000
        self.processing_seconds = 0.2
        self.cut_next_chunk = 0
        #: Seconds each chunk waits before the emulator reads it (a slow link): a test can
        #: kill the uploader while a chunk is in flight.
        self.chunk_delay = 0.0
        self.fail_next_chunk = 0
        self.lose_final_answer = 0
        self.offline: set[str] = set()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/_faults", faults_route(self, FAULTS))
        app.router.add_get("/o/oauth2/v2/auth", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_post(PATH, self._start)
        app.router.add_put(PATH, self._put)
        app.router.add_get("/youtube/v3/videos", self._list)

    def rate_limited(self) -> web.Response:
        return google_error(429, "rateLimitExceeded", "The request cannot be completed "
                            "because you have exceeded your quota.", "youtube.quota",
                            headers={"Retry-After": str(int(self.faults.retry_after))})

    def server_error(self, status: int) -> web.Response:
        return google_error(status, "backendError", "Backend Error", "global")

    def token_expired(self) -> web.Response:
        return google_error(401, "authError", "Invalid Credentials", "global")

    def account(self) -> dict[str, Any]:
        grant = self.tokens.issue(f"UC{secrets.token_hex(11)}", UPLOAD_SCOPE)
        base = self.base_url
        return {
            "platform": "youtube", "name": "youtube-emulator",
            "config": {"api_base": base, "upload_base": base, "token_base": base},
            "credentials": {"access_token": grant.access_token,
                            "refresh_token": grant.refresh_token},
        }

    def state(self) -> dict[str, Any]:
        return {**super().state(), "inserts": self.inserts,
                "sessions": {s.id: {"size": s.size, "received": s.received,
                                    "sha256": s.digest.hexdigest(), "video_id": s.video_id,
                                    "gone": s.gone} for s in self.sessions.values()}}

    def expire_session(self, session_id: str) -> None:
        self.sessions[session_id].gone = True

    # --- OAuth ------------------------------------------------------------------------------

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        scopes = set(query.get("scope", "").split())
        if not scopes or not scopes <= KNOWN_SCOPES:
            return web.Response(status=400, text="Error 400: invalid_scope")
        location, reason = self.auth.authorize(query)
        if location is None:
            return web.Response(status=400, text=f"Error 400: invalid_request ({reason})")
        if query.get("access_type") == "offline":
            self.offline.add(location.split("code=")[1].split("&")[0])
        return web.Response(status=302, headers={"Location": location})

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        client = self.auth.clients.get(form.get("client_id", ""))
        if client is None or client[0] != form.get("client_secret"):
            return oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if form.get("grant_type") == "authorization_code":
            code = form.get("code", "")
            pending, reason = self.auth.redeem(code, form.get("client_id"),
                                               form.get("client_secret"),
                                               form.get("redirect_uri"),
                                               form.get("code_verifier"))
            if pending is None:
                return oauth_error(400, "invalid_grant", f"Bad Request ({reason})")
            grant = self.tokens.issue(f"UC{secrets.token_hex(11)}", pending.scope)
            answer = {"access_token": grant.access_token, "expires_in": ACCESS_TTL,
                      "scope": grant.scope, "token_type": "Bearer"}
            if code in self.offline:
                answer["refresh_token"] = grant.refresh_token or ""
            return web.json_response(answer)
        if form.get("grant_type") == "refresh_token":
            renewed = self.tokens.refresh(form.get("refresh_token"))
            if renewed is None:
                return oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            return web.json_response({"access_token": renewed.access_token,
                                      "expires_in": ACCESS_TTL, "scope": renewed.scope,
                                      "token_type": "Bearer"})
        return oauth_error(400, "unsupported_grant_type", "Invalid grant_type")

    # --- uploads ----------------------------------------------------------------------------

    async def _owner(self, request: web.Request) -> tuple[str, web.StreamResponse | None]:
        fault = await self.guard(request)
        if fault is not None:
            return "", fault
        grant, _state = self.bearer_grant(request)
        if grant is None:
            return "", self.token_expired()
        if UPLOAD_SCOPE not in grant.scope.split() and (
                "https://www.googleapis.com/auth/youtube" not in grant.scope.split()):
            return "", google_error(403, "insufficientPermissions",
                                    "Request had insufficient authentication scopes.", "global")
        return grant.subject, None

    async def _start(self, request: web.Request) -> web.StreamResponse:
        owner, refusal = await self._owner(request)
        if refusal is not None:
            return refusal
        query = request.query
        if query.get("uploadType") != "resumable":
            return google_error(400, "invalidParameter", "uploadType must be resumable", "global")
        if not {"snippet", "status"} >= set(query.get("part", "").split(",")) or not query.get(
                "part"):
            return google_error(400, "unexpectedPart", "part must name snippet and status",
                                "youtube.part")
        size = request.headers.get("X-Upload-Content-Length", "")
        content_type = request.headers.get("X-Upload-Content-Type", "")
        if not size.isdigit() or int(size) <= 0:
            return google_error(400, "invalidParameter", "X-Upload-Content-Length is required",
                                "global")
        if not (content_type.startswith("video/") or content_type == "application/octet-stream"):
            return google_error(400, "invalidParameter", "X-Upload-Content-Type must be a video "
                                "type", "global")
        try:
            body = await request.json()
        except ValueError:
            body = None
        snippet = body.get("snippet") if isinstance(body, dict) else None
        status = body.get("status") if isinstance(body, dict) else None
        title = snippet.get("title") if isinstance(snippet, dict) else None
        if not isinstance(title, str) or not title.strip():
            return google_error(400, "invalidTitle", "The request metadata specifies an "
                                "invalid or empty video title.")
        if len(title) > 100 or "<" in title or ">" in title:
            return google_error(400, "invalidTitle", "The request metadata specifies an "
                                "invalid video title.")
        description = snippet.get("description", "") if isinstance(snippet, dict) else ""
        if not isinstance(description, str) or len(description.encode()) > 5000 or any(
                c in description for c in "<>"):
            return google_error(400, "invalidDescription", "The request metadata specifies an "
                                "invalid video description.")
        privacy = status.get("privacyStatus") if isinstance(status, dict) else None
        if privacy not in ("public", "unlisted", "private"):
            return google_error(400, "invalidVideoMetadata", "The request metadata is invalid "
                                "(privacyStatus).")
        if self.inserts >= self.daily_inserts:
            return google_error(403, "quotaExceeded", "The request cannot be completed because "
                                "you have exceeded your quota.", "youtube.quota")
        if sum(1 for p in self.posts if p["owner"] == owner
               and p["at"] > time.time() - 86400) >= self.channel_uploads:
            return google_error(400, "uploadLimitExceeded", "The user has exceeded the number "
                                "of videos they may upload.")
        self.inserts += 1
        session = Session(secrets.token_urlsafe(24), owner, int(size), content_type,
                          body if isinstance(body, dict) else {})
        self.sessions[session.id] = session
        location = f"{self.base_url}{PATH}?uploadType=resumable&upload_id={session.id}"
        return self.answer_lost(request, web.Response(status=200, headers={
            "Location": location, "X-GUploader-UploadID": session.id}))

    def _incomplete(self, session: Session) -> web.Response:
        headers = {"Range": f"bytes=0-{session.received - 1}"} if session.received else {}
        return web.Response(status=308, headers=headers)

    def _resource(self, session: Session) -> web.Response:
        video = self.videos[session.video_id or ""]
        return web.json_response({"kind": "youtube#video", "id": video["id"],
                                  "snippet": video["snippet"], "status": {
                                      "uploadStatus": "uploaded",
                                      "privacyStatus": video["privacy"]}})

    async def _put(self, request: web.Request) -> web.StreamResponse:
        session = self.sessions.get(request.query.get("upload_id", ""))
        if session is None or session.gone:
            await _drain(request)
            return google_error(404, "notFound", "The upload session was not found.", "global")
        if self.chunk_delay > 0:
            await asyncio.sleep(self.chunk_delay)
        content_range = request.headers.get("Content-Range", "")
        probe = PROBE.match(content_range)
        if probe is not None:
            await _drain(request)
            if int(probe.group(1)) != session.size:
                return google_error(400, "badContent", "The total size does not match.",
                                    "global")
            return self._resource(session) if session.video_id else self._incomplete(session)
        if session.video_id:
            await _drain(request)
            return self._resource(session)
        match = RANGE.match(content_range)
        if match is None:
            await _drain(request)
            return google_error(400, "badContent", "Content-Range is required.", "global")
        first, last, total = (int(g) for g in match.groups())
        length = last - first + 1
        if total != session.size or last >= total or first != session.received:
            await _drain(request)
            return web.Response(status=416, headers={"Range": f"bytes=0-{session.received - 1}"}
                                if session.received else {})
        if last + 1 < total and length % UNIT:
            await _drain(request)
            return google_error(400, "badContent", "A chunk that is not the last must be a "
                                "multiple of 256 KiB.", "global")
        if request.content_length != length:
            await _drain(request)
            return google_error(400, "badContent", "Content-Length is not the range's length.",
                                "global")
        if self.fail_next_chunk > 0:
            self.fail_next_chunk -= 1
            await _drain(request)
            return self.server_error(503)
        cut = length // 2 if self.cut_next_chunk > 0 else None
        received = 0
        async for piece in request.content.iter_chunked(64 * 1024):
            if cut is not None and received + len(piece) >= cut:
                piece = piece[:cut - received]
            session.feed(piece)
            received += len(piece)
            if cut is not None and received >= cut:
                break
        if cut is not None:
            self.cut_next_chunk -= 1
            session.rewind()
            return self.drop(request)
        if received != length:
            return google_error(400, "badContent", "The body is not the range's length.",
                                "global")
        if session.received < session.size:
            return self._incomplete(session)
        self._make_video(session)
        if self.lose_final_answer > 0:
            self.lose_final_answer -= 1
            return self.drop(request)
        return self._resource(session)

    def _make_video(self, session: Session) -> None:
        alphabet = string.ascii_letters + string.digits + "-_"
        video_id = "".join(secrets.choice(alphabet) for _ in range(11))
        session.video_id = video_id
        snippet = session.metadata.get("snippet", {})
        privacy = session.metadata.get("status", {}).get("privacyStatus")
        self.videos[video_id] = {"id": video_id, "snippet": snippet, "privacy": privacy,
                                 "uploaded_at": time.time()}
        self.record(str(snippet.get("description", "")), id=video_id,
                    title=snippet.get("title"), privacy=privacy, owner=session.owner,
                    sha256=session.digest.hexdigest(), size=session.received)

    async def _list(self, request: web.Request) -> web.StreamResponse:
        _owner, refusal = await self._owner(request)
        if refusal is not None:
            return refusal
        items = []
        for video_id in request.query.get("id", "").split(","):
            video = self.videos.get(video_id)
            if video is None:
                continue
            done = time.time() >= video["uploaded_at"] + self.processing_seconds
            items.append({"kind": "youtube#video", "id": video_id, "status": {
                "uploadStatus": "processed" if done else "uploaded",
                "privacyStatus": video["privacy"]}, "processingDetails": {
                "processingStatus": "succeeded" if done else "processing"}})
        return web.json_response({"kind": "youtube#videoListResponse", "items": items})


async def _drain(request: web.Request) -> None:
    async for _piece in request.content.iter_chunked(256 * 1024):
        pass


EMULATOR = YouTubeEmulator
