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
import warnings
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import aiohttp
from pydantic import Field, ValidationError

from shared.models import Strict
from shared.providers.base import (
    AuthExpired,
    AuthRevoked,
    Budget,
    Connected,
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
)
from shared.providers.text import x_weighted_length
from shared.providers.wire import (
    Answer,
    answer_error,
    at_epoch,
    call,
    parse_retry_after,
    rfc3339_utc,
)

with warnings.catch_warnings():
    # twitter-text-parser reads its emoji table through pkg_resources, which warns on import.
    warnings.simplefilter("ignore")
    from twitter_text import extract_urls_with_indices

DEFAULT_API_BASE = "https://api.x.com"
#: The authorization page is `https://x.com/i/oauth2/authorize`; the token endpoint is on the API.
DEFAULT_AUTH_BASE = "https://x.com"
#: `offline.access` is what makes X issue a refresh token at all.
SCOPES = "tweet.read tweet.write users.read offline.access"
MAX_WEIGHTED_LENGTH = 280
POST_URL = "https://x.com/i/web/status/{id}"
HTTP_URL = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"
RFC3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
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
    api_base: Annotated[str, Field(
        pattern=HTTP_URL, max_length=300,
        description="X API base URL (posts and the OAuth token endpoint)")] = DEFAULT_API_BASE
    auth_base: Annotated[str, Field(
        pattern=HTTP_URL, max_length=300,
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
    expires_at: Annotated[str | None, Field(
        pattern=RFC3339, json_schema_extra={"format": "date-time"},
        description="When the access token expires (RFC 3339)")] = None


def _config(config: dict[str, Any]) -> XConfig:
    try:
        return XConfig.model_validate(config)
    except ValidationError as exc:
        raise Permanent(f"x account config is invalid: {exc.errors()[0]['msg']}") from exc


def _token(credentials: dict[str, Any]) -> str:
    token = credentials.get("access_token")
    if not isinstance(token, str) or not token:
        raise AuthRevoked("x account has no access token")
    return token


def _secrets(credentials: dict[str, Any], app: OAuthApp | None = None) -> list[str]:
    values = [credentials.get("access_token"), credentials.get("refresh_token")]
    if app is not None:
        values.append(app.client_secret)
    return [v for v in values if isinstance(v, str) and v]


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
    return RateLimited(f"x answered 429, retry at {rfc3339_utc(at)}", at, scope="request")


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
    for url in extract_urls_with_indices(plain):
        start, end = url["indices"]
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


def _utc(value: datetime) -> datetime:
    """MongoDB hands dates back naive, in UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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
        base = _config(config).auth_base.rstrip("/")
        return f"{base}/i/oauth2/authorize?{urlencode(params, quote_via=quote)}"

    async def exchange_code(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                            code: str, code_verifier: str) -> Connected:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": code_verifier, "client_id": app.client_id}
        answer = await self._token_call(_config(config), app, form, [code, code_verifier])
        if not answer.ok:
            if answer.status == 429 or answer.status >= 500:
                raise api_error(answer, _secrets({}, app))
            raise Permanent(answer_error("x", answer, [*_secrets({}, app), code]))
        return Connected(credentials=self._credentials(answer, {}))

    async def refresh(self, config: dict[str, Any], credentials: dict[str, Any],
                      app: OAuthApp | None) -> dict[str, Any]:
        """One refresh call. The refresh token is spent by it even when the answer is lost:
        a Transient here can be followed by AuthRevoked on the next try, which is X's rule."""
        refresh_token = credentials.get("refresh_token")
        if not isinstance(refresh_token, str) or not refresh_token:
            raise AuthRevoked("x: no refresh token (the account was connected without "
                              "offline.access); reconnect it")
        if app is None:
            raise Permanent("x: no OAuth client is configured (HERALD_X_CLIENT_ID) to refresh "
                            "with")
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
                "client_id": app.client_id}
        secrets = _secrets(credentials, app)
        answer = await self._token_call(_config(config), app, form, secrets)
        if answer.ok:
            return self._credentials(answer, credentials)
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
            platform="x", secrets=[*secrets, *_secrets({}, app)], data=form, headers=headers)

    @staticmethod
    def _credentials(answer: Answer, old: dict[str, Any]) -> dict[str, Any]:
        document = answer.object()
        access_token = document.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise Transient("x: the token endpoint answered without an access_token")
        new = {**old, "access_token": access_token}
        refresh_token = document.get("refresh_token")
        if isinstance(refresh_token, str) and refresh_token:
            new["refresh_token"] = refresh_token
        expires_in = document.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            new["expires_at"] = rfc3339_utc(datetime.now(UTC) + timedelta(seconds=expires_in))
        return new

    # --- publishing -------------------------------------------------------------------------

    async def publish(self, request: PublishRequest) -> Published:
        """One post today; a thread or media later adds calls before and after this one,
        each saved in `request.checkpoints` before the next."""
        return await self._create(request, {"text": request.content.text})

    async def _create(self, request: PublishRequest, body: dict[str, Any]) -> Published:
        config = _config(request.config)
        token = _token(request.credentials)
        secrets = _secrets(request.credentials)
        answer = await call(
            self.session, "POST", f"{config.api_base.rstrip('/')}/2/tweets", platform="x",
            secrets=secrets, json=body, headers={"Authorization": f"Bearer {token}"})
        if answer.ok:
            published = _published(answer.object())
            spent = spent_allowance(answer, datetime.now(UTC))
            return dataclasses.replace(published, spent=spent) if spent else published
        if is_duplicate(answer):
            found = await self.lookup(request, _utc(request.scheduled_for) - LOOKUP_SLACK)
            if found is not None:
                return found
            raise Permanent("x refused the text as a duplicate of a recent post that is not "
                            "this job's (none was found since the job's time)")
        raise api_error(answer, secrets)

    async def lookup(self, request: PublishRequest, since: datetime) -> Published | None:
        """The oldest post of the user since `since` (less CLOCK_SKEW) whose text is this
        job's: the user's id from `/2/users/me`, then the timeline from then on, newest
        first."""
        config = _config(request.config)
        token = _token(request.credentials)
        secrets = _secrets(request.credentials)
        base = config.api_base.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"}
        answer = await call(self.session, "GET", f"{base}/2/users/me", platform="x",
                            secrets=secrets, headers=headers)
        if not answer.ok:
            raise api_error(answer, secrets)
        data = answer.object().get("data")
        user_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(user_id, str) or not user_id:
            raise Transient("x: /2/users/me answered without the user's id")
        wanted = comparable(request.content.text)
        start = _utc(since) - CLOCK_SKEW
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
