"""Platform emulators for the integration tests, and a runtime that knows the installation's
OAuth client each OAuth emulator registers."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator

from shared.config import OAuthClient, Settings
from tests.emulators.platform import PlatformEmulator
from tests.integration.api_support import Api, at

PLATFORMS = ["mastodon", "bluesky", "x", "linkedin", "facebook", "telegram", "discord", "slack"]
#: The installation's OAuth client, registered in every OAuth emulator.
TEST_CLIENT = OAuthClient(client_id="herald-test-client", client_secret="herald-test-secret")


def emulator_class(platform: str) -> type[PlatformEmulator]:
    cls: type[PlatformEmulator] = importlib.import_module(f"tests.emulators.{platform}").EMULATOR
    return cls


@contextlib.asynccontextmanager
async def started(platform: str) -> AsyncIterator[PlatformEmulator]:
    emulator = emulator_class(platform)()
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


def with_oauth_clients(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "oauth_clients": {p: TEST_CLIENT for p in ("x", "linkedin", "facebook")}})


async def post_now(api: Api, account_id: str, text: str) -> str:
    """A one-off post due at once; its job id."""
    created = await api.post([account_id], content={"text": text},
                             schedule={"at": at(api.rt, milliseconds=200)})
    return str(created["jobs"][0]["id"])
