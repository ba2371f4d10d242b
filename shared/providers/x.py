"""The `x` platform: posts through X API v2 with an OAuth 2.0 user token (authorization code
with PKCE, docs/providers/x.md).

Access tokens live two hours and refresh tokens rotate: each refresh answers a new refresh
token and the old one is refused afterwards, so `refresh` hands back the whole new credentials
for the caller to store before anything else uses them. X takes no idempotency key, but it
refuses a repeat of recent text as duplicate content; when a retry meets that refusal the
earlier attempt landed, and the provider finds that post in the user's timeline (`lookup`),
as reconciliation does.
"""

from __future__ import annotations

import dataclasses
import html
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import aiohttp
from pydantic import Field

from shared.models import Strict
from shared.providers.base import (
    AuthExpired,
    AuthRevoked,
    Budget,
    Connected,
    ExpiresAt,
    HttpBase,
    OAuthApp,
    Permanent,
    Provider,
    ProviderError,
    Published,
    PublishRequest,
    RateLimited,
    Spent,
    TextLimit,
    Transient,
    credential,
    parsed,
    secrets_of,
)
from shared.providers.text import urls, x_weighted_length
from shared.providers.wire import (
    Answer,
    answer_error,
    at_epoch,
    bearer,
    call,
    oauth_credentials,
    parse_retry_after,
    retry_later,
    rfc3339_utc,
    utc,
)

DEFAULT_API_BASE = "https://api.x.com"
#: The authorization page is `https://x.com/i/oauth2/authorize`; the token endpoint is on the API.
DEFAULT_AUTH_BASE = "https://x.com"
#: `offline.access` is what makes X issue a refresh token at all.
SCOPES = "tweet.read tweet.write users.read offline.access"
MAX_WEIGHTED_LENGTH = 280
POST_URL = "https://x.com/i/web/status/{id}"
#: A retry's duplicate is searched for from a little before the job's time, for clock skew.
LOOKUP_SLACK = timedelta(minutes=5)
#: A lookup reads from this long before the `since` it is given: Herald's clock and
#: X's need not agree to the second.
CLOCK_SKEW = timedelta(minutes=1)
#: Timeline pages of 100 read by one lookup; a user posting more than this in the window is
#: not searched further back (the answer is then "not found").
LOOKUP_PAGES = 5
_URL_MARK = "\x00url\x00"


class XConfig(Strict):
    api_base: Annotated[HttpBase, Field(
        max_length=300,
        description="X API base URL (posts and the OAuth token endpoint)")] = DEFAULT_API_BASE
    auth_base: Annotated[HttpBase, Field(
        max_length=300,
        description="Where X's authorization page is served (`/i/oauth2/authorize`)",
    )] = DEFAULT_AUTH_BASE


class XCredentials(Strict):
    access_token: Annotated[str, Field(
        min_length=1, max_length=4096,
        description="OAuth 2.0 user access token (lives 2 hours)")]
    refresh_token: Annotated[str | None, Field(
        min_length=1, max_length=4096,
        description="OAuth 2.0 refresh token (offline.access); X rotates it on every "
                    "refresh")] = None
    expires_at: ExpiresAt = None


def _remaining_is_zero(value: str | None) -> bool:
    return (value or "").strip() == "0"


def spent_allowance(answer: Answer, now: datetime) -> Spent | None:
    """X's 24-hour allowances, read from any answer (epoch seconds): the user's spent holds
    the account, the app's spent holds the whole installation."""
    headers = answer.headers
    for prefix, scope in (("x-user-limit-24hour", "account"), ("x-app-limit-24hour", "app")):
        if _remaining_is_zero(headers.get(f"{prefix}-remaining")):
            at = at_epoch(headers.get(f"{prefix}-reset"), now)
            if at is not None:
                return Spent(at, "account" if scope == "account" else "app")
    return None


