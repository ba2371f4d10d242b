"""The `bluesky` platform (skeleton: being written)."""

from __future__ import annotations

from shared.models import Strict
from shared.providers.base import Permanent, Provider, Published, PublishRequest


class BlueskyConfig(Strict):
    pass


class BlueskyCredentials(Strict):
    pass


class BlueskyProvider(Provider):
    platform = "bluesky"
    Config = BlueskyConfig
    Credentials = BlueskyCredentials

    async def publish(self, request: PublishRequest) -> Published:
        raise Permanent("bluesky: not written yet")
