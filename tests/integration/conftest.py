"""Fixtures shared by the integration tests that publish through a webhook receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.emulators.webhook import WebhookReceiver
from tests.integration.pipeline_support import SECRET


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """A webhook receiver on loopback that verifies signatures with the pipeline's secret."""
    r = WebhookReceiver(SECRET)
    await r.start()
    try:
        yield r
    finally:
        await r.stop()
