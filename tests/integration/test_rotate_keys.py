"""`herald rotate-keys` on the real store: every sealed value ends under the newest key, a value a
node rewrote meanwhile is left as that node wrote it, and a value no key opens is reported."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from cryptography.fernet import Fernet

from shared.config import Settings
from shared.crypto import CredentialBox
from shared.rotation import rotate_keys
from shared.runtime import Runtime
from shared.store import Doc
from tests.integration.api_support import HOOK_URL, SECRET, serve_api

NEW = Fernet.generate_key().decode()


async def seed(rt: Runtime) -> list[str]:
    """Two accounts made through the admin API, an OAuth app and a pending connect, all sealed
    under the runtime's (soon old) key; the accounts' ids."""
    ids = []
    async with serve_api(rt) as api:
        for name in ("hook-a", "hook-b"):
            body = await api.ok("POST", "/accounts", {
                "platform": "webhook", "name": name, "config": {"url": HOOK_URL},
                "credentials": {"secret": SECRET}}, status=201)
            ids.append(body["id"])
    await rt.store.oauth_apps.insert_one(
        {"platform": "mastodon", "client_enc": rt.box.seal({"client_id": "c"})})
    await rt.store.oauth_states.insert_one(
        {"_id": "state-1", "verifier_enc": rt.box.seal({"code_verifier": "v"})})
    return ids


async def sealed_values(rt: Runtime) -> list[str]:
    values = []
    for collection, name in (("accounts", "credentials_enc"), ("oauth_apps", "client_enc"),
                             ("oauth_states", "verifier_enc")):
        async for doc in rt.store.db[collection].find({}):
            values.append(doc[name])
    return values


async def test_every_value_ends_under_the_new_key(runtime: Runtime, settings: Settings) -> None:
    await seed(runtime)
    versions = {d["_id"]: d.get("credentials_version")
                async for d in runtime.store.accounts.find({})}
    box = CredentialBox(f"{NEW},{settings.secret_key}")

    first = await rotate_keys(runtime.store, box)
    assert {c: (t.rotated, t.current, t.changed, t.unreadable) for c, t in first.items()} == {
        "accounts": (2, 0, 0, []), "oauth_apps": (1, 0, 0, []), "oauth_states": (1, 0, 0, [])}
    newest_only = CredentialBox(NEW)
    values = await sealed_values(runtime)
    assert len(values) == 4
    assert all(newest_only.is_current(v) for v in values)
    accounts = [d async for d in runtime.store.accounts.find({})]
    assert all(newest_only.open(d["credentials_enc"]) == {"secret": SECRET} for d in accounts)
    # The credentials themselves did not change, so neither did their version.
    assert {d["_id"]: d.get("credentials_version") for d in accounts} == versions

    again = await rotate_keys(runtime.store, box)
    assert [(t.rotated, t.current) for t in again.values()] == [(0, 2), (0, 1), (0, 1)]


async def test_a_concurrent_refresh_wins(runtime: Runtime, settings: Settings) -> None:
    ids = await seed(runtime)
    box = CredentialBox(f"{NEW},{settings.secret_key}")
    refreshed = box.seal({"secret": "refreshed"})

    async def refresh_between_read_and_write(collection: str, doc: Doc) -> None:
        if collection == "accounts" and doc["_id"] == ids[0]:
            await runtime.store.accounts.update_one(
                {"_id": ids[0]}, {"$set": {"credentials_enc": refreshed},
                                  "$inc": {"credentials_version": 1}})

    tallies = await rotate_keys(runtime.store, box, refresh_between_read_and_write)
    assert (tallies["accounts"].rotated, tallies["accounts"].changed) == (1, 1)
    stored = await runtime.store.accounts.find_one({"_id": ids[0]})
    assert stored is not None
    assert stored["credentials_enc"] == refreshed
    other = await runtime.store.accounts.find_one({"_id": ids[1]})
    assert other is not None and CredentialBox(NEW).open(other["credentials_enc"])


async def test_unreadable_value_is_reported_and_left(runtime: Runtime,
                                                     settings: Settings) -> None:
    ids = await seed(runtime)
    stray = CredentialBox(Fernet.generate_key().decode()).seal({"secret": "lost"})
    await runtime.store.accounts.update_one({"_id": ids[1]},
                                            {"$set": {"credentials_enc": stray}})
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "HERALD_ADMIN_TOKEN")}
    env["HERALD_SECRET_KEY"] = f"{NEW},{settings.secret_key}"

    code, out, err = await herald("rotate-keys", env=env)

    assert code == 1, err
    assert "accounts: 1 rotated, 0 already current, 0 changed concurrently, 1 unreadable" in out
    assert f"accounts: no configured key opens: {ids[1]}" in out
    assert "oauth_apps: 1 rotated" in out and "oauth_states: 1 rotated" in out
    stored = await runtime.store.accounts.find_one({"_id": ids[1]})
    assert stored is not None and stored["credentials_enc"] == stray

    await runtime.store.accounts.delete_one({"_id": ids[1]})
    code, out, err = await herald("rotate-keys", env=env)
    assert code == 0, err
    assert "accounts: 0 rotated, 1 already current, 0 changed concurrently, 0 unreadable" in out


async def herald(*args: str, env: dict[str, Any]) -> tuple[int, str, str]:
    """The console script in a child process, as an operator runs it."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await child.communicate()
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()
