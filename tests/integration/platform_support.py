"""Platform emulators for the integration tests, one-route servers for the answers an emulator
does not give, and a runtime that knows the installation's OAuth client each OAuth emulator
registers."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from bson import ObjectId

from shared.config import OAuthClient, Settings
from shared.models import Content
from shared.providers.base import PublishRequest
from tests.emulators.platform import PlatformEmulator
from tests.emulators.webhook import WebhookReceiver
from tests.integration.api_support import Api, at

PLATFORMS = ["mastodon", "bluesky", "x", "linkedin", "facebook", "telegram", "discord", "slack"]
#: The installation's OAuth client, registered in every OAuth emulator.
TEST_CLIENT = OAuthClient(client_id="herald-test-client", client_secret="herald-test-secret")

Emulator = TypeVar("Emulator", bound=PlatformEmulator)
#: What the `serve` fixture answers every request with.
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: The `serve` fixture: a handler's server on loopback, as its base URL.
Serve = Callable[[Handler], Awaitable[str]]


def emulator_class(platform: str) -> type[PlatformEmulator]:
    cls: type[PlatformEmulator] = importlib.import_module(f"tests.emulators.{platform}").EMULATOR
    return cls


@contextlib.asynccontextmanager
async def running(cls: type[Emulator]) -> AsyncIterator[Emulator]:
    """An emulator listening on loopback for the block, typed as its own class so a test can
    reach what only that platform has."""
    emulator = cls()
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


def started(platform: str) -> contextlib.AbstractAsyncContextManager[PlatformEmulator]:
    """`running` for a platform named by a test's parameters."""
    return running(emulator_class(platform))


async def control(session: aiohttp.ClientSession, emulator: PlatformEmulator | WebhookReceiver,
                  **change: Any) -> None:
    """Script an emulator's (or the webhook receiver's) faults through `POST /_control`; the
    emulators' module docstrings list the keys."""
    async with session.post(f"{emulator.base_url}/_control", json=change) as response:
        assert response.status == 200, await response.text()


def publish_request(account: dict[str, Any], text: str = "Hello from Herald", *,
                    job_id: str | None = None, scheduled_for: datetime | None = None,
                    credentials: dict[str, Any] | None = None, **config: Any) -> PublishRequest:
    """A job publishing `text` on an emulator's account (`PlatformEmulator.account()`), with
    `config` keys over the account's and `credentials` instead of its own. The job id is an
    ObjectId, as Bluesky's record key needs; the job was due a second ago, so a lookup from
    its time finds what it posted."""
    return PublishRequest(
        job_id=job_id or str(ObjectId()), post_id="post-1", account_id="acct-1",
        scheduled_for=scheduled_for or datetime.now(UTC) - timedelta(seconds=1),
        content=Content(text=text), config={**account["config"], **config},
        credentials=credentials or account["credentials"],
    )


def with_oauth_clients(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "oauth_clients": {p: TEST_CLIENT for p in ("x", "linkedin", "facebook", "instagram",
                                                   "tiktok", "youtube")}})


async def post_now(api: Api, account_id: str, text: str) -> str:
    """A one-off post due at once; its job id."""
    created = await api.post([account_id], content={"text": text},
                             schedule={"at": at(api.rt, milliseconds=200)})
    return str(created["jobs"][0]["id"])