def rate_limited(answer: Answer, now: datetime) -> RateLimited:
    """X's 429 in its own units (epoch seconds): a spent 24-hour user allowance holds the
    account, a spent app allowance the whole installation, anything else this request."""
    spent = spent_allowance(answer, now)
    if spent is not None:
        who = "user's" if spent.scope == "account" else "app's"
        return RateLimited(f"x: the {who} 24-hour post limit is spent until "
                           f"{rfc3339_utc(spent.until)}", spent.until, scope=spent.scope)
    at = at_epoch(answer.headers.get("x-rate-limit-reset"), now)
    if at is None:
        at = parse_retry_after(answer.headers.get("Retry-After"), now)
    return retry_later("x answered 429", at)


def api_error(answer: Answer, secrets: list[str]) -> ProviderError:
    """The taxonomy for an X API answer that is not a success."""
    message = answer_error("x", answer, secrets)
    if answer.status == 429:
        return rate_limited(answer, datetime.now(UTC))
    if answer.status == 401:
        return AuthExpired(message)
    if answer.status >= 500:
        return Transient(message)
    return Permanent(message)


def is_duplicate(answer: Answer) -> bool:
    """X's 403 for a text the user posted recently (`detail` of the problem document)."""
    if answer.status != 403:
        return False
    document = answer.object()
    texts = [document.get("detail"), document.get("title")] + [
        e.get("message") for e in document.get("errors") or [] if isinstance(e, dict)]
    return any(isinstance(t, str) and "duplicate content" in t.lower() for t in texts)


def comparable(text: str) -> str:
    """Text as X gives it back and as we sent it, made comparable: X shortens every URL to a
    t.co link and HTML-escapes `&`, `<` and `>` in `text`, and trims surrounding space."""
    plain = unicodedata.normalize("NFC", text).strip()
    parts: list[str] = []
    last = 0
    for start, end, _url in urls(plain):
        parts += [plain[last:start], _URL_MARK]
        last = end
    parts.append(plain[last:])
    return "".join(parts)


def _published(document: dict[str, Any]) -> Published:
    data = document.get("data")
    post_id = data.get("id") if isinstance(data, dict) else None
    if not isinstance(post_id, str) or not post_id:
        return Published()
    return Published(post_id, POST_URL.format(id=post_id))


