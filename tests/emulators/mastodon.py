"""A Mastodon instance as far as Herald uses one, on Mastodon's own paths and answers.

It registers clients (`POST /api/v1/apps`), runs the authorization-code grant with optional
PKCE S256 (as 4.3+ does: enforced when a challenge was sent), issues tokens that never expire
and have no refresh, serves `/api/v2/instance` with its status limits, and posts statuses:
counting length as Mastodon does (grapheme clusters, a URL as `url_characters`, a remote
mention as its local part), deduplicating on `Idempotency-Key` per account, and refusing with
Mastodon's error bodies. It also serves the reads a lookup makes (`verify_credentials`, an
account's statuses, a status' source). Written independently of `shared.providers.mastodon`.

Media: `POST /api/v2/media` takes a multipart `file` (and `description`), refuses a type the
instance does not list and a file over its size limit (422), keeps the file's SHA-256, and
answers an image at once (200 with its `url`, as 4.0+ processes images synchronously) and a
video or audio file with 202 and `url: null`: processing is done after `processing_polls` reads
of `GET /api/v1/media/:id` (206 until then, 200 with the url after; 404 once the file is
attached to a status, as that method shows only unattached files). A status names its
files in `media_ids[]` and is refused as Mastodon's PostStatusService refuses it: a file that
is unknown, another account's or already attached; more than 4; a video beside other files;
a file still processing. `in_reply_to_id` must name a status that exists.

Tests in the same process may change `max_characters`, `url_characters`, `processing_polls`
and the size limits directly. `GET /_state` adds `calls`, the routes asked, in order, and
`media`, each received file.
"""

from __future__ import annotations

import html
import itertools
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import grapheme
from aiohttp import web

from tests.emulators.platform import (
    AuthCodes,
    PlatformEmulator,
    TokenBook,
    bearer,
    iso,
    oauth_error,
    request_params,
)
from tests.emulators.uploads import Received, form_fields, form_parts, received

INVALID_TOKEN = "The access token is invalid"
OUT_OF_SCOPE = "This action is outside the authorized scopes"
VISIBILITIES = ("public", "unlisted", "private", "direct")
NEVER = 10 * 365 * 24 * 3600.0
#: The scopes of the token `account()` hands out, as if granted to Herald's app.
ACCOUNT_SCOPES = "write:statuses write:media read:accounts read:statuses"
MAX_MEDIA = 4
SUPPORTED_MIME_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4",
                        "video/webm", "video/quicktime", "audio/mpeg"]
_URL = re.compile(r"https?://[^\s<>\"]+[^\s<>\".,;:!?)]", re.IGNORECASE)
_REMOTE_MENTION = re.compile(r"(?<![=/\w])@(\w+(?:[.-]+\w+)*)@\w+(?:[.-]+\w+)*")


