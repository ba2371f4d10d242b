"""What every platform emulator shares: scripted faults, an OAuth token book, authorization
codes with PKCE, a record of what was posted, and the `/_control` and `/_state` endpoints that
let a test in another process script and inspect it.

A platform's emulator subclasses `PlatformEmulator`, adds the platform's routes in `routes`,
and renders the platform's own answers for a rate limit, a server error and an expired token.
Every authenticated platform call goes through `guard`, which spends the scripted faults in a
fixed order (drop, delay, rate limit, server error, expired token), so a test scripts one
misbehaviour and knows which request meets it.

Control, `POST /_control` with any of:
`{"rate_limit_next": 1}`, `{"fail_next": 2, "fail_status": 503}`, `{"drop_next": 1}` (the
connection is closed before the platform acts), `{"drop_after_next": 1}` (the platform acts,
then the connection is closed: the answer is lost), `{"delay": 2.0}` (seconds before each
answer), `{"expire_next": 1}` (the next call is answered as with an expired token),
`{"expire_tokens": true}` (every access token issued so far has expired),
`{"refuse_refresh": true}` (refresh tokens are refused from now on, as after a revocation),
`{"pass_next": 1}` (the next guarded request is let through untouched before any other fault
is spent: with `fail_next` it fails the second call, a thread's part two), `{"reset": true}`.
`GET /_state` → `{"posts": [...], "refresh_calls": n, "held": n, "faults": {...}}`, where
`held` counts the calls a `delay` is holding now (in flight, the platform not yet acting).
`POST /_account` → a `POST /api/v1/accounts` body with fresh working credentials.

The module's functions read a request as the platforms do (`bearer`, `json_object`,
`request_params`), answer as an OAuth server does (`oauth_error`), count and date as they do
(`utf16_units`, `iso`), and serve an emulator (`listen`, `until_signalled`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import secrets
import signal
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

from aiohttp import web


@dataclass
class Faults:
    """Scripted misbehaviour; each `*_next` counter is spent by one guarded request."""

    pass_next: int = 0
    drop_next: int = 0
    drop_after_next: int = 0
    delay: float = 0.0
    rate_limit_next: int = 0
    #: Seconds the platform's rate-limit answer asks for (rendered in its own unit).
    retry_after: float = 2.0
    fail_next: int = 0
    fail_status: int = 500
    expire_next: int = 0


@dataclass
class Grant:
    access_token: str
    refresh_token: str | None
    expires_at: float
    subject: str
    scope: str = ""


class TokenBook:
    """Access and refresh tokens as an OAuth server keeps them. Refresh tokens rotate when
    `rotate` is set: a refresh token works once, and the old one is refused afterwards."""

    def __init__(self, access_ttl: float = 7200.0, rotate: bool = True,
                 refresh: bool = True) -> None:
        self.access_ttl = access_ttl
        self.rotate = rotate
        self.with_refresh = refresh
        self.by_access: dict[str, Grant] = {}
        self.by_refresh: dict[str, Grant] = {}
        self.refresh_calls = 0
        self.refusing = False

    def issue(self, subject: str, scope: str = "") -> Grant:
        grant = Grant(
            access_token="at-" + secrets.token_urlsafe(18),
            refresh_token="rt-" + secrets.token_urlsafe(18) if self.with_refresh else None,
            expires_at=time.time() + self.access_ttl,
            subject=subject, scope=scope,
        )
        self.by_access[grant.access_token] = grant
        if grant.refresh_token:
            self.by_refresh[grant.refresh_token] = grant
        return grant

    def check(self, token: str | None) -> str:
        """`ok`, `expired` or `invalid`."""
        grant = self.by_access.get(token or "")
        if grant is None:
            return "invalid"
        return "ok" if grant.expires_at > time.time() else "expired"

    def subject(self, token: str) -> str:
        return self.by_access[token].subject

    def refresh(self, refresh_token: str | None) -> Grant | None:
        """A new grant for a valid refresh token, None when refused. Every call is counted."""
        self.refresh_calls += 1
        old = self.by_refresh.get(refresh_token or "")
        if old is None or self.refusing:
            return None
        if self.rotate:
            del self.by_refresh[refresh_token or ""]
            return self.issue(old.subject, old.scope)
        grant = Grant("at-" + secrets.token_urlsafe(18), old.refresh_token,
                      time.time() + self.access_ttl, old.subject, old.scope)
        self.by_access[grant.access_token] = grant
        return grant

    def expire_all(self) -> None:
        for grant in self.by_access.values():
            grant.expires_at = 0.0


@dataclass
class PendingCode:
    client_id: str
    redirect_uri: str
    challenge: str | None
    scope: str
    subject: str
    issued_at: float = field(default_factory=time.time)


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class AuthCodes:
    """The authorization-code grant as a platform runs it: registered clients with their
    redirect URIs, the consent page (approved at once, or declined when `decline_next`), codes
    bound to client, redirect URI and PKCE challenge, single use, expiring after `code_ttl`."""

    def __init__(self, *, require_pkce: bool, code_ttl: float = 30.0) -> None:
        self.require_pkce = require_pkce
        self.code_ttl = code_ttl
        self.clients: dict[str, tuple[str | None, set[str]]] = {}
        self.codes: dict[str, PendingCode] = {}
        self.decline_next = 0
        self.subjects = itertools.count(1)

    def register(self, client_id: str, client_secret: str | None,
                 redirect_uris: set[str] | None = None) -> None:
        """An empty set of redirect URIs accepts any (as an app registered for tests)."""
        self.clients[client_id] = (client_secret, redirect_uris or set())

    def authorize(self, query: Mapping[str, str]) -> tuple[str | None, str]:
        """(redirect URL, "") when the request is good, else (None, reason) as the platform
        shows an error page instead of redirecting."""
        client = self.clients.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if client is None:
            return None, "unknown client_id"
        if client[1] and redirect_uri not in client[1]:
            return None, "redirect_uri does not match the registered one"
        if query.get("response_type") != "code":
            return None, "response_type must be code"
        challenge = query.get("code_challenge")
        if challenge and query.get("code_challenge_method") != "S256":
            return None, "code_challenge_method must be S256"
        if self.require_pkce and not challenge:
            return None, "code_challenge is required"
        state = query.get("state", "")
        if self.decline_next > 0:
            self.decline_next -= 1
            params = {"error": "access_denied", "error_description": "The user declined",
                      "state": state}
            return f"{redirect_uri}?{urlencode(params)}", ""
        code = secrets.token_urlsafe(16)
        self.codes[code] = PendingCode(query["client_id"], redirect_uri, challenge,
                                       query.get("scope", ""), f"user-{next(self.subjects)}")
        return f"{redirect_uri}?{urlencode({'code': code, 'state': state})}", ""

    def redeem(self, code: str | None, client_id: str | None, client_secret: str | None,
               redirect_uri: str | None, verifier: str | None) -> tuple[PendingCode | None, str]:
        """(the code's grant, "") or (None, reason); a code works once."""
        pending = self.codes.pop(code or "", None)
        client = self.clients.get(client_id or "")
        if pending is None:
            return None, "invalid or used authorization code"
        if time.time() - pending.issued_at > self.code_ttl:
            return None, "authorization code expired"
        if client is None or pending.client_id != client_id:
            return None, "client_id does not match the code"
        if client[0] is not None and client_secret is not None and client[0] != client_secret:
            return None, "invalid client secret"
        if pending.redirect_uri != redirect_uri:
            return None, "redirect_uri does not match the authorization request"
        if pending.challenge is not None and (
                verifier is None or s256(verifier) != pending.challenge):
            return None, "code_verifier does not match code_challenge"
        return pending, ""


CONTROL_TYPES: dict[str, Any] = {
    "pass_next": int, "drop_next": int, "drop_after_next": int, "delay": float,
    "rate_limit_next": int, "retry_after": float, "fail_next": int, "fail_status": int,
    "expire_next": int,
}


class PlatformEmulator:
    """Base of the platform emulators; see the module docstring."""

    platform: ClassVar[str]
    #: The largest request body taken (aiohttp's default is 1 MiB); a platform that takes
    #: uploads raises it to its own limit.
    client_max_size: ClassVar[int] = 1024 ** 2

    def __init__(self) -> None:
        self.faults = Faults()
        self.tokens = TokenBook()
        self.posts: list[dict[str, Any]] = []
        #: Calls a `delay` holds now.
        self.held = 0
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    # --- what a platform provides -----------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def rate_limited(self) -> web.Response:
        """The platform's 429, with its own headers and body, asking for `faults.retry_after`."""
        raise NotImplementedError

    def server_error(self, status: int) -> web.Response:
        return web.json_response({"error": "scripted failure"}, status=status)

    def token_expired(self) -> web.Response:
        """The platform's answer to an expired access token."""
        raise NotImplementedError

    def account(self) -> dict[str, Any]:
        """A `POST /api/v1/accounts` body for an account on this emulator, with working
        credentials (tokens issued by this emulator where the platform has them)."""
        raise NotImplementedError

    # --- shared behaviour -------------------------------------------------------------------

    async def guard(self, request: web.Request) -> web.StreamResponse | None:
        """Spend the scripted faults: a response to send instead of acting, or None to act."""
        f = self.faults
        # The whole request is in before the platform acts, as on a real server: a client that
        # gives up during a delay does not stop the post from being made.
        await request.read()
        if f.pass_next > 0:
            f.pass_next -= 1
            return None
        if f.drop_next > 0:
            f.drop_next -= 1
            return self.drop(request)
        if f.delay > 0:
            self.held += 1
            try:
                await asyncio.sleep(f.delay)
            finally:
                self.held -= 1
        if f.rate_limit_next > 0:
            f.rate_limit_next -= 1
            return self.rate_limited()
        if f.fail_next > 0:
            f.fail_next -= 1
            return self.server_error(f.fail_status)
        if f.expire_next > 0:
            f.expire_next -= 1
            return self.token_expired()
        return None

    def bearer_grant(self, request: web.Request) -> tuple[Grant | None, str]:
        """The grant of the request's bearer token and `ok`, or None and why not: `missing`,
        `expired` or `invalid`, which each platform answers in its own way."""
        token = bearer(request)
        if token is None:
            return None, "missing"
        state = self.tokens.check(token)
        return (self.tokens.by_access[token] if state == "ok" else None), state

    def drop(self, request: web.Request) -> web.StreamResponse:
        """Close the connection without an answer."""
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)

    def answer_lost(self, request: web.Request, response: web.StreamResponse
                    ) -> web.StreamResponse:
        """Call after the platform acted: the answer is lost when `drop_after_next` is set."""
        if self.faults.drop_after_next > 0:
            self.faults.drop_after_next -= 1
            return self.drop(request)
        return response

    def record(self, text: str, **details: Any) -> dict[str, Any]:
        """Keep a post that the platform made; `id` is the platform's post id."""
        post = {"id": details.pop("id", None) or str(len(self.posts) + 1),
                "text": text, "at": time.time(), **details}
        self.posts.append(post)
        return post

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.client_max_size)
        app.router.add_post("/_control", self._control)
        app.router.add_get("/_state", self._state)
        app.router.add_post("/_account", self._account)
        self.routes(app)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner, self.base_url = await listen(self.app(), host, port)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def state(self) -> dict[str, Any]:
        return {"posts": self.posts, "refresh_calls": self.tokens.refresh_calls,
                "held": self.held, "faults": asdict(self.faults)}

    async def _state(self, _request: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def _account(self, _request: web.Request) -> web.Response:
        return web.json_response(self.account())

    async def _control(self, request: web.Request) -> web.Response:
        change = await json_object(request)
        if change is None:
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        if change.pop("reset", False):
            self.faults = Faults()
            self.posts.clear()
            self.tokens.refusing = False
        if change.pop("expire_tokens", False):
            self.tokens.expire_all()
        if "refuse_refresh" in change:
            self.tokens.refusing = bool(change.pop("refuse_refresh"))
        unknown = set(change) - set(CONTROL_TYPES)
        if unknown:
            return web.json_response({"error": f"unknown keys {sorted(unknown)}"}, status=400)
        try:
            for key, value in change.items():
                setattr(self.faults, key, CONTROL_TYPES[key](value))
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.state())


