"""Connecting accounts through OAuth (API.md "Connecting accounts through OAuth").

`POST /accounts/connect` remembers the request under a random `state` with its PKCE verifier
(sealed) and answers the platform's authorization URL. The platform sends the browser back to
`GET /oauth/callback?code=&state=`: the state is consumed before anything else happens, so it
works once, and the account is stored only after the platform gave its tokens. On any failure
nothing is stored.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import timedelta
from typing import Any

from aiohttp import web
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from scheduler.api import effects
from scheduler.api.accounts import account_doc, account_out
from scheduler.api.endpoint import Endpoint
from scheduler.api.errors import bad_request, invalid, unavailable
from scheduler.api.schemas import (
    AccountConnect,
    ConnectCallback,
    ConnectedOut,
    ConnectStarted,
)
from scheduler.api.wire import find_or_404, read_body, read_query, respond, runtime
from shared.providers.base import (
    Connected,
    OAuthApp,
    Provider,
    ProviderError,
    RateLimited,
    Transient,
)
from shared.providers.registry import available_platforms
from shared.runtime import Runtime
from shared.store import Doc

STATE_TTL = timedelta(minutes=10)


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge) as RFC 7636 defines them: 43+ unreserved characters."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _oauth_provider(rt: Runtime, platform: str) -> Provider:
    if platform not in available_platforms():
        raise invalid([("platform", f"{platform!r} is not available in this version")])
    provider = rt.provider(platform)
    if provider.connects_with != "oauth":
        raise invalid([("platform", f"{platform} accounts are created with their credentials "
                                    "through POST /accounts, not through OAuth")])
    return provider


async def _app(rt: Runtime, provider: Provider, config: dict[str, Any],
               redirect_uri: str, *, register: bool) -> OAuthApp:
    """The installation's client for the platform; for Mastodon, the one registered on the
    instance for this redirect URI, registered now (once) when `register`."""
    client = rt.settings.oauth_clients.get(provider.platform)
    if client is not None:
        return OAuthApp(client.client_id, client.client_secret)
    if provider.platform != "mastodon":
        name = f"HERALD_{provider.platform.upper()}_CLIENT"
        raise invalid([("platform", f"this installation has no OAuth client for "
                                    f"{provider.platform}: set {name}_ID and {name}_SECRET")])
    key = {"platform": provider.platform, "api_base": config.get("api_base"),
           "redirect_uri": redirect_uri}
    doc = await rt.store.oauth_apps.find_one(key)
    if doc is None and register:
        app = await _register(provider, config, redirect_uri)
        try:
            await rt.store.oauth_apps.insert_one({
                **key, "client_enc": rt.box.seal({"client_id": app.client_id,
                                                  "client_secret": app.client_secret}),
                "created_at": rt.clock.now_dt(),
            })
        except DuplicateKeyError:
            doc = await rt.store.oauth_apps.find_one(key)
        else:
            return app
    if doc is None:
        raise bad_request("Herald is no longer registered on this instance; connect again",
                          code="invalid_state")
    return OAuthApp(**rt.box.open(doc["client_enc"]))


async def _register(provider: Provider, config: dict[str, Any], redirect_uri: str
                    ) -> OAuthApp:
    """Register Herald on the instance: unreachable is a 503, a refusal a 422."""
    try:
        return await provider.register_app(config, redirect_uri)
    except (Transient, RateLimited) as exc:
        raise unavailable(f"{provider.platform} could not be reached: {exc}") from exc
    except ProviderError as exc:
        raise invalid([("config", f"{provider.platform} refused: {exc}")]) from exc


async def start_connect(request: web.Request) -> web.Response:
    rt = runtime(request)
    body = await read_body(request, AccountConnect)
    return respond(await connect(rt, body), status=201)


async def connect(rt: Runtime, body: AccountConnect) -> ConnectStarted:
    """Start a connect (the API's and the console's): the platform page to send the browser to."""
    provider = _oauth_provider(rt, body.platform)
    config = body.config
    if body.account_id is not None:
        account = await find_or_404(rt.store.accounts, "account", body.account_id)
        if account["platform"] != body.platform:
            raise invalid([("platform", f"account {body.account_id} is on "
                                        f"{account['platform']}, not {body.platform}")])
        config = {**account["config"], **body.config}
    elif body.name is None:
        raise invalid([("name", "required when no account_id is reconnected")])
    # Keys the platform itself supplies at the callback (a LinkedIn author) may be missing now.
    problems = [(f, m) for f, m in provider.validate_account(config, {})
                if f.startswith("config.") and m != "Field required"]
    if problems:
        raise invalid(problems)
    app = await _app(rt, provider, config, body.redirect_uri, register=True)
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(32)
    now = rt.clock.now_dt()
    expires_at = now + STATE_TTL
    url = provider.authorization_url(config, app, body.redirect_uri, state, challenge)
    await rt.store.oauth_states.insert_one({
        "_id": state, "platform": body.platform, "name": body.name,
        "account_id": body.account_id, "redirect_uri": body.redirect_uri, "config": config,
        "verifier_enc": rt.box.seal({"code_verifier": verifier}),
        "rate_limit": body.rate_limit.model_dump(exclude_none=True) if body.rate_limit else None,
        "on_unknown": str(body.on_unknown), "created_at": now, "expires_at": expires_at,
        "used_at": None,
    })
    return ConnectStarted(authorize_url=url, state=state, expires_at=expires_at)


async def _consume(rt: Runtime, state: str) -> Doc:
    """Take the connect request for `state`, once; the reason it cannot be taken is a 400."""
    now = rt.clock.now_dt()
    doc = await rt.store.oauth_states.find_one_and_update(
        {"_id": state, "used_at": None}, {"$set": {"used_at": now}})
    if doc is None:
        known = await rt.store.oauth_states.find_one({"_id": state}, {"_id": 1})
        reason = "was already used" if known else "is unknown"
        raise bad_request(f"the OAuth state {reason}", [("state", reason)],
                          code="invalid_state")
    if doc["expires_at"] <= now:
        raise bad_request("the OAuth state expired; connect again", [("state", "expired")],
                          code="invalid_state")
    return doc


async def callback(request: web.Request) -> web.Response:
    rt = runtime(request)
    query = read_query(request, ConnectCallback)
    pending = await _consume(rt, query.state)
    if query.error is not None:
        why = f"{query.error}: {query.error_description}" if query.error_description else (
            query.error)
        raise bad_request(f"the platform did not authorize the account ({why})",
                          [("error", why)], code="authorization_declined")
    if not query.code:
        raise bad_request("the callback carries no code", [("code", "required")])
    provider = _oauth_provider(rt, pending["platform"])
    app = await _app(rt, provider, pending["config"], pending["redirect_uri"], register=False)
    verifier = rt.box.open(pending["verifier_enc"])["code_verifier"]
    try:
        linked: Connected = await provider.exchange_code(
            pending["config"], app, pending["redirect_uri"], query.code, verifier)
    except (Transient, RateLimited) as exc:
        raise unavailable(f"{provider.platform} could not be reached: {exc}") from exc
    except ProviderError as exc:
        raise bad_request(f"{provider.platform} refused the authorization code: {exc}",
                          [("code", str(exc))], code="exchange_failed") from exc
    config = {**pending["config"], **linked.config}
    problems = provider.validate_account(config, linked.credentials)
    if problems:
        raise bad_request(f"{provider.platform} answered without what the account needs",
                          problems, code="exchange_failed")
    if pending.get("account_id"):
        doc = await _reconnect(rt, pending, Connected(linked.credentials, config))
    else:
        doc = account_doc(rt, pending["platform"], pending["name"],
                          Connected(linked.credentials, config),
                          rate_limit=pending["rate_limit"], on_unknown=pending["on_unknown"])
        await rt.store.accounts.insert_one(doc)
    return respond(ConnectedOut(account=account_out(doc)))


async def _reconnect(rt: Runtime, pending: Doc, linked: Connected) -> Doc:
    """Give the existing account its new credentials (a newer version, so no refresh in
    flight can overwrite them), make it active, and send the jobs that waited for it."""
    now = rt.clock.now_dt()
    changes: Doc = {"config": linked.config, "credentials_enc": rt.box.seal(linked.credentials),
                    "status": "active", "updated_at": now}
    if pending["name"] is not None:
        changes["name"] = pending["name"]
    doc = await rt.store.accounts.find_one_and_update(
        {"_id": pending["account_id"]},
        {"$set": changes, "$inc": {"credentials_version": 1}, "$unset": {"status_reason": ""}},
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:
        raise bad_request("the account was deleted while it was being reconnected",
                          [("state", "its account is gone")], code="invalid_state")
    await effects.resume_account(rt, doc["_id"])
    return doc


ENDPOINTS = [
    Endpoint("POST", "/accounts/connect", start_connect,
             "Start connecting an account through the platform's OAuth authorization page",
             ConnectStarted, status=201, body=AccountConnect, errors=(400, 422)),
    Endpoint("GET", "/oauth/callback", callback,
             "Where the platform sends the browser back (the state is the credential)",
             ConnectedOut, query=ConnectCallback, errors=(400, 422), public=True,
             changes=True),
]