def _error(message: str, status: int, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _unauthorized() -> web.Response:
    return _error(INVALID_TOKEN, 401, **{
        "WWW-Authenticate": f'Bearer realm="Doorkeeper", error="invalid_token", '
                            f'error_description="{INVALID_TOKEN}"'})


def _length(text: str, url_characters: int) -> int:
    counted = _URL.sub("x" * url_characters, text)
    return int(grapheme.length(_REMOTE_MENTION.sub(r"@\1", counted)))


class MastodonEmulator(PlatformEmulator):
    platform = "mastodon"
    client_max_size = 100 * 1024 * 1024

    def __init__(self) -> None:
        super().__init__()
        self.tokens = TokenBook(access_ttl=NEVER, rotate=False, refresh=False)
        self.auth = AuthCodes(require_pkce=False, code_ttl=60.0)
        self.max_characters = 500
        self.url_characters = 23
        #: client_id -> {"name", "scopes", "redirect_uris"}
        self.apps: dict[str, dict[str, Any]] = {}
        #: access token -> the client it was issued to (its statuses' `application`)
        self.token_apps: dict[str, str] = {}
        #: (account id, Idempotency-Key) -> status id
        self.idempotency: dict[tuple[str, str], str] = {}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self._ids = itertools.count(1)
        self.image_size_limit = 16 * 1024 * 1024
        self.video_size_limit = 99 * 1024 * 1024
        #: Reads of `GET /api/v1/media/:id` before a new video or audio file is processed.
        self.processing_polls = 2
        self.media: dict[str, Received] = {}
        #: media id -> the status it is attached to
        self.attached: dict[str, str] = {}

    # --- the platform's own answers ---------------------------------------------------------

    def rate_limited(self) -> web.Response:
        reset = datetime.now(UTC) + timedelta(seconds=self.faults.retry_after)
        return _error("Too many requests", 429, **{
            "X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset.isoformat(timespec="microseconds").replace(
                "+00:00", "Z")})

    def server_error(self, status: int) -> web.Response:
        if status == 503:
            return _error("There was a temporary problem serving your request, "
                          "please try again", 503)
        return web.Response(status=status, content_type="text/html",
                            text="<html><body><h1>We're sorry, but something went wrong."
                                 "</h1></body></html>")

    def token_expired(self) -> web.Response:
        """Mastodon's tokens do not expire; a revoked or unknown one is a 401."""
        return _unauthorized()

    def account(self) -> dict[str, Any]:
        grant = self.tokens.issue("user-1", ACCOUNT_SCOPES)
        return {"platform": "mastodon", "name": "mastodon-test",
                "config": {"api_base": self.base_url},
                "credentials": {"access_token": grant.access_token}}

    def state(self) -> dict[str, Any]:
        return {**super().state(), "calls": self.calls,
                "media": [m.state() for m in self.media.values()]}

    # --- routes -----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v1/apps", self._create_app)
        app.router.add_get("/.well-known/oauth-authorization-server", self._metadata)
        app.router.add_get("/oauth/authorize", self._authorize)
        app.router.add_post("/oauth/token", self._token)
        app.router.add_get("/api/v2/instance", self._instance)
        app.router.add_post("/api/v1/statuses", self._create_status)
        app.router.add_post("/api/v2/media", self._upload_media)
        app.router.add_get("/api/v1/media/{id}", self._get_media)
        app.router.add_get("/api/v1/accounts/verify_credentials", self._verify_credentials)
        app.router.add_get("/api/v1/accounts/{id}/statuses", self._account_statuses)
        app.router.add_get("/api/v1/statuses/{id}/source", self._source)

    def _user(self, request: web.Request, *scopes: str) -> tuple[str | None, web.Response | None]:
        """(the token's account, None) or (None, Mastodon's refusal): 401 for a missing,
        unknown or revoked token, 403 when it has none of `scopes`."""
        grant, _state = self.bearer_grant(request)
        if grant is None:
            return None, _unauthorized()
        if scopes and not set(grant.scope.split()) & set(scopes):
            return None, _error(OUT_OF_SCOPE, 403)
        return grant.subject, None

    @staticmethod
    def _account_id(subject: str) -> str:
        return str(100 + int(subject.rsplit("-", 1)[-1]))

    def _account_json(self, subject: str) -> dict[str, Any]:
        return {"id": self._account_id(subject), "username": subject, "acct": subject,
                "url": f"{self.base_url}/@{subject}"}

    async def _create_app(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("apps")
        refused = await self.guard(request)
        if refused is not None:
            return refused
        params = await request_params(request) or {}
        name, uris = params.get("client_name"), params.get("redirect_uris")
        if not isinstance(name, str) or not name.strip():
            return _error("Validation failed: Application name can't be blank", 422)
        listed = [uris] if isinstance(uris, str) else uris if isinstance(uris, list) else []
        listed = [u for part in listed for u in str(part).split()]
        if not listed or not all(re.match(r"^[a-z][a-z0-9+.-]*://\S+$", u) for u in listed):
            return _error("Validation failed: Redirect URI must be an absolute URI.", 422)
        scopes = str(params.get("scopes") or "read")
        client_id, secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.auth.register(client_id, secret, set(listed))
        self.apps[client_id] = {"name": name, "scopes": set(scopes.split()),
                                "redirect_uris": set(listed)}
        return web.json_response({
            "id": str(len(self.apps)), "name": name, "website": params.get("website"),
            "scopes": scopes.split(), "redirect_uri": "\n".join(listed),
            "redirect_uris": listed, "client_id": client_id, "client_secret": secret,
            "client_secret_expires_at": 0})

    async def _metadata(self, _request: web.Request) -> web.Response:
        base = self.base_url
        return web.json_response({
            "issuer": f"{base}/", "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "app_registration_endpoint": f"{base}/api/v1/apps",
            "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post"]})

    async def _authorize(self, request: web.Request) -> web.Response:
        """The consent page, approved at once: a 302 to the redirect URI with `code` and
        `state`, or Doorkeeper's error page when the request cannot be redirected."""
        self.calls.append("authorize")
        query = dict(request.query)
        app = self.apps.get(query.get("client_id", ""))
        requested = set((query.get("scope") or "read").split())
        if app is not None and not requested <= app["scopes"] and (
                query.get("redirect_uri") in app["redirect_uris"]):
            params = {"error": "invalid_scope", "state": query.get("state", ""),
                      "error_description": "The requested scope is invalid, unknown, or "
                                           "malformed."}
            raise web.HTTPFound(f"{query['redirect_uri']}?{urlencode(params)}")
        location, reason = self.auth.authorize(query)
        if location is None:
            return web.Response(status=400, content_type="text/html",
                                text=f"<html><body><h2>An error has occurred</h2>"
                                     f"<p>{html.escape(reason)}</p></body></html>")
        raise web.HTTPFound(location)

    async def _token(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("token")
        refused = await self.guard(request)
        if refused is not None:
            return refused
        form = {k: str(v) for k, v in (await request_params(request) or {}).items()}
        if form.get("grant_type") != "authorization_code":
            return oauth_error(400, "unsupported_grant_type", "The authorization grant type is "
                                    "not supported by the authorization server.")
        client_id = form.get("client_id") or ""
        if client_id not in self.auth.clients or (
                self.auth.clients[client_id][0] != form.get("client_secret")):
            return oauth_error(401, "invalid_client", "Client authentication failed due to "
                                    "unknown client, no client authentication included, or "
                                    "unsupported authentication method.")
        pending, _reason = self.auth.redeem(form.get("code"), client_id,
                                            form.get("client_secret"), form.get("redirect_uri"),
                                            form.get("code_verifier"))
        if pending is None:
            return oauth_error(400, "invalid_grant", "The provided authorization grant is "
                                    "invalid, expired, revoked, does not match the redirection "
                                    "URI used in the authorization request, or was issued to "
                                    "another client.")
        scope = pending.scope or "read"
        grant = self.tokens.issue(pending.subject, scope)
        self.token_apps[grant.access_token] = client_id
        return web.json_response({"access_token": grant.access_token, "token_type": "Bearer",
                                  "scope": scope, "created_at": int(time.time())})

    async def _instance(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("instance")
        refused = await self.guard(request)
        if refused is not None:
            return refused
        return web.json_response({
            "domain": request.host, "title": "Herald test instance", "version": "4.5.0",
            "configuration": {
                "statuses": {"max_characters": self.max_characters,
                             "max_media_attachments": MAX_MEDIA,
                             "characters_reserved_per_url": self.url_characters},
                "media_attachments": {
                    "supported_mime_types": SUPPORTED_MIME_TYPES,
                    "image_size_limit": self.image_size_limit, "image_matrix_limit": 33177600,
                    "video_size_limit": self.video_size_limit, "video_frame_rate_limit": 120,
                    "video_matrix_limit": 8294400}}})

    def _status_json(self, status: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in status.items() if key not in ("text", "subject")}

    async def _create_status(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("statuses")
        refused = await self.guard(request)
        if refused is not None:
            return refused
        subject, refusal = self._user(request, "write", "write:statuses")
        if refusal is not None or subject is None:
            return refusal or _unauthorized()
        key = request.headers.get("Idempotency-Key")
        account_id = self._account_id(subject)
        if key and (account_id, key) in self.idempotency:
            return web.json_response(self._status_json(
                self.statuses[self.idempotency[(account_id, key)]]))
        params = await request_params(request) or {}
        media_ids = await self._listed(request, params)
        text = params.get("status") or ""
        if not isinstance(text, str) or (not text.strip() and not media_ids):
            return _error("Validation failed: Text can't be blank", 422)
        refusal = self._media_refusal(subject, media_ids)
        if refusal is not None:
            return refusal
        reply_to = params.get("in_reply_to_id")
        if reply_to is not None and str(reply_to) not in self.statuses:
            return _error("Record not found", 404)
        visibility = params.get("visibility") or "public"
        if visibility not in VISIBILITIES:
            return _error(f"'{visibility}' is not a valid visibility", 422)
        if _length(text, self.url_characters) > self.max_characters:
            return _error(f"Validation failed: Text character limit of {self.max_characters} "
                          f"exceeded", 422)
        status_id = str((int(time.time() * 1000) << 16) + next(self._ids))
        client = self.apps.get(self.token_apps.get(bearer(request) or "", ""), {})
        status = {
            "id": status_id, "created_at": iso(time.time()), "visibility": visibility,
            "uri": f"{self.base_url}/users/{subject}/statuses/{status_id}",
            "url": f"{self.base_url}/@{subject}/{status_id}",
            "content": f"<p>{html.escape(text)}</p>", "reblog": None,
            "application": {"name": client.get("name", "Herald"), "website": None},
            "account": self._account_json(subject), "text": text, "subject": subject,
            "in_reply_to_id": str(reply_to) if reply_to is not None else None,
            "media_attachments": [self._media_json(self.media[m]) for m in media_ids],
        }
        self.statuses[status_id] = status
        for media_id in media_ids:
            self.attached[media_id] = status_id
        if key:
            self.idempotency[(account_id, key)] = status_id
        self.record(text, id=status_id, visibility=visibility, idempotency_key=key,
                    account_id=account_id, media_ids=media_ids,
                    in_reply_to_id=status["in_reply_to_id"])
        return self.answer_lost(request, web.json_response(self._status_json(status)))

    @staticmethod
    async def _listed(request: web.Request, params: dict[str, Any]) -> list[str]:
        """`media_ids[]` from a form (repeated keys) or a JSON body (a list)."""
        if isinstance(params.get("media_ids"), list):
            return [str(m) for m in params["media_ids"]]
        listed: list[object] = list(request.query.getall("media_ids[]", []))
        if request.content_type != "application/json" and request.body_exists:
            listed += (await request.post()).getall("media_ids[]", [])
        return [str(m) for m in listed]

    def _media_refusal(self, subject: str, media_ids: list[str]) -> web.Response | None:
        """PostStatusService's checks of a status' files, in its order and words."""
        mine = [m for m in media_ids if m in self.media and self.media[m].owner == subject
                and m not in self.attached]
        missing = [m for m in media_ids if m not in mine]
        if missing:
            return _error(f"Media {', '.join(missing)} not found or already attached to "
                          f"another post", 422)
        if len(media_ids) > MAX_MEDIA:
            return _error(f"Cannot attach more than {MAX_MEDIA} files", 422)
        files = [self.media[m] for m in media_ids]
        if len(files) > 1 and any(not f.content_type.startswith("image/") for f in files):
            return _error("Cannot attach a video to a post that already contains images", 422)
        if any(not f.ready for f in files):
            return _error("Cannot attach files that have not finished processing. Try again "
                          "in a moment!", 422)
        return None

    def _media_json(self, media: Received) -> dict[str, Any]:
        kind = media.content_type.split("/")[0]
        url = f"{self.base_url}/system/media_attachments/{media.id}" if media.ready else None
        return {"id": media.id, "type": kind if kind in ("image", "video", "audio") else "unknown",
                "url": url, "preview_url": f"{self.base_url}/system/previews/{media.id}",
                "remote_url": None, "description": media.details.get("description"),
                "blurhash": None, "meta": {}}

    async def _upload_media(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("media")
        refused = await self.guard(request)
        if refused is not None:
            return refused
        subject, refusal = self._user(request, "write", "write:media")
        if refusal is not None or subject is None:
            return refusal or _unauthorized()
        parts = await form_parts(request)
        if parts is None:
            return _error("Validation failed: File can't be blank", 422)
        fields = form_fields(parts)
        files = fields.get("file", [])
        if len(files) != 1 or files[0].filename is None:
            return _error("Validation failed: File can't be blank", 422)
        file = files[0]
        content_type = (file.content_type or "application/octet-stream").split(";")[0].strip()
        if content_type not in SUPPORTED_MIME_TYPES:
            return _error("Validation failed: File content type is invalid", 422)
        limit = (self.image_size_limit if content_type.startswith("image/")
                 else self.video_size_limit)
        if len(file.data) > limit:
            return _error(f"Validation failed: File file size must be less than {limit} Bytes",
                          422)
        described = fields.get("description", [])
        description = described[0].text() if described else None
        if description is not None and len(description) > 1500:
            return _error("Validation failed: Description is too long (maximum is 1500 "
                          "characters)", 422)
        media_id = str((int(time.time() * 1000) << 16) + next(self._ids))
        polls = 0 if content_type.startswith("image/") else self.processing_polls
        media = received(media_id, subject, content_type, file.data, polls=polls,
                         description=description, filename=file.filename)
        self.media[media_id] = media
        status = 200 if media.ready else 202
        return self.answer_lost(request, web.json_response(self._media_json(media),
                                                           status=status))

    async def _get_media(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("media_status")
        refused = await self.guard(request)
        if refused is not None:
            return refused
        subject, refusal = self._user(request, "write", "write:media")
        if refusal is not None or subject is None:
            return refusal or _unauthorized()
        media = self.media.get(request.match_info["id"])
        if media is None or media.owner != subject or media.id in self.attached:
            return _error("Record not found", 404)  # as Mastodon: only unattached files
        if not media.ready:
            media.polled()
            if not media.ready:
                return web.json_response(self._media_json(media), status=206)
        return web.json_response(self._media_json(media))

    async def _verify_credentials(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("verify_credentials")
        refused = await self.guard(request)
        if refused is not None:
            return refused
        subject, refusal = self._user(request, "read", "read:accounts", "profile")
        if refusal is not None or subject is None:
            return refusal or _unauthorized()
        return web.json_response(self._account_json(subject))

    async def _account_statuses(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("account_statuses")
        refused = await self.guard(request)
        if refused is not None:
            return refused
        try:
            limit = min(40, max(1, int(request.query.get("limit", "20"))))
            max_id = int(request.query["max_id"]) if "max_id" in request.query else None
        except ValueError:
            return _error("Validation failed: limit and max_id must be numbers", 422)
        owned = sorted((s for s in self.statuses.values()
                        if self._account_id(s["subject"]) == request.match_info["id"]
                        and (max_id is None or int(s["id"]) < max_id)),
                       key=lambda s: int(s["id"]), reverse=True)
        return web.json_response([self._status_json(s) for s in owned[:limit]])

    async def _source(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("source")
        refused = await self.guard(request)
        if refused is not None:
            return refused
        subject, refusal = self._user(request, "read", "read:statuses")
        if refusal is not None or subject is None:
            return refusal or _unauthorized()
        status = self.statuses.get(request.match_info["id"])
        if status is None or status["subject"] != subject:
            return _error("Record not found", 404)
        return web.json_response({"id": status["id"], "text": status["text"],
                                  "spoiler_text": ""})


EMULATOR = MastodonEmulator
