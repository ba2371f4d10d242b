"""The `linkedin` platform (skeleton: being written)."""

from __future__ import annotations

from shared.models import Strict
from shared.providers.base import Permanent, Provider, Published, PublishRequest


class LinkedInConfig(Strict):
    pass


class LinkedInCredentials(Strict):
    pass


class LinkedInProvider(Provider):
    platform = "linkedin"
    Config = LinkedInConfig
    Credentials = LinkedInCredentials

    async def publish(self, request: PublishRequest) -> Published:
        raise Permanent("linkedin: not written yet")
