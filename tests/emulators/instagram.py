"""The Instagram API with Instagram Login (Business Login for Instagram), as far as publishing
needs it, on the real paths under one root (point `api_base`, `auth_base` and `token_base` at
it):

- `GET /oauth/authorize`: the authorization window, approving at once (302 with `code`);
- `POST /oauth/access_token`: the code grant (app secret) → a short-lived token (1 hour), in
  `{"data": [{"access_token", "user_id", "permissions"}]}`;
- `GET /access_token?grant_type=ig_exchange_token` → a long-lived token (60 days);
- `GET /refresh_access_token?grant_type=ig_refresh_token` → a new 60-day token, only for an
  unexpired long-lived token;
- `GET /{version}/me?fields=user_id,username`;
- `POST /{version}/{ig}/media`: a container from `image_url` (JPEG only, 4:5 to 1.91:1),
  `media_type=REELS` + `video_url`, a carousel item (`is_carousel_item=true`, `VIDEO` for a
  video) or `media_type=CAROUSEL` + `children` (2 to 10 finished items of this account);
- `GET /{version}/{container}?fields=status_code,status`: IN_PROGRESS while Instagram fetches
  the URL and processes it (`processing_seconds`), then FINISHED, or ERROR with the reason;
  PUBLISHED once published, EXPIRED when `expire_container` was called;
- `POST /{version}/{ig}/media_publish?creation_id=` → `{"id"}`; a container not FINISHED is
  refused (2207027), the 101st post in 24 hours too (2207042, `publish_limit`);
  `lose_next_publish` publishes and loses the answer, `fail_next_carousel` answers a carousel
  container with a 500;
- `GET /{version}/{ig}/media`, `GET /{version}/{media}?fields=permalink`,
  `GET /{version}/{ig}/content_publishing_limit`.

Instagram fetches media itself ("we cURL media"): so does this emulator, from the URL in the
container request, and it records each fetched file's SHA-256 in the container and in the
post (`/_state` → `containers`, `posts[].media`). Errors are Graph's body; tokens are taken as
the `access_token` parameter.
The platform's own faults (`FAULTS`) are attributes, also set through `POST /_faults`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image

from tests.emulators.facebook import graph_error
from tests.emulators.platform import (
    AuthCodes,
    PlatformEmulator,
    TokenBook,
    request_params,
)
from tests.emulators.scripted import faults_route

CLIENT_ID = "herald-test-client"
CLIENT_SECRET = "herald-test-secret"
IG_USER_ID = "17841400000000001"
VERSION = r"{version:v[0-9]+\.[0-9]+}"
KNOWN_SCOPES = frozenset({
    "instagram_business_basic", "instagram_business_content_publish",
    "instagram_business_manage_messages", "instagram_business_manage_comments",
    "instagram_business_manage_insights",
})
SHORT_TTL = 3600.0
LONG_TTL = 60 * 86400.0
PUBLISH_LIMIT = 100
DAY = 24 * 3600.0


#: The platform's own faults and knobs, settable through `POST /_faults` (`scripted`).
FAULTS: dict[str, type] = {
    "fail_next_carousel": int,
    "lose_next_publish": int,
    "processing_seconds": float,
    "publish_limit": int,
}


@dataclass
class Container:
    id: str
    owner: str
    kind: str  # IMAGE, REELS, VIDEO, CAROUSEL
    carousel_item: bool
    caption: str
    url: str = ""
    children: list[str] = field(default_factory=list)
    status_code: str = "IN_PROGRESS"
    status: str = ""
    sha256: str = ""
    size: int = 0
    ready_at: float = 0.0


def _jpeg_ratio(data: bytes) -> tuple[str, float | None]:
    """("", width / height) for a JPEG, or the reason Instagram gives for anything else."""
    if not data.startswith(b"\xff\xd8\xff"):
        return "Only the JPEG format is supported for image_url", None
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (OSError, ValueError):
        return "The image could not be read", None
    return "", width / height


class InstagramEmulator(PlatformEmulator):
    platform = "instagram"

    def __init__(self) -> None:
        super().__init__()
        self.tokens = TokenBook(access_ttl=LONG_TTL, rotate=False, refresh=False)
        self.auth = AuthCodes(require_pkce=False, code_ttl=600.0)
        self.auth.register(CLIENT_ID, CLIENT_SECRET)
        self.kinds: dict[str, str] = {}
        self.containers: dict[str, Container] = {}
        self.media: dict[str, dict[str, Any]] = {}
        #: How long a container stays IN_PROGRESS after its media was fetched.
        self.processing_seconds = 0.2
        self.publish_limit = PUBLISH_LIMIT
        #: Every `/media_publish` call, answered or not.
        self.publish_calls = 0
        #: Scripted faults of this platform's own steps: the next n carousel containers are
        #: answered 500 without being made; the next n publishes are made, their answer lost.
        self.fail_next_carousel = 0
        self.lose_next_publish = 0
        self._ids = itertools.count(18_000_000_000_000_001)
        self._tasks: set[asyncio.Task[None]] = set()

    # --- what a platform provides -----------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/_faults", faults_route(self, FAULTS))
        app.router.add_get("/oauth/authorize", self._authorize)
        app.router.add_post("/oauth/access_token", self._code_grant)
        app.router.add_get("/access_token", self._exchange)
        app.router.add_get("/refresh_access_token", self._refresh)
        app.router.add_get(f"/{VERSION}/me", self._me)
        app.router.add_post(f"/{VERSION}/{{ig:[0-9]+}}/media", self._create)
        app.router.add_get(f"/{VERSION}/{{ig:[0-9]+}}/media", self._list)
        app.router.add_post(f"/{VERSION}/{{ig:[0-9]+}}/media_publish", self._publish)
        app.router.add_get(f"/{VERSION}/{{ig:[0-9]+}}/content_publishing_limit", self._limit)
        app.router.add_get(f"/{VERSION}/{{id:[0-9]+}}", self._read)

    def rate_limited(self) -> web.Response:
        return graph_error(400, "Application request limit reached", 4, transient=True)

    def server_error(self, status: int) -> web.Response:
        return graph_error(status, "An unexpected error has occurred. Please retry your "
                           "request later.", 2, transient=True)

    def token_expired(self) -> web.Response:
        return graph_error(400, "Error validating access token: Session has expired", 190,
                           subcode=463)

    def account(self) -> dict[str, Any]:
        grant = self.tokens.issue(IG_USER_ID, ",".join(sorted(KNOWN_SCOPES)))
        self.kinds[grant.access_token] = "long"
        return {
            "platform": "instagram", "name": "instagram-emulator",
            "config": {"api_base": self.base_url, "token_base": self.base_url,
                       "ig_user_id": IG_USER_ID},
            "credentials": {"access_token": grant.access_token},
        }

    def state(self) -> dict[str, Any]:
        return {**super().state(), "publish_calls": self.publish_calls,
                "containers": {c.id: {"kind": c.kind, "status_code": c.status_code,
                                      "sha256": c.sha256, "size": c.size,
                                      "children": c.children}
                               for c in self.containers.values()}}

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await super().stop()

    def expire_container(self, container_id: str) -> None:
        """Age a container past Instagram's 24 hours."""
        self.containers[container_id].status_code = "EXPIRED"

    # --- OAuth ------------------------------------------------------------------------------

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        scopes = set(query.get("scope", "").replace(",", " ").split())
        reason = ""
        if not scopes or not scopes <= KNOWN_SCOPES:
            reason = "Invalid scope"
        location = None
        if not reason:
            location, reason = self.auth.authorize(query)
        if location is None:
            return web.Response(status=400, text=f"Invalid request: {reason}")
        return web.Response(status=302, headers={"Location": location + "#_"})

    async def _code_grant(self, request: web.Request) -> web.Response:
        form = await request.post()

        def text(key: str) -> str | None:
            value = form.get(key)
            return value if isinstance(value, str) else None

        if text("grant_type") != "authorization_code":
            return self._oauth_refusal("Invalid grant_type")
        if text("client_secret") is None:
            return self._oauth_refusal("Missing client_secret")
        pending, reason = self.auth.redeem(text("code"), text("client_id"),
                                           text("client_secret"), text("redirect_uri"), None)
        if pending is None:
            return self._oauth_refusal(reason)
        grant = self.tokens.issue(IG_USER_ID, pending.scope)
        grant.expires_at = time.time() + SHORT_TTL
        self.kinds[grant.access_token] = "short"
        return web.json_response({"data": [{"access_token": grant.access_token,
                                             "user_id": IG_USER_ID,
                                             "permissions": pending.scope}]})

    @staticmethod
    def _oauth_refusal(message: str) -> web.Response:
        return web.json_response({"error_type": "OAuthException", "code": 400,
                                  "error_message": message}, status=400)

    async def _exchange(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("grant_type") != "ig_exchange_token":
            return graph_error(400, "Unsupported grant_type", 100)
        if query.get("client_secret") != CLIENT_SECRET:
            return graph_error(400, "Error validating client secret.", 1)
        token = query.get("access_token")
        if self.tokens.check(token) != "ok" or self.kinds.get(token or "") != "short":
            return self.token_expired()
        grant = self.tokens.issue(IG_USER_ID, self.tokens.by_access[token or ""].scope)
        self.kinds[grant.access_token] = "long"
        return web.json_response({"access_token": grant.access_token, "token_type": "bearer",
                                  "expires_in": int(LONG_TTL)})

    async def _refresh(self, request: web.Request) -> web.Response:
        self.tokens.refresh_calls += 1
        query = request.query
        token = query.get("access_token")
        if query.get("grant_type") != "ig_refresh_token":
            return graph_error(400, "Unsupported grant_type", 100)
        if (self.tokens.refusing or self.tokens.check(token) != "ok"
                or self.kinds.get(token or "") != "long"):
            return self.token_expired()
        grant = self.tokens.issue(IG_USER_ID, self.tokens.by_access[token or ""].scope)
        self.kinds[grant.access_token] = "long"
        return web.json_response({"access_token": grant.access_token, "token_type": "bearer",
                                  "expires_in": int(LONG_TTL)})

    # --- the API ----------------------------------------------------------------------------

    async def _authenticate(self, request: web.Request
                            ) -> tuple[dict[str, Any], web.StreamResponse | None]:
        fault = await self.guard(request)
        if fault is not None:
            return {}, fault
        params = await request_params(request)
        if params is None:
            return {}, graph_error(400, "Invalid JSON body", 100)
        token = params.get("access_token")
        state = self.tokens.check(token if isinstance(token, str) else None)
        if state == "expired":
            return {}, self.token_expired()
        if state != "ok":
            return {}, graph_error(400, "Invalid OAuth access token - Cannot parse access "
                                   "token", 190)
        return params, None

    async def _me(self, request: web.Request) -> web.StreamResponse:
        _params, refusal = await self._authenticate(request)
        if refusal is not None:
            return refusal
        return web.json_response({"user_id": IG_USER_ID, "username": "herald_test",
                                  "id": "9100000000000001"})

    def _mine(self, request: web.Request) -> web.Response | None:
        if request.match_info["ig"] != IG_USER_ID:
            return graph_error(400, "Unsupported post request. Object with ID "
                               f"'{request.match_info['ig']}' does not exist", 100,
                               subcode=33)
        return None

    async def _create(self, request: web.Request) -> web.StreamResponse:
        params, refusal = await self._authenticate(request)
        if refusal is not None:
            return refusal
        if (wrong := self._mine(request)) is not None:
            return wrong
        media_type = str(params.get("media_type", "IMAGE")).upper()
        carousel_item = str(params.get("is_carousel_item", "false")).lower() == "true"
        caption = str(params.get("caption", ""))
        container = Container(str(next(self._ids)), IG_USER_ID, media_type, carousel_item,
                              caption)
        if media_type == "CAROUSEL" and self.fail_next_carousel > 0:
            self.fail_next_carousel -= 1
            return self.server_error(500)
        if media_type == "CAROUSEL":
            children = [c for c in str(params.get("children", "")).split(",") if c]
            if not 2 <= len(children) <= 10:
                return graph_error(400, "The carousel must have 2 to 10 children", 100,
                                   subcode=2207028)
            for child in children:
                known = self.containers.get(child)
                if known is None or known.owner != IG_USER_ID or not known.carousel_item:
                    return graph_error(400, f"Invalid children: {child}", 100,
                                       subcode=2207004)
                if known.status_code != "FINISHED":
                    return graph_error(400, "The media is not ready for publishing, please "
                                       "wait for a moment", 9007, subcode=2207027)
            container.children = children
            container.ready_at = time.time() + self.processing_seconds
        elif media_type == "IMAGE":
            url = params.get("image_url")
            if not isinstance(url, str) or not url:
                return graph_error(400, "The parameter image_url is required.", 100)
            container.url = url
        elif media_type in ("REELS", "VIDEO"):
            url = params.get("video_url")
            if not isinstance(url, str) or not url:
                return graph_error(400, "The parameter video_url is required.", 100)
            if media_type == "VIDEO" and not carousel_item:
                return graph_error(400, "The VIDEO media type is not supported, use REELS",
                                   100, subcode=2207053)
            container.url = url
        else:
            return graph_error(400, f"Unsupported media_type {media_type}", 100)
        self.containers[container.id] = container
        if container.url:
            task = asyncio.create_task(self._fetch(container))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return self.answer_lost(request, web.json_response({"id": container.id}))

    async def _fetch(self, container: Container) -> None:
        """Instagram cURLs the media, then processes it for a while."""
        try:
            async with aiohttp.ClientSession() as client, client.get(container.url) as got:
                if got.status != 200:
                    raise ValueError(f"the media could not be fetched ({got.status})")
                digest = hashlib.sha256()
                data = bytearray()
                async for chunk in got.content.iter_chunked(64 * 1024):
                    digest.update(chunk)
                    data += chunk
        except (aiohttp.ClientError, ValueError) as exc:
            container.status_code, container.status = "ERROR", f"ERROR: {exc}"
            return
        container.sha256, container.size = digest.hexdigest(), len(data)
        reason = ""
        if container.kind == "IMAGE":
            reason, ratio = _jpeg_ratio(bytes(data))
            if ratio is not None and not 0.8 <= ratio <= 1.91:
                reason = "The aspect ratio is not supported."
        elif data[4:8] != b"ftyp":
            reason = "The video format is not supported."
        await asyncio.sleep(self.processing_seconds)
        if container.status_code != "IN_PROGRESS":
            return
        if reason:
            container.status_code, container.status = "ERROR", f"ERROR: {reason}"
        else:
            container.status_code = "FINISHED"

    async def _read(self, request: web.Request) -> web.StreamResponse:
        _params, refusal = await self._authenticate(request)
        if refusal is not None:
            return refusal
        object_id = request.match_info["id"]
        container = self.containers.get(object_id)
        if container is not None:
            if (container.kind == "CAROUSEL" and container.status_code == "IN_PROGRESS"
                    and time.time() >= container.ready_at):
                container.status_code = "FINISHED"
            return web.json_response({"id": container.id, "status_code": container.status_code,
                                      "status": container.status or container.status_code})
        post = self.media.get(object_id)
        if post is not None:
            return web.json_response({"id": object_id, "permalink": post["permalink"]})
        return graph_error(400, f"Unsupported get request. Object with ID '{object_id}' does "
                           "not exist", 100, subcode=33)

    async def _publish(self, request: web.Request) -> web.StreamResponse:
        self.publish_calls += 1
        params, refusal = await self._authenticate(request)
        if refusal is not None:
            return refusal
        if (wrong := self._mine(request)) is not None:
            return wrong
        container = self.containers.get(str(params.get("creation_id", "")))
        if container is None or container.carousel_item:
            return graph_error(400, "The parameter creation_id is invalid", 100)
        if container.kind == "CAROUSEL" and time.time() >= container.ready_at and (
                container.status_code == "IN_PROGRESS"):
            container.status_code = "FINISHED"
        if container.status_code == "PUBLISHED":
            return graph_error(400, "The media has already been published", 9007,
                               subcode=2207008)
        if container.status_code != "FINISHED":
            return graph_error(400, "The media is not ready for publishing, please wait for "
                               "a moment", 9007, subcode=2207027)
        now = time.time()
        if sum(1 for p in self.posts if p["at"] > now - DAY) >= self.publish_limit:
            return graph_error(400, "The app user has reached their publishing limit", 9,
                               subcode=2207042)
        container.status_code = "PUBLISHED"
        media_id = str(next(self._ids))
        parts = ([self.containers[c] for c in container.children] if container.children
                 else [container])
        post = self.record(container.caption, id=media_id, container=container.id,
                           media_type=container.kind,
                           permalink=f"https://www.instagram.com/p/{secrets.token_urlsafe(8)}/",
                           timestamp=time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(now)),
                           media=[{"sha256": c.sha256, "size": c.size, "kind": c.kind}
                                  for c in parts])
        self.media[media_id] = post
        if self.lose_next_publish > 0:
            self.lose_next_publish -= 1
            return self.drop(request)
        return self.answer_lost(request, web.json_response({"id": media_id}))

    async def _list(self, request: web.Request) -> web.StreamResponse:
        _params, refusal = await self._authenticate(request)
        if refusal is not None:
            return refusal
        if (wrong := self._mine(request)) is not None:
            return wrong
        rows = [{"id": p["id"], "caption": p["text"], "timestamp": p["timestamp"],
                 "permalink": p["permalink"]} for p in reversed(self.posts)]
        return web.json_response({"data": rows})

    async def _limit(self, request: web.Request) -> web.StreamResponse:
        _params, refusal = await self._authenticate(request)
        if refusal is not None:
            return refusal
        used = sum(1 for p in self.posts if p["at"] > time.time() - DAY)
        return web.json_response({"data": [{"quota_usage": used, "config": {
            "quota_total": self.publish_limit, "quota_duration": int(DAY)}}]})


EMULATOR = InstagramEmulator
