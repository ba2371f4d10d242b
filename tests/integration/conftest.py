"""Fixtures shared by the integration tests that publish through a webhook receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.emulators.webhook import WebhookReceiver
from tests.integration.pipeline_support import SECRET


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
