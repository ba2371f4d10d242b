"""The `linkedin` platform: posts through the versioned Posts API (`/rest/posts`) as a member or
an organization, with a 3-legged OAuth 2.0 token (docs/providers/linkedin.md).

The post text goes in `commentary`, which LinkedIn reads as "little" text: reserved characters
are backslash-escaped so that the text shows as written (an unescaped one can cut the post
short). LinkedIn takes no idempotency key but refuses a repeat of a recent text as a duplicate,
naming the earlier post; that post is taken as this job's only when `lookup` confirms it, which
needs read access to the author's posts (r_member_social, restricted, or r_organization_social).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

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
    OutcomeUnknown,
    Permanent,
    Provider,
    ProviderError,
    Published,
    PublishRequest,
    RateLimited,
    TextLimit,
    Transient,
    credential,
    parsed,
    secrets_of,
)
from shared.providers.text import utf16_units
from shared.providers.wire import (
    Answer,
    answer_error,
    bearer,
    call,
    oauth_credentials,
    parse_retry_after,
    retry_later,
    rfc3339_utc,
    utc,
)

DEFAULT_API_BASE = "https://api.linkedin.com"
#: The authorization page and the token endpoint are both on www.linkedin.com.
DEFAULT_AUTH_BASE = "https://www.linkedin.com"
#: A LinkedIn-Version that is active (each is served for at least a year after its month).
DEFAULT_API_VERSION = "202609"
#: A member posts for itself; `openid profile` let Herald read who connected (`/v2/userinfo`).
MEMBER_SCOPES = "openid profile w_member_social"
#: An organization's page is posted to, and read back for lookups, by one of its admins.
ORGANIZATION_SCOPES = "w_organization_social r_organization_social"
MAX_COMMENTARY = 3000
POST_URL = "https://www.linkedin.com/feed/update/{urn}/"
AUTHOR_URN = r"^urn:li:(person|organization):[A-Za-z0-9_\-]+$"
#: The characters the little text format reserves; each is written as `\<char>`.
RESERVED = frozenset("\\|{}@[]()<>#*_~")
#: LinkedIn names the throttle in its 429 body; a DAY limit resets at midnight UTC.
_THROTTLE = re.compile(r"throttle\s+(?P<who>[A-Z_]+)\s+(?P<window>[A-Z]+)\s+limit", re.IGNORECASE)
_DUPLICATE_OF = re.compile(r"duplicate of (?P<urn>urn:li:[A-Za-z]+:[0-9]+)")
#: A retry's duplicate is searched for from a little before the job's time, for clock skew.
LOOKUP_SLACK = timedelta(minutes=5)
#: A lookup reads from this long before the `since` it is given: Herald's clock and
#: LinkedIn's need not agree to the second.
CLOCK_SKEW = timedelta(minutes=1)
LOOKUP_PAGE = 50
LOOKUP_PAGES = 4


class LinkedInConfig(Strict):
    api_base: Annotated[HttpBase, Field(
        max_length=300,
        description="LinkedIn API base URL (`/rest/posts`, `/v2/userinfo`)")] = DEFAULT_API_BASE
    auth_base: Annotated[HttpBase, Field(
        max_length=300,
        description="Where LinkedIn's OAuth pages are served (`/oauth/v2/authorization`, "
                    "`/oauth/v2/accessToken`)")] = DEFAULT_AUTH_BASE
    author_urn: Annotated[str | None, Field(
        pattern=AUTHOR_URN, max_length=200,
        description="Who posts: `urn:li:person:<id>` (filled in when the member connects) or "
                    "`urn:li:organization:<id>` for a page the member administers")] = None
    api_version: Annotated[str, Field(
        pattern=r"^[0-9]{6}(\.[0-9]{2})?$",
        description=f"The LinkedIn-Version header (YYYYMM); default {DEFAULT_API_VERSION}",
    )] = DEFAULT_API_VERSION


class LinkedInCredentials(Strict):
    access_token: Annotated[str, Field(
        min_length=1, max_length=4096,
        description="3-legged OAuth 2.0 access token (lives 60 days)")]
    refresh_token: Annotated[str | None, Field(
        min_length=1, max_length=4096,
        description="Refresh token, issued only to approved partners; it keeps the "
                    "expiry of the first grant (365 days)")] = None
    expires_at: ExpiresAt = None


def escape_little_text(text: str) -> str:
    """`text` as little text that LinkedIn shows verbatim: every reserved character escaped."""
    return "".join("\\" + c if c in RESERVED else c for c in text)


def _headers(token: str, config: LinkedInConfig) -> dict[str, str]:
    return {**bearer(token), "LinkedIn-Version": config.api_version,
            "X-Restli-Protocol-Version": "2.0.0"}


def next_midnight_utc(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), UTC)


def rate_limited(answer: Answer, now: datetime) -> RateLimited:
    """LinkedIn's 429 carries no reset header. Its body names the throttle: a DAY limit
    resets at midnight UTC, for the member (account) or the whole application (app). Any
    other 429 (LinkedIn's infrastructure protection, which clears by itself) waits
    Retry-After when sent, else a minute."""
    message = answer.object().get("message")
    match = _THROTTLE.search(message) if isinstance(message, str) else None
    if match and match["window"].upper() == "DAY":
        at = next_midnight_utc(now)
        who = match["who"].upper()
        scope: Literal["account", "app"] = "account" if "MEMBER" in who else "app"
        return RateLimited(f"linkedin: the {who.lower()} daily limit is spent until "
                           f"{rfc3339_utc(at)}", at, scope=scope)
    at = parse_retry_after(answer.headers.get("Retry-After"), now)
    return retry_later("linkedin answered 429", at)


def api_error(answer: Answer, secrets: list[str], *, refreshable: bool) -> ProviderError:
    """The taxonomy for a LinkedIn API answer that is not a success. A 401 is an expired
    (or revoked) token: a refresh may fix it only when the account holds a refresh token."""
    message = answer_error("linkedin", answer, secrets)
    if answer.status == 429:
        return rate_limited(answer, datetime.now(UTC))
    if answer.status == 401:
        return AuthExpired(message) if refreshable else AuthRevoked(
            f"{message} (no refresh token is held; reconnect the account)")
    if answer.status == 426:
        return Permanent(f"{message} (set config.api_version to an active LinkedIn-Version)")
    if answer.status >= 500:
        return Transient(message)
    return Permanent(message)


def duplicate_of(answer: Answer) -> str | None:
    """The earlier post's URN when LinkedIn refused the post as a duplicate (422
    DUPLICATE_POST, "Content is a duplicate of urn:li:share:..."), else None."""
    if answer.status != 422:
        return None
    document = answer.object()
    details = document.get("errorDetails")
    inputs = details.get("inputErrors") if isinstance(details, dict) else None
    codes = [e.get("code") for e in inputs or [] if isinstance(e, dict)]
    message = document.get("message")
    match = _DUPLICATE_OF.search(message) if isinstance(message, str) else None
    if "DUPLICATE_POST" not in codes and match is None:
        return None
    return match["urn"] if match else ""


def _published(urn: str | None) -> Published:
    if not urn:
        return Published()
    return Published(urn, POST_URL.format(urn=urn))


class LinkedInProvider(Provider):
    platform = "linkedin"
    connects_with = "oauth"
    honours_idempotency_key = False
    supports_lookup = True
    #: LinkedIn publishes no standard limits; 150 posts a member a day is the figure
    #: schedulers work to (docs/providers/linkedin.md).
    default_budget = Budget(150, 24 * 3600)

    Config = LinkedInConfig
    Credentials = LinkedInCredentials

    # --- limits -----------------------------------------------------------------------------

    async def text_limit(self, config: dict[str, Any]) -> TextLimit:
        return TextLimit(MAX_COMMENTARY, "characters")

    def measure(self, text: str) -> int:
        """Characters as LinkedIn's (JavaScript) composer counts them, UTF-16 units, of the
        text as written, before escaping."""
        return utf16_units(text)

    # --- accounts and OAuth -----------------------------------------------------------------

    async def connect(self, config: dict[str, Any], credentials: dict[str, Any]) -> Connected:
        """A token sent directly still needs an author: the member it belongs to, unless the
        config names one (an organization)."""
        linked = parsed(LinkedInConfig, config, "linkedin", "config")
        if linked.author_urn:
            return Connected(credentials=credentials)
        urn = await self._member_urn(linked, credential(credentials, "access_token", "linkedin"),
                                     secrets_of(credentials))
        return Connected(credentials=credentials, config={"author_urn": urn})

    def authorization_url(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                          state: str, code_challenge: str) -> str:
        """LinkedIn's web flow has no PKCE (the client secret authenticates the exchange), so
        `code_challenge` is not sent."""
        linked = parsed(LinkedInConfig, config, "linkedin", "config")
        organization = (linked.author_urn or "").startswith("urn:li:organization:")
        params = {"response_type": "code", "client_id": app.client_id,
                  "redirect_uri": redirect_uri, "state": state,
                  "scope": ORGANIZATION_SCOPES if organization else MEMBER_SCOPES}
        return (f"{linked.auth_base.rstrip('/')}/oauth/v2/authorization?"
                f"{urlencode(params, quote_via=quote)}")

    async def exchange_code(self, config: dict[str, Any], app: OAuthApp, redirect_uri: str,
                            code: str, code_verifier: str) -> Connected:
        linked = parsed(LinkedInConfig, config, "linkedin", "config")
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        answer = await self._token_call(linked, app, form, [code])
        if not answer.ok:
            secrets = [*secrets_of({}, app), code]
            if answer.status == 429 or answer.status >= 500:
                raise api_error(answer, secrets, refreshable=False)
            raise Permanent(answer_error("linkedin", answer, secrets))
        credentials = oauth_credentials("linkedin", answer, {})
        if linked.author_urn:
            return Connected(credentials=credentials)
        urn = await self._member_urn(linked, credentials["access_token"],
                                     secrets_of(credentials, app))
        return Connected(credentials=credentials, config={"author_urn": urn})

    async def _member_urn(self, config: LinkedInConfig, token: str, secrets: list[str]) -> str:
        """`urn:li:person:<sub>` of the token's member, from the OpenID Connect userinfo."""
        answer = await call(self.session, "GET", f"{config.api_base.rstrip('/')}/v2/userinfo",
                            platform="linkedin", secrets=secrets,
                            headers=bearer(token))
        if answer.status == 429 or answer.status >= 500:
            raise api_error(answer, secrets, refreshable=False)
        sub = answer.object().get("sub") if answer.ok else None
        if not isinstance(sub, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", sub):
            raise Permanent(f"{answer_error('linkedin', answer, secrets)} (could not read the "
                            f"member from /v2/userinfo; the token needs openid and profile)")
        return f"urn:li:person:{sub}"

    async def refresh(self, config: dict[str, Any], credentials: dict[str, Any],
                      app: OAuthApp | None) -> dict[str, Any]:
        """LinkedIn keeps the refresh token (its lifetime runs from the first grant); the
        access token is new, for another 60 days."""
        refresh_token = credential(credentials, "refresh_token", "linkedin",
                                   "linkedin: no refresh token (LinkedIn issues them to "
                                   "approved partners only); reconnect the account")
        if app is None:
            raise Permanent("linkedin: no OAuth client is configured "
                            "(HERALD_LINKEDIN_CLIENT_ID) to refresh with")
        secrets = secrets_of(credentials, app)
        answer = await self._token_call(
            parsed(LinkedInConfig, config, "linkedin", "config"), app,
            {"grant_type": "refresh_token", "refresh_token": refresh_token}, secrets)
        if answer.ok:
            return oauth_credentials("linkedin", answer, credentials)
        message = answer_error("linkedin", answer, secrets)
        if answer.status == 429 or answer.status >= 500:
            raise api_error(answer, secrets, refreshable=False)
        if answer.status in (400, 401):
            raise AuthRevoked(f"{message} (the refresh token was refused; reconnect)")
        raise Permanent(message)

    async def _token_call(self, config: LinkedInConfig, app: OAuthApp, form: dict[str, str],
                          secrets: list[str]) -> Answer:
        """`POST /oauth/v2/accessToken`, the client authenticated in the form."""
        body = {**form, "client_id": app.client_id, "client_secret": app.client_secret or ""}
        return await call(
            self.session, "POST", f"{config.auth_base.rstrip('/')}/oauth/v2/accessToken",
            platform="linkedin", secrets=[*secrets, *secrets_of({}, app)], data=body)

    # --- publishing -------------------------------------------------------------------------

    async def publish(self, request: PublishRequest) -> Published:
        """One `POST /rest/posts`; media later adds upload calls before it, each saved in
        `request.checkpoints` before the next."""
        config = parsed(LinkedInConfig, request.config, "linkedin", "config")
        if not config.author_urn:
            raise Permanent("linkedin: config.author_urn is not set; reconnect the account")
        body = {
            "author": config.author_urn,
            "commentary": escape_little_text(request.content.text),
            "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                             "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }
        return await self._create(request, config, body)

    async def _create(self, request: PublishRequest, config: LinkedInConfig,
                      body: dict[str, Any]) -> Published:
        token = credential(request.credentials, "access_token", "linkedin")
        secrets = secrets_of(request.credentials)
        answer = await call(
            self.session, "POST", f"{config.api_base.rstrip('/')}/rest/posts",
            platform="linkedin", secrets=secrets, json=body, headers=_headers(token, config))
        if answer.ok:
            return _published(answer.headers.get("x-restli-id"))
        earlier = duplicate_of(answer)
        if earlier is not None:
            return await self._confirm_duplicate(request, earlier, answer, secrets)
        raise api_error(answer, secrets, refreshable=bool(request.credentials.get("refresh_token")))

    async def _confirm_duplicate(self, request: PublishRequest, earlier: str, answer: Answer,
                                 secrets: list[str]) -> Published:
        """The earlier post is this job's only if it was made since the job's time with this
        text: a recurring post repeating yesterday's text must not count as published."""
        refused = answer_error("linkedin", answer, secrets)
        try:
            found = await self.lookup(request, utc(request.scheduled_for) - LOOKUP_SLACK)
        except Permanent as exc:
            raise Permanent(f"{refused}; whether {earlier or 'that post'} is this job's could "
                            f"not be checked: {exc}") from exc
        if found is None:
            raise Permanent(f"{refused}; no post with this text since the job's time")
        return found

    async def _find_by_author(self, config: LinkedInConfig, token: str, secrets: list[str],
                              start: int) -> Answer:
        """`GET /rest/posts?q=author&author=<urn>` sent through LinkedIn's query tunnelling
        (a POST with `X-HTTP-Method-Override: GET` and the query as a form body): Rest.li 2.0
        wants the URN's colons percent-encoded, and a query in the URL would have them decoded
        again on the way out. Losing the answer of this read is only Transient."""
        query = urlencode({"q": "author", "author": config.author_urn, "count": LOOKUP_PAGE,
                           "start": start, "sortBy": "LAST_MODIFIED"}, quote_via=quote)
        headers = {**_headers(token, config), "X-HTTP-Method-Override": "GET",
                   "Content-Type": "application/x-www-form-urlencoded"}
        try:
            return await call(self.session, "POST", f"{config.api_base.rstrip('/')}/rest/posts",
                              platform="linkedin", secrets=secrets, data=query.encode("ascii"),
                              headers=headers)
        except OutcomeUnknown as exc:
            raise Transient(str(exc)) from exc

    async def lookup(self, request: PublishRequest, since: datetime) -> Published | None:
        """The oldest post of the author made since `since` (less CLOCK_SKEW) with this job's
        commentary, from the author's posts newest first (`GET /rest/posts?q=author`)."""
        config = parsed(LinkedInConfig, request.config, "linkedin", "config")
        if not config.author_urn:
            raise Permanent("linkedin: config.author_urn is not set; reconnect the account")
        token = credential(request.credentials, "access_token", "linkedin")
        secrets = secrets_of(request.credentials)
        wanted = escape_little_text(request.content.text)
        since_ms = int((utc(since) - CLOCK_SKEW).timestamp() * 1000)
        found: Published | None = None
        for page in range(LOOKUP_PAGES):
            answer = await self._find_by_author(config, token, secrets, page * LOOKUP_PAGE)
            if answer.status == 403:
                raise Permanent(f"{answer_error('linkedin', answer, secrets)} (reading the "
                                f"author's posts needs r_member_social or r_organization_social)")
            if not answer.ok:
                raise api_error(answer, secrets,
                                refreshable=bool(request.credentials.get("refresh_token")))
            elements = [e for e in answer.object().get("elements") or [] if isinstance(e, dict)]
            for post in elements:
                created = post.get("createdAt")
                if (post.get("commentary") == wanted and isinstance(created, int)
                        and created >= since_ms and isinstance(post.get("id"), str)):
                    found = _published(post["id"])
            modified = [e.get("lastModifiedAt", e.get("createdAt")) for e in elements]
            older = any(isinstance(m, int) and m < since_ms for m in modified)
            if older or len(elements) < LOOKUP_PAGE:
                break
        return found
