"""Platform name → provider class. Providers are cheap; build one per platform and reuse it."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import aiohttp

from shared.providers.base import Permanent, Provider
from shared.providers.webhook import WebhookProvider

PROVIDERS: dict[str, type[Provider]] = {"webhook": WebhookProvider}


class UnknownPlatform(Permanent):
    """No provider for this platform in this build. Permanent, because retrying cannot help."""

    def __init__(self, platform: str) -> None:
        super().__init__(
            f"unknown platform {platform!r}; available: {', '.join(available_platforms())}"
        )
        self.platform = platform


def available_platforms() -> list[str]:
    return sorted(PROVIDERS)


def provider_for(platform: str, session: aiohttp.ClientSession) -> Provider:
    try:
        cls = PROVIDERS[platform]
    except KeyError:
        raise UnknownPlatform(platform) from None
    # Every provider takes the shared HTTP session; the ABC does not declare the constructor.
    factory = cast(Callable[[aiohttp.ClientSession], Provider], cls)
    return factory(session)
