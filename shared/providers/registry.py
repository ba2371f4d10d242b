"""Platform name → provider class. Providers are cheap; build one per platform and reuse it."""

from __future__ import annotations

import aiohttp

from shared.providers.base import Permanent, Provider
from shared.providers.bluesky import BlueskyProvider
from shared.providers.discord import DiscordProvider
from shared.providers.facebook import FacebookProvider
from shared.providers.instagram import InstagramProvider
from shared.providers.linkedin import LinkedInProvider
from shared.providers.mastodon import MastodonProvider
from shared.providers.slack import SlackProvider
from shared.providers.telegram import TelegramProvider
from shared.providers.tiktok import TikTokProvider
from shared.providers.webhook import WebhookProvider
from shared.providers.x import XProvider
from shared.providers.youtube import YouTubeProvider

PROVIDERS: dict[str, type[Provider]] = {
    cls.platform: cls
    for cls in (WebhookProvider, MastodonProvider, BlueskyProvider, XProvider, LinkedInProvider,
                FacebookProvider, TelegramProvider, DiscordProvider, SlackProvider,
                InstagramProvider, TikTokProvider, YouTubeProvider)
}


class UnknownPlatform(Permanent):
    """No provider for this platform in this build. Permanent, because retrying cannot help."""

    def __init__(self, platform: str) -> None:
        super().__init__(
            f"unknown platform {platform!r}; available: {', '.join(available_platforms())}"
        )
        self.platform = platform


def available_platforms() -> list[str]:
    return sorted(PROVIDERS)


def provider_class(platform: str) -> type[Provider]:
    try:
        return PROVIDERS[platform]
    except KeyError:
        raise UnknownPlatform(platform) from None


def provider_for(platform: str, session: aiohttp.ClientSession) -> Provider:
    return provider_class(platform)(session)