class XProvider(Provider):
    platform = "x"
    connects_with = "oauth"
    honours_idempotency_key = False
    supports_lookup = True
    #: POST /2/tweets: 100 requests per 15 minutes per user (X's rate-limit table).
    default_budget = Budget(100, 15 * 60)

    Config = XConfig
    Credentials = XCredentials

    # --- limits -----------------------------------------------------------------------------

    async def text_limit(self, config: dict[str, Any]) -> TextLimit:
        return TextLimit(MAX_WEIGHTED_LENGTH, "weighted characters")

    def measure(self, text: str) -> int:
        return x_weighted_length(text)

    # --- OAuth ------------------------------------------------------------------------------

    def authorization_url(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                          state: str, code_challenge: str) -> str:
        params = {
            "response_type": "code", "client_id": app.client_id, "redirect_uri": redirect_uri,
            "scope": SCOPES, "state": state, "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        base = parsed(XConfig, config, "x", "config").auth_base.rstrip("/")
        return f"{base}/i/oauth2/authorize?{urlencode(params, quote_via=quote)}"

    async def exchange_code(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                            code: str, code_verifier: str) -> Connected:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": code_verifier, "client_id": app.client_id}
        answer = await self._token_call(parsed(XConfig, config, "x", "config"), app, form,
                                        [code, code_verifier])
        if not answer.ok:
            if answer.status == 429 or answer.status >= 500:
                raise api_error(answer, secrets_of({}, app))
            raise Permanent(answer_error("x", answer, [*secrets_of({}, app), code]))
        return Connected(credentials=oauth_credentials("x", answer, {}))

    async def refresh(self, config: dict[str, Any], credentials: dict[str, Any],
                      app: OAuthApp | None) -> dict[str, Any]:
        """One refresh call. The refresh token is spent by it even when the answer is lost:
        a Transient here can be followed by AuthRevoked on the next try, which is X's rule."""
        refresh_token = credential(credentials, "refresh_token", "x",
                                   "x: no refresh token (the account was connected without "
                                   "offline.access); reconnect it")
        if app is None:
            raise Permanent("x: no OAuth client is configured (HERALD_X_CLIENT_ID) to refresh "
                            "with")
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
                "client_id": app.client_id}
        secrets = secrets_of(credentials, app)
        answer = await self._token_call(parsed(XConfig, config, "x", "config"), app, form, secrets)
        if answer.ok:
            return oauth_credentials("x", answer, credentials)
        message = answer_error("x", answer, secrets)
        if answer.status == 429 or answer.status >= 500:
            raise api_error(answer, secrets)
        if answer.status == 400:
            raise AuthRevoked(f"{message} (the refresh token was refused; reconnect)")
        raise Permanent(message)

    async def _token_call(self, config: XConfig, app: OAuthApp, form: dict[str, str],
                          secrets: list[str]) -> Answer:
        """`POST /2/oauth2/token`; a confidential client authenticates with HTTP Basic."""
        headers = ({"Authorization": aiohttp.encode_basic_auth(app.client_id, app.client_secret)}
                   if app.client_secret else None)
        return await call(
            self.session, "POST", f"{config.api_base.rstrip('/')}/2/oauth2/token",
            platform="x", secrets=[*secrets, *secrets_of({}, app)], data=form, headers=headers)

    # --- publishing -------------------------------------------------------------------------

    async def publish(self, request: PublishRequest) -> Published:
        """One post today; a thread or media later adds calls before and after this one,
        each saved in `request.checkpoints` before the next."""
        return await self._create(request, {"text": request.content.text})

    async def _create(self, request: PublishRequest, body: dict[str, Any]) -> Published:
        config = parsed(XConfig, request.config, "x", "config")
        token = credential(request.credentials, "access_token", "x")
        secrets = secrets_of(request.credentials)
        answer = await call(
            self.session, "POST", f"{config.api_base.rstrip('/')}/2/tweets", platform="x",
            secrets=secrets, json=body, headers=bearer(token))
        if answer.ok:
            published = _published(answer.object())
            spent = spent_allowance(answer, datetime.now(UTC))
            return dataclasses.replace(published, spent=spent) if spent else published
        if is_duplicate(answer):
            found = await self.lookup(request, utc(request.scheduled_for) - LOOKUP_SLACK)
            if found is not None:
                return found
            raise Permanent("x refused the text as a duplicate of a recent post that is not "
                            "this job's (none was found since the job's time)")
        raise api_error(answer, secrets)

    async def lookup(self, request: PublishRequest, since: datetime) -> Published | None:
        """The oldest post of the user since `since` (less CLOCK_SKEW) whose text is this
        job's: the user's id from `/2/users/me`, then the timeline from then on, newest
        first."""
        config = parsed(XConfig, request.config, "x", "config")
        token = credential(request.credentials, "access_token", "x")
        secrets = secrets_of(request.credentials)
        base = config.api_base.rstrip("/")
        headers = bearer(token)
        answer = await call(self.session, "GET", f"{base}/2/users/me", platform="x",
                            secrets=secrets, headers=headers)
        if not answer.ok:
            raise api_error(answer, secrets)
        data = answer.object().get("data")
        user_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(user_id, str) or not user_id:
            raise Transient("x: /2/users/me answered without the user's id")
        wanted = comparable(request.content.text)
        start = utc(since) - CLOCK_SKEW
        params = {"start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "max_results": "100",
                  "tweet.fields": "created_at"}
        found: Published | None = None
        for _page in range(LOOKUP_PAGES):
            answer = await call(self.session, "GET", f"{base}/2/users/{quote(user_id)}/tweets",
                                platform="x", secrets=secrets, headers=headers, params=params)
            if not answer.ok:
                raise api_error(answer, secrets)
            document = answer.object()
            for post in document.get("data") or []:
                text = post.get("text") if isinstance(post, dict) else None
                if isinstance(text, str) and comparable(html.unescape(text)) == wanted:
                    found = _published({"data": post})
            meta = document.get("meta")
            next_token = meta.get("next_token") if isinstance(meta, dict) else None
            if not isinstance(next_token, str) or not next_token:
                break
            params = {**params, "pagination_token": next_token}
        return found