async def listen(app: web.Application, host: str = "127.0.0.1", port: int = 0
                 ) -> tuple[web.AppRunner, str]:
    """`app` served on `host:port` (port 0: a free one): its runner, which the caller cleans up,
    and its base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}"


async def until_signalled() -> None:
    """Return at SIGINT or SIGTERM, so that an emulator run as its own process (by the cluster
    tests, or by hand) stops cleanly."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else None


async def json_object(request: web.Request) -> dict[str, Any] | None:
    """The body as a JSON object; None when it is not JSON or not an object, which each
    platform refuses in its own words."""
    try:
        document = await request.json()
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


async def request_params(request: web.Request) -> dict[str, Any] | None:
    """A request's parameters as Graph, the Bot API and Rails read them: the query, then a
    JSON object body or a form, merged; None when a JSON body is not an object. `guard` has
    read the body already, so a body is looked for with `body_exists`, not `can_read_body`."""
    found: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        document = await json_object(request)
        if document is None:
            return None
        found.update(document)
    elif request.body_exists:
        found.update((await request.post()).items())
    return found


def oauth_error(status: int, error: str, description: str) -> web.Response:
    """An OAuth 2.0 error answer (RFC 6749 §5.2), as token endpoints give them."""
    return web.json_response({"error": error, "error_description": description}, status=status)


def iso(epoch: float) -> str:
    """A platform's timestamp: RFC 3339 in UTC, to the millisecond."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def utf16_units(text: str) -> int:
    """Text length in UTF-16 code units, as Graph, the Bot API and LinkedIn count it. Written
    here rather than imported from the providers, so a provider bug cannot hide behind a
    shared helper."""
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)
