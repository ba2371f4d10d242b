"""X API v2 as Herald meets it: the OAuth 2.0 authorization page and token endpoint (PKCE S256
required, HTTP Basic for the confidential client, rotating refresh tokens), `POST /2/tweets`,
`GET /2/users/me` and `GET /2/users/:id/tweets`, on X's own paths under the root URL.

It checks what X checks (a valid bearer token, the body's known fields, text within 280
weighted characters counted by twitter-text itself, no repeat of a recent text) and answers
with X's problem documents, rate-limit headers (`x-rate-limit-*` per 15 minutes,
`x-user-limit-24hour-*` and `x-app-limit-24hour-*`, epoch seconds) and statuses. A timeline
gives texts back as X does: `&`, `<`, `>` HTML-escaped and every URL shortened to a t.co link.

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
DEFAULT_SCOPES = "tweet.read tweet.write users.read offline.access"
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


class XEmulator(PlatformEmulator):
    platform = "x"

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
        self.users: dict[str, str] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/i/oauth2/authorize", self._authorize)
        app.router.add_post("/2/oauth2/token", self._token)
        app.router.add_post("/2/tweets", self._create)
        app.router.add_get("/2/users/me", self._me)
        app.router.add_get("/2/users/{id}/tweets", self._timeline)

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
        text = body.get("text")
        if not isinstance(text, str):
            return invalid_request("$.text: string expected")
        parsed = parse_tweet(text)
        if parsed.weightedLength > 280:
            return invalid_request(TOO_LONG)
        if not text.strip():
            return invalid_request("Tweet text is empty")
        now = time.time()
        headers = self._limit_headers(user, now)
        for key in ("x-user-limit-24hour", "x-app-limit-24hour", "x-rate-limit"):
            if headers[f"{key}-remaining"] == "0":
                return problem(429, "Too Many Requests", "Too Many Requests", headers=headers)
        if any(p.get("author") == user and p["text"] == text
               and p["at"] > now - self.duplicate_seconds for p in self.posts):
            return problem(403, "Forbidden",
                           "You are not allowed to create a Tweet with duplicate content.",
                           headers=headers)
        post_id = str(next(self._post_ids))
        post = self.record(text, id=post_id, author=user, rendered=rendered(text),
                           created_at=iso(now))
        response = web.json_response({"data": {"id": post_id, "text": post["rendered"]}},
                                     status=201, headers=self._limit_headers(user, now))
        return self.answer_lost(request, response)

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
