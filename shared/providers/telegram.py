"""The `telegram` platform (skeleton: being written)."""

from __future__ import annotations

from shared.models import Strict
from shared.providers.base import Permanent, Provider, Published, PublishRequest


class TelegramConfig(Strict):
    pass


class TelegramCredentials(Strict):
    pass


class TelegramProvider(Provider):
    platform = "telegram"
    Config = TelegramConfig
    Credentials = TelegramCredentials

    async def publish(self, request: PublishRequest) -> Published:
        raise Permanent("telegram: not written yet")
