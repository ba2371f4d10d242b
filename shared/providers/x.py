"""The `x` platform (skeleton: being written)."""

from __future__ import annotations

from shared.models import Strict
from shared.providers.base import Permanent, Provider, Published, PublishRequest


class XConfig(Strict):
    pass


class XCredentials(Strict):
    pass


class XProvider(Provider):
    platform = "x"
    Config = XConfig
    Credentials = XCredentials

    async def publish(self, request: PublishRequest) -> Published:
        raise Permanent("x: not written yet")
