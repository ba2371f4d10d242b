"""Accounts: the platform identities posts are published to (API.md "Accounts").

Credentials are sealed with the node's CredentialBox before they are stored and are never
returned or logged; a provider validates config and credentials together before any write.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from scheduler.api import effects
from scheduler.api.endpoint import Endpoint
from scheduler.api.errors import conflict, invalid, unavailable
from scheduler.api.pagination import page
from scheduler.api.schemas import (
    AccountCreate,
    AccountDeleteQuery,
    AccountOut,
    AccountPage,
    AccountPatch,
    PageQuery,
)
from scheduler.api.wire import find_or_404, read_body, read_query, respond, runtime
from shared.credentials import REAUTH_REQUIRED
from shared.models import ACTIVE_STATES, UNFINISHED_STATES, new_id
from shared.providers.base import Connected, Provider, ProviderError, RateLimited, Transient
from shared.providers.registry import available_platforms
from shared.runtime import Runtime
from shared.store import Doc


def account_out(doc: Doc) -> AccountOut:
    return AccountOut(
        id=doc["_id"], platform=doc["platform"], name=doc["name"], config=doc["config"],
        status=doc["status"], status_reason=doc.get("status_reason"),
        rate_limit=doc.get("rate_limit"),
        on_unknown=doc.get("on_unknown", "retry"), created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


def _provider(rt: Runtime, platform: str) -> Provider | None:
    return rt.provider(platform) if platform in available_platforms() else None


async def connected(provider: Provider, config: dict[str, Any],
                    credentials: dict[str, Any]) -> Connected:
    """What the platform makes of the credentials sent (a Bluesky app password becomes a
    session); its refusal is the client's problem (422), its absence is not (503)."""
    try:
        return await provider.connect(config, credentials)
    except (Transient, RateLimited) as exc:
        raise unavailable(f"{provider.platform} could not be reached to check the "
                          f"credentials: {exc}") from exc
    except ProviderError as exc:
        raise invalid([("credentials", f"{provider.platform} refused them: {exc}")]) from exc


def account_doc(rt: Runtime, platform: str, name: str, linked: Connected, *,
                rate_limit: Doc | None, on_unknown: str) -> Doc:
    """A new account as stored: credentials sealed, version 1 (see shared.credentials)."""
    now = rt.clock.now_dt()
    return {
        "_id": new_id(),
        "platform": platform,
        "name": name,
        "config": linked.config,
        "credentials_enc": rt.box.seal(linked.credentials),
        "credentials_version": 1,
        "rate_limit": rate_limit,
        "on_unknown": on_unknown,
        "status": "active",
        "created_at": now,
        "updated_at": now,
    }


