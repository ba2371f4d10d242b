"""The `mastodon` platform (skeleton: being written)."""

from __future__ import annotations

from shared.models import Strict
from shared.providers.base import Permanent, Provider, Published, PublishRequest


class MastodonConfig(Strict):
    pass


class MastodonCredentials(Strict):
    pass


class MastodonProvider(Provider):
    platform = "mastodon"
    Config = MastodonConfig
    Credentials = MastodonCredentials

    async def publish(self, request: PublishRequest) -> Published:
        raise Permanent("mastodon: not written yet")
