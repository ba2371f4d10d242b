"""An account's credentials over their lifetime: opened from the sealed record, refreshed ahead
of expiry or after an expired-token answer, once per account across the cluster, and never
overwritten by an older copy.

Every stored change of an account's credentials `$inc`s its `credentials_version`; a refresh
writes only if the version it started from is still the stored one. A node that meets an
expired token takes the account's refresh lock, re-reads the account, and refreshes only if
nobody changed the credentials since the copy it used; otherwise it uses the newer copy. So two
executors meeting one expired token make one refresh call, and a refresh that finishes after
an operator's patch does not undo the patch.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from shared.locks import RenewedLock
from shared.logging import get_logger
from shared.notify import Notifier
from shared.providers.base import AuthRevoked, OAuthApp, Provider, Transient
from shared.runtime import Runtime
from shared.store import Doc

log = get_logger(__name__)

REFRESH_LOCK_TTL_SECONDS = 30.0
#: A refresh lock held by a node that died lapses after its ttl; waiting rounds beyond that
#: mean something else is wrong, and the job is retried later instead.
REFRESH_ROUNDS = 3
REAUTH_REQUIRED = "reauth_required"
#: Opened credentials kept per node, by their sealed text: a burst for one account decrypts
#: once, and a changed credential is a different text, so nothing stale is ever used.
OPENED_MAX = 4096


@dataclass(frozen=True)
class Keyed:
    """Credentials with the version they were stored under."""

    credentials: dict[str, Any]
    version: int


def version_of(account: Doc) -> int:
    return int(account.get("credentials_version", 0))


def _version_filter(version: int) -> Doc:
    """Accounts stored before versions existed have none: version 0."""
    if version == 0:
        return {"credentials_version": {"$exists": False}}
    return {"credentials_version": version}


class CredentialKeeper:
    def __init__(self, rt: Runtime, notifier: Notifier) -> None:
        self._rt = rt
        self._notifier = notifier
        self._opened: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def open(self, account: Doc) -> Keyed:
        sealed = account["credentials_enc"]
        opened = self._opened.get(sealed)
        if opened is None:
            opened = self._rt.box.open(sealed)
            self._opened[sealed] = opened
            if len(self._opened) > OPENED_MAX:
                self._opened.popitem(last=False)
        else:
            self._opened.move_to_end(sealed)
        return Keyed(dict(opened), version_of(account))

    async def app_for(self, platform: str, config: dict[str, Any]) -> OAuthApp | None:
        """The OAuth client a refresh authenticates with: the installation's, from the
        environment, or the one Herald registered on a Mastodon instance."""
        client = self._rt.settings.oauth_clients.get(platform)
        if client is not None:
            return OAuthApp(client.client_id, client.client_secret)
        if platform == "mastodon" and isinstance(config.get("api_base"), str):
            doc = await self._rt.store.oauth_apps.find_one({"platform": platform,
                                                            "api_base": config["api_base"]})
            if doc is not None:
                return OAuthApp(**self._rt.box.open(doc["client_enc"]))
        return None

    async def current(self, account: Doc, provider: Provider) -> Keyed:
        """The account's credentials, refreshed first when the access token is about to
        expire, so a post does not spend a call on a token the platform will refuse."""
        keyed = self.open(account)
        if provider.needs_refresh(keyed.credentials, self._rt.clock.now_dt()):
            return await self.refresh(account, provider, keyed.version)
        return keyed

    async def refresh(self, account: Doc, provider: Provider, seen: int) -> Keyed:
        """Credentials newer than version `seen`: another node's, or a refresh made here under
        the account's refresh lock. AuthRevoked when the platform refused the refresh (the
        account is then `reauth_required`), Transient when it could not be done now."""
        rt = self._rt
        key = rt.keys.refresh_lock(account["_id"])
        for _ in range(REFRESH_ROUNDS):
            lock = RenewedLock(rt.redis, key, ttl=REFRESH_LOCK_TTL_SECONDS)
            if not await lock.acquire():
                await self._wait_released(key)
                newer = await self._newer(account["_id"], seen)
                if newer is not None:
                    return newer
                continue
            try:
                newer = await self._newer(account["_id"], seen)
                if newer is not None:
                    return newer
                return await self._refresh_locked(account, provider, seen)
            finally:
                await lock.release()
        raise Transient("the account's token refresh did not finish; trying again later")

    async def _newer(self, account_id: str, seen: int) -> Keyed | None:
        """The stored credentials when they changed since version `seen`; AuthRevoked when the
        account is waiting for a person to reconnect it."""
        stored = await self._rt.store.accounts.find_one({"_id": account_id})
        if stored is None:
            raise AuthRevoked("the account was deleted")
        if version_of(stored) != seen:
            return self.open(stored)
        if stored.get("status") == REAUTH_REQUIRED:
            raise AuthRevoked(stored.get("status_reason") or "the account must be reconnected")
        return None

    async def _refresh_locked(self, account: Doc, provider: Provider, seen: int) -> Keyed:
        rt = self._rt
        stored = await rt.store.accounts.find_one({"_id": account["_id"]}) or account
        app = await self.app_for(stored["platform"], stored.get("config", {}))
        try:
            fresh = await provider.refresh(stored.get("config", {}),
                                           rt.box.open(stored["credentials_enc"]), app)
        except AuthRevoked as exc:
            await self.require_reauth(stored, seen, str(exc))
            raise
        now = rt.clock.now_dt()
        written = await rt.store.accounts.update_one(
            {"_id": account["_id"], **_version_filter(seen)},
            {"$set": {"credentials_enc": rt.box.seal(fresh), "refreshed_at": now,
                      "updated_at": now},
             "$inc": {"credentials_version": 1}},
        )
        log.info("credentials_refreshed", account_id=account["_id"],
                 platform=stored["platform"], stored=bool(written.matched_count))
        if written.matched_count == 0:
            # An operator replaced the credentials while we refreshed: theirs win.
            newer = await self._newer(account["_id"], seen)
            if newer is not None:
                return newer
        return Keyed(fresh, seen + 1)

    async def require_reauth(self, account: Doc, seen: int, reason: str) -> None:
        """Mark the account `reauth_required` (unless its credentials changed meanwhile) and
        tell the operator once."""
        rt = self._rt
        changed = await rt.store.accounts.update_one(
            {"_id": account["_id"], "status": "active", **_version_filter(seen)},
            {"$set": {"status": REAUTH_REQUIRED, "status_reason": reason,
                      "updated_at": rt.clock.now_dt()}},
        )
        if changed.modified_count:
            log.warning("account_reauth_required", account_id=account["_id"],
                        platform=account["platform"], reason=reason)
            rt.spawn(self._notifier.notify("account.reauth_required", {
                "account_id": account["_id"], "platform": account["platform"],
                "name": account.get("name"), "error": reason,
            }), "notify")

    async def _wait_released(self, key: str) -> None:
        """Poll until the lock's holder lets go (bounded by its ttl)."""
        rt = self._rt
        for _ in range(int(REFRESH_LOCK_TTL_SECONDS * 10)):
            if not await rt.redis.exists(key):
                return
            await asyncio.sleep(0.1)
