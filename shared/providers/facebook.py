"""The `facebook` platform (skeleton: being written)."""

from __future__ import annotations

from shared.models import Strict
from shared.providers.base import Permanent, Provider, Published, PublishRequest


class FacebookConfig(Strict):
    pass


class FacebookCredentials(Strict):
    pass


class FacebookProvider(Provider):
    platform = "facebook"
    Config = FacebookConfig
    Credentials = FacebookCredentials

    async def publish(self, request: PublishRequest) -> Published:
        raise Permanent("facebook: not written yet")
