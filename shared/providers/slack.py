"""The `slack` platform: a message through an incoming webhook.

The webhook URL is the credential (its last segment is the secret), so the whole URL is
scrubbed from every message. Slack answers a plain-text `ok` with no message id or link, takes
no idempotency key and a webhook cannot read the channel back: an unknown outcome stays
`unconfirmed` (docs/providers/slack.md).

An incoming webhook cannot upload files: images are Block Kit `image` blocks that Slack
downloads from a public URL (`MediaFile.public_url()`, a signed URL under
HERALD_PUBLIC_BASE_URL). So media is refused at scheduling unless the node says it can give
such URLs (`public_media_urls`, set from the settings where providers are built), and video,
which a message cannot show from a URL, is always refused. A webhook has no replies: no threads.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field

from shared.models import Content, Strict
from shared.providers.base import (
    AuthRevoked,
    Budget,
    PartsInfo,
    Permanent,
    Problems,
    Provider,
    Published,
    PublishRequest,
    TextLimit,
    Transient,
    parsed,
)
from shared.providers.wire import answer_error, call, parse_retry_after, retry_later

#: `https://hooks.slack.com/services/T.../B.../<secret>`; any http(s) host is taken so that
#: tests and Slack-compatible servers can stand in.
WEBHOOK_URL = (r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?"
               r"/services/T[A-Z0-9]{1,20}/B[A-Z0-9]{1,20}/[A-Za-z0-9]{1,64}/?$")
#: Slack truncates `text` beyond 40,000 characters; Herald refuses it at scheduling instead.
MAX_TEXT = 40_000
#: The plain-text answers that mean the webhook itself no longer works (removed, its channel
#: gone or archived, its token wrong, posting forbidden): the operator must fix the account.
REVOKED = frozenset({
    "invalid_token", "no_service", "no_service_id", "no_active_hooks", "no_team",
    "team_disabled", "channel_not_found", "channel_is_archived", "action_prohibited",
    "posting_to_general_channel_denied",
})
#: Block Kit: a section's text is at most 3000 characters; Slack shows PNG, JPEG and GIF images.
MAX_SECTION_TEXT = 3000
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif"})
_CONTROL = re.compile(r"[&<>]")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape(text: str) -> str:
    """Slack's three control characters as entities, so `<!channel>` or `<url|label>` show
    literally as written instead of pinging or linking; Slack asks for exactly these three."""
    return _CONTROL.sub(lambda m: _ENTITIES[m.group(0)], text)


class SlackConfig(Strict):
    """Nothing to configure: an incoming webhook posts as its app, to its own channel."""


class SlackCredentials(Strict):
    webhook_url: Annotated[str, Field(
        pattern=WEBHOOK_URL, max_length=300,
        description="The incoming webhook URL, https://hooks.slack.com/services/T…/B…/… "
                    "(secret: it carries the webhook's token)")]


def webhook_secrets(url: str) -> list[str]:
    return [url, urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]]


def message_body(request: PublishRequest) -> dict[str, Any]:
    """`text` alone, or with media a section block of the text and an image block per file
    (`text` then stays as the notification's fallback)."""
    text = escape(request.content.text)
    files = request.media_of(0)
    if not files:
        return {"text": text}
    blocks: list[dict[str, Any]] = []
    if text.strip():
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    blocks += [{"type": "image", "image_url": file.public_url(),
                "alt_text": file.alt or "image"} for file in files]
    return {"text": text, "blocks": blocks} if text.strip() else {"blocks": blocks}


class SlackProvider(Provider):
    platform = "slack"
    connects_with = "credentials"
    honours_idempotency_key = False
    supports_lookup = False
    #: Incoming webhooks: one message per second, short bursts allowed.
    default_budget = Budget(1, 1.0)
    supports_media = True

    Config = SlackConfig
    Credentials = SlackCredentials

    async def text_limit(self, config: dict[str, Any]) -> TextLimit:
        return TextLimit(MAX_TEXT, "characters")

    def measure(self, text: str) -> int:
        """Characters as sent, after escaping: each & < > grows to an entity."""
        return len(escape(text))

    async def check_content(self, content: Content, config: dict[str, Any],
                            media: PartsInfo = ()) -> Problems:
        """As the base check, and images only, from public URLs, beside a text that fits a
        section block."""
        problems = await super().check_content(content, config, media)
        if not content.media:
            return problems
        files = list(media[0]) if media else []
        if not self.public_media_urls:
            problems.append(("content.media", "slack: images are shown from a public URL, and "
                                              "this installation has none (set "
                                              "HERALD_PUBLIC_BASE_URL)"))
        for n, info in enumerate(files):
            kind = info.content_type or "an unknown type"
            if kind.startswith("video/"):
                problems.append((f"content.media.{n}", "slack: video is not supported (an "
                                                       "incoming webhook shows images only)"))
            elif kind not in IMAGE_TYPES:
                problems.append((f"content.media.{n}", f"slack: {kind} is not an image Slack "
                                                       f"shows (PNG, JPEG, GIF)"))
        length = self.measure(content.text)
        if length > MAX_SECTION_TEXT:
            problems.append(("content.text", f"slack: {length} characters, at most "
                                             f"{MAX_SECTION_TEXT} beside images"))
        return problems

    async def publish(self, request: PublishRequest) -> Published:
        parsed(SlackConfig, request.config, "slack", "config")  # takes nothing; refuses extras
        url = parsed(SlackCredentials, request.credentials, "slack", "credentials").webhook_url
        hidden = webhook_secrets(url)
        answer = await call(self.session, "POST", url, platform="slack", secrets=hidden,
                            json=message_body(request))
        if answer.ok:
            return Published()
        message = answer_error("slack", answer, hidden)
        if answer.status == 429:
            retry_at = parse_retry_after(answer.headers.get("Retry-After"), datetime.now(UTC))
            raise retry_later(message, retry_at, scope="account")
        if answer.status >= 500:
            raise Transient(message)
        code = answer.body.decode("utf-8", errors="replace").strip()
        if code in REVOKED:
            raise AuthRevoked(f"{message} (the webhook no longer posts: fix it in Slack or "
                              "patch the account with a new webhook_url)")
        raise Permanent(message)