def _merge(stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Top-level merge patch: sent keys replace stored ones, keys sent as null are removed."""
    merged = {**stored, **patch}
    return {k: v for k, v in merged.items() if v is not None}


async def _account(rt: Runtime, account_id: str) -> Doc:
    return await find_or_404(rt.store.accounts, "account", account_id)


async def create_account(request: web.Request) -> web.Response:
    rt = runtime(request)
    body = await read_body(request, AccountCreate)
    provider = _provider(rt, body.platform)
    if provider is None:
        raise invalid([("platform", f"{body.platform!r} is not available in this version; "
                                    f"available: {', '.join(available_platforms())}")])
    problems = provider.validate_account(body.config, body.credentials)
    if problems:
        raise invalid(problems)
    linked = await connected(provider, body.config, body.credentials)
    doc = account_doc(
        rt, body.platform, body.name,
        Connected(linked.credentials, {**body.config, **linked.config}),
        rate_limit=body.rate_limit.model_dump(exclude_none=True) if body.rate_limit else None,
        on_unknown=str(body.on_unknown),
    )
    await rt.store.accounts.insert_one(doc)
    return respond(account_out(await _account(rt, doc["_id"])), status=201)


async def list_accounts(request: web.Request) -> web.Response:
    rt = runtime(request)
    docs, cursor = await page(rt.store.accounts, {}, read_query(request, PageQuery))
    return respond(AccountPage(items=[account_out(d) for d in docs], next=cursor))


async def get_account(request: web.Request) -> web.Response:
    rt = runtime(request)
    return respond(account_out(await _account(rt, request.match_info["id"])))


async def patch_account(request: web.Request) -> web.Response:
    rt = runtime(request)
    body = await read_body(request, AccountPatch)
    return respond(account_out(await change(rt, request.match_info["id"], body)))


async def change(rt: Runtime, account_id: str, body: AccountPatch) -> Doc:
    """Apply a PATCH (the API's and the console's); the account as it is now."""
    doc = await _account(rt, account_id)
    given = body.model_fields_set
    changes: Doc = {k: getattr(body, k) for k in ("name", "status") if k in given}
    update: Doc = {}
    if "on_unknown" in given and body.on_unknown is not None:
        changes["on_unknown"] = str(body.on_unknown)
    if "rate_limit" in given:
        changes["rate_limit"] = (
            body.rate_limit.model_dump(exclude_none=True) if body.rate_limit else None
        )
    if body.config is not None or body.credentials is not None:
        provider = _provider(rt, doc["platform"])
        if provider is None:
            raise conflict(f"platform {doc['platform']!r} is not available in this version")
        config = _merge(doc["config"], body.config or {})
        credentials = _merge(_stored_credentials(rt, doc, body.credentials), body.credentials or {})
        problems = provider.validate_account(config, credentials)
        if problems:
            raise invalid(problems)
        if body.credentials is not None:
            linked = await connected(provider, config, credentials)
            config = {**config, **linked.config}
            changes["credentials_enc"] = rt.box.seal(linked.credentials)
            update["$inc"] = {"credentials_version": 1}
            if doc["status"] == REAUTH_REQUIRED and "status" not in given:
                changes["status"] = "active"
        changes["config"] = config
    if changes.get("status") == "active":
        update["$unset"] = {"status_reason": ""}
    if changes:
        changes["updated_at"] = rt.clock.now_dt()
        await rt.store.accounts.update_one({"_id": doc["_id"]}, {"$set": changes, **update})
    if changes.get("status", doc["status"]) == "active" and (
            doc["status"] != "active" or body.credentials is not None):
        # Reconnected, patched with new credentials, or re-enabled: its waiting jobs go now.
        await effects.resume_account(rt, doc["_id"])
    return await _account(rt, doc["_id"])


def _stored_credentials(rt: Runtime, doc: Doc, patch: dict[str, Any] | None) -> dict[str, Any]:
    """The stored credentials, to merge a patch into and to revalidate with a new config. If no
    configured key opens them, only a patch that sends them again can proceed."""
    try:
        return rt.box.open(doc["credentials_enc"])
    except ValueError:
        if patch is not None:
            return {}
        raise conflict("the stored credentials cannot be decrypted with the configured keys; "
                       "send the credentials again") from None


async def delete_account(request: web.Request) -> web.Response:
    rt = runtime(request)
    query = read_query(request, AccountDeleteQuery)
    doc = await _account(rt, request.match_info["id"])
    unfinished = await rt.store.jobs.find(
        {"account_id": doc["_id"], "state": {"$in": [str(s) for s in UNFINISHED_STATES]}},
        {"state": 1},
    ).to_list()
    active = [j for j in unfinished if j["state"] in ACTIVE_STATES]
    if active:
        raise conflict(f"{len(active)} job(s) of this account are being published; "
                       "delete it when they have finished")
    if unfinished and not query.cancel_jobs:
        raise conflict(f"the account has {len(unfinished)} unfinished job(s); "
                       "delete with ?cancel_jobs=true to cancel them")
    for job in unfinished:
        if await effects.cancel(rt, job["_id"], "account_deleted") is None:
            current = await rt.store.jobs.find_one({"_id": job["_id"]}, {"state": 1})
            if current is not None and current["state"] in UNFINISHED_STATES:
                raise conflict(f"job {job['_id']} started while the account was being deleted; "
                               "retry when it has finished")
    await rt.store.accounts.delete_one({"_id": doc["_id"]})
    return web.Response(status=204)


ENDPOINTS = [
    Endpoint("POST", "/accounts", create_account, "Create an account", AccountOut, status=201,
             body=AccountCreate, errors=(400, 422)),
    Endpoint("GET", "/accounts", list_accounts, "List accounts", AccountPage, query=PageQuery,
             errors=(422,)),
    Endpoint("GET", "/accounts/{id}", get_account, "Get an account", AccountOut, errors=(404,)),
    Endpoint("PATCH", "/accounts/{id}", patch_account, "Change an account", AccountOut,
             body=AccountPatch, errors=(400, 404, 409, 422)),
    Endpoint("DELETE", "/accounts/{id}", delete_account,
             "Delete an account (409 while it has unfinished jobs, unless ?cancel_jobs=true)",
             None, status=204, query=AccountDeleteQuery, errors=(404, 409, 422)),
]
