"""Fixtures shared by the integration tests: an HTTP client session, a webhook receiver to
publish through, one-route servers for answers the emulators do not give, and (imported) the
media stores, local feeds and the language model emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tests.emulators.platform import listen
from tests.emulators.webhook import WebhookReceiver
from tests.integration.generation_support import feeds, llm_emulator  # noqa: F401
from tests.integration.media_fixtures import backend, media_runtime, s3_server  # noqa: F401
from tests.integration.pipeline_support import SECRET
from tests.integration.platform_support import Handler, Serve


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """The HTTP session a provider is built around, and tests script emulators with."""
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def receiver_secret() -> str:
    """The secret the receiver verifies signatures with; a test module may override it."""
    return SECRET


@pytest.fixture
async def receiver(receiver_secret: str) -> AsyncIterator[WebhookReceiver]:
    """A webhook receiver on loopback."""
    r = WebhookReceiver(receiver_secret)
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Servers of one handler each, for the answers an emulator does not give (it answers as
    the platform documents); all stopped after the test."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", handler)
        runner, url = await listen(app)
        runners.append(runner)
        return url

    yield start
    for runner in runners:
        await runner.cleanup()
