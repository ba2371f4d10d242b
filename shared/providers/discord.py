"""The `discord` platform: a message through a channel's incoming webhook (Execute Webhook).

The webhook URL is the credential: its last path segment is the token, so the whole URL is
scrubbed from every message. Discord takes no idempotency key and a webhook cannot search the
channel, so an unknown outcome stays `unconfirmed` (docs/providers/discord.md).

Media goes in the same call: a multipart/form-data body whose `payload_json` part is the JSON
body, naming each file in `attachments` (`id` n, its file name, the alt text as
`description`), and whose `files[n]` parts are the files, streamed from the store. A webhook
has no replies, so a thread is refused at scheduling.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import Field, field_validator

from shared.models import Content, Strict
from shared.providers.base import (
    AuthRevoked,
    Budget,
    MediaFile,
    PartsInfo,
    Permanent,
    Problems,
    Provider,
    Published,
    PublishRequest,
    RateLimited,
    TextLimit,
    Transient,
    parsed,
)
from shared.providers.wire import (
    Answer,
    Streamed,
    after_seconds,
    answer_error,
    call,
    parse_retry_after,
    retry_later,
)

#: `https://discord.com/api/webhooks/<id>/<token>`, also discordapp.com and `/api/v10/...`; any
#: http(s) host is taken so that tests and Discord-compatible servers can stand in.
WEBHOOK_URL = (r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?"
               r"/api(/v[0-9]{1,2})?/webhooks/[0-9]{1,20}/[A-Za-z0-9_\-]{1,100}/?$")
_WEBHOOK_PATH = re.compile(r"/webhooks/(?P<id>[0-9]+)/(?P<token>[A-Za-z0-9_\-]+)/?$")
#: Discord's own hosts, whose messages are shown at `https://discord.com/channels/...`.
DISCORD_HOSTS = frozenset({"discord.com", "discordapp.com", "ptb.discord.com",
                           "canary.discord.com"})
#: Discord counts content in code points ("our API uses Python 3"); see the docs page.
MAX_CONTENT = 2000
#: Files per message, and the bytes of one request without a boosted server (Discord's
#: default upload limit, 10 MiB since 2024; a request over it is 413, code 40005).
MAX_FILES = 10
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: An attachment's `description` (its alt text) is at most 1024 characters.
MAX_DESCRIPTION = 1024
#: Bytes per read from the media store while a file streams to Discord.
UPLOAD_CHUNK = 256 * 1024
UPLOAD_TIMEOUT_SECONDS = 300.0
#: Unknown Webhook and Invalid Webhook Token: the webhook was deleted or its URL is wrong.
UNKNOWN_WEBHOOK = 10015
#: The guild id only makes the message URL; a slow answer must not hold a published job long.
GUILD_LOOKUP_TIMEOUT_SECONDS = 5.0


class DiscordConfig(Strict):
    username: Annotated[str, Field(
        min_length=1, max_length=80,
        description="Overrides the webhook's name for these posts; must not contain "
                    "'clyde' or 'discord'")] | None = None
    avatar_url: Annotated[str, Field(
        pattern=r"^https?://\S+$", max_length=2048,
        description="Overrides the webhook's avatar for these posts")] | None = None
    thread_id: Annotated[str, Field(
        pattern=r"^[0-9]{1,20}$",
        description="Post into this thread of the webhook's channel (required for forum "
                    "and media channels)")] | None = None

    @field_validator("username")
    @classmethod
    def _allowed_name(cls, value: str | None) -> str | None:
        if value is not None and re.search("clyde|discord", value, re.IGNORECASE):
            raise ValueError("Discord refuses webhook names containing 'clyde' or 'discord'")
        return value


class DiscordCredentials(Strict):
    webhook_url: Annotated[str, Field(
        pattern=WEBHOOK_URL, max_length=300,
        description="The channel's webhook URL, https://discord.com/api/webhooks/<id>/<token> "
                    "(secret: the token is part of it)")]


@dataclass(frozen=True)
class Webhook:
    url: str
    webhook_id: str
    token: str

    @property
    def secrets(self) -> list[str]:
        return [self.url, self.token]

    @property
    def web_base(self) -> str:
        """Where the channel is shown: discord.com for Discord, the same host otherwise."""
        parts = urlsplit(self.url)
        if (parts.hostname or "") in DISCORD_HOSTS:
            return "https://discord.com"
        return f"{parts.scheme}://{parts.netloc}"


def build_body(request: PublishRequest, config: DiscordConfig) -> dict[str, Any]:
    """`allowed_mentions: {"parse": []}`: a scheduled post never pings @everyone, roles or
    users; mentions still render as text."""
    body: dict[str, Any] = {"content": request.content.text, "allowed_mentions": {"parse": []}}
    if config.username is not None:
        body["username"] = config.username
    if config.avatar_url is not None:
        body["avatar_url"] = config.avatar_url
    return body


def _filename(file: MediaFile, n: int) -> str:
    """A name with the type's usual extension: Discord embeds an image or video by its name
    (`.mov` for video/quicktime, not the subtype)."""
    extension = mimetypes.guess_extension(file.info.content_type or "") or ".bin"
    return f"{n}-{re.sub(r'[^A-Za-z0-9_-]', '', file.id)[:40] or 'file'}{extension}"


def with_files(body: dict[str, Any], files: Sequence[MediaFile]) -> aiohttp.MultipartWriter:
    """The body as `payload_json` with `attachments` naming each file, then `files[n]`."""
    attachments = []
    for n, file in enumerate(files):
        attachment: dict[str, Any] = {"id": n, "filename": _filename(file, n)}
        if file.alt:
            attachment["description"] = file.alt
        attachments.append(attachment)
    form = aiohttp.MultipartWriter("form-data")
    form.append(json.dumps({**body, "attachments": attachments}),
                {"Content-Type": "application/json"}).set_content_disposition(
        "form-data", name="payload_json")
    for n, file in enumerate(files):
        size = file.info.size
        if size is None:
            raise Permanent(f"discord: media {file.id} has no known size to upload")
        payload = form.append_payload(Streamed(
            file.chunks(UPLOAD_CHUNK), size, file.info.content_type or "application/octet-stream"))
        payload.set_content_disposition("form-data", name=f"files[{n}]",
                                        filename=attachments[n]["filename"])
    return form


def rate_limited(answer: Answer, secrets: list[str], now: datetime) -> RateLimited:
    """Discord's 429: `retry_after` (float seconds) in the body, else `X-RateLimit-Reset-After`,
    else `Retry-After`. Global → the installation's limit; the webhook's exhausted bucket or a
    shared (channel) limit → this account; anything else → this request."""
    body = answer.object()
    headers = answer.headers
    seconds: Any = body.get("retry_after")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        try:
            seconds = float(headers.get("X-RateLimit-Reset-After", ""))
        except ValueError:
            seconds = None
    retry_at = (after_seconds(float(seconds), now) if seconds is not None
                else parse_retry_after(headers.get("Retry-After"), now))
    scope_header = headers.get("X-RateLimit-Scope", "").lower()
    scope: Literal["request", "account", "app"]
    if (body.get("global") is True or scope_header == "global"
            or headers.get("X-RateLimit-Global", "").lower() == "true"):
        scope = "app"
    elif scope_header == "shared" or headers.get("X-RateLimit-Remaining") == "0":
        scope = "account"
    else:
        scope = "request"
    return retry_later(answer_error("discord", answer, secrets), retry_at, scope)


def refusal(answer: Answer, secrets: list[str]) -> Exception:
    """401 Invalid Webhook Token and 404 Unknown Webhook mean the webhook is gone for good
    (Discord asks not to use a 404ing webhook again): the account needs a new URL."""
    message = answer_error("discord", answer, secrets)
    code = answer.object().get("code")
    if answer.status == 401 or (answer.status == 404 and code in (UNKNOWN_WEBHOOK, None)):
        return AuthRevoked(f"{message} (the webhook was deleted or its URL is wrong: "
                           "patch the account with a new webhook_url)")
    if answer.status >= 500:
        return Transient(message)
    return Permanent(message)


class DiscordProvider(Provider):
    platform = "discord"
    connects_with = "credentials"
    honours_idempotency_key = False
    supports_lookup = False
    #: Discord publishes no webhook limit; observed buckets are 5 requests / 2 s per webhook
    #: and about 30 messages / minute per channel. The sustained one is the pace.
    default_budget = Budget(30, 60.0)
    supports_media = True

    Config = DiscordConfig
    Credentials = DiscordCredentials

    def __init__(self, session: aiohttp.ClientSession) -> None:
        super().__init__(session)
        #: webhook id → guild id, read once per webhook for message URLs.
        self._guilds: dict[str, str] = {}

    async def text_limit(self, config: dict[str, Any]) -> TextLimit:
        return TextLimit(MAX_CONTENT, "characters")

    async def check_content(self, content: Content, config: dict[str, Any],
                            media: PartsInfo = ()) -> Problems:
        """As the base check, and the files against one message's limits: how many, their
        bytes together, each alt text's length. Any file type is taken (Discord shows what it
        can and offers the rest as a download)."""
        problems = await super().check_content(content, config, media)
        files = list(media[0]) if media else []
        if len(files) > MAX_FILES:
            problems.append(("content.media", f"discord: {len(files)} files, at most "
                                              f"{MAX_FILES} in a message"))
        total = sum(info.size or 0 for info in files)
        if total > MAX_UPLOAD_BYTES:
            problems.append(("content.media", f"discord: {total} bytes of files, at most "
                                              f"{MAX_UPLOAD_BYTES} in a message"))
        for n, item in enumerate(content.media):
            if len(item.alt) > MAX_DESCRIPTION:
                problems.append((f"content.media.{n}.alt", f"discord: {len(item.alt)} "
                                 f"characters, at most {MAX_DESCRIPTION}"))
        return problems

    def _account(self, request: PublishRequest) -> tuple[Webhook, DiscordConfig]:
        config = parsed(DiscordConfig, request.config, "discord", "config")
        url = parsed(DiscordCredentials, request.credentials, "discord",
                     "credentials").webhook_url
        match = _WEBHOOK_PATH.search(urlsplit(url).path)
        if match is None:
            raise Permanent("discord account is invalid: credentials.webhook_url has no "
                            "/webhooks/<id>/<token>")
        return Webhook(url, match["id"], match["token"]), config

    async def publish(self, request: PublishRequest) -> Published:
        """One Execute Webhook call with `wait=true`, so Discord answers with the message
        instead of 204 and a message it did not save is an error, not a silent success; with
        media, the same call as multipart/form-data (`with_files`)."""
        hook, config = self._account(request)
        params = {"wait": "true"}
        if config.thread_id is not None:
            params["thread_id"] = config.thread_id
        body = build_body(request, config)
        files = request.media_of(0)
        if files:
            answer = await call(
                self.session, "POST", hook.url, platform="discord", secrets=hook.secrets,
                params=params, data=with_files(body, files),
                timeout_seconds=UPLOAD_TIMEOUT_SECONDS)
        else:
            answer = await call(
                self.session, "POST", hook.url, platform="discord", secrets=hook.secrets,
                params=params, json=body)
        if answer.status == 429:
            raise rate_limited(answer, hook.secrets, datetime.now(UTC))
        if not answer.ok:
            raise refusal(answer, hook.secrets)
        message = answer.object()
        message_id, channel_id = message.get("id"), message.get("channel_id")
        if not isinstance(message_id, str) or not message_id:
            return Published()
        guild_id = message.get("guild_id")
        if not isinstance(guild_id, str):
            guild_id = await self._guild_id(hook)
        url = (f"{hook.web_base}/channels/{guild_id}/{channel_id}/{message_id}"
               if isinstance(channel_id, str) and guild_id else None)
        return Published(message_id, url)

    async def _guild_id(self, hook: Webhook) -> str | None:
        """The webhook's guild (Get Webhook with Token), cached; asked only after the post
        succeeded, and any failure just leaves the URL out: the post stands either way."""
        if hook.webhook_id in self._guilds:
            return self._guilds[hook.webhook_id]
        try:
            answer = await call(self.session, "GET", hook.url, platform="discord",
                                secrets=hook.secrets,
                                timeout_seconds=GUILD_LOOKUP_TIMEOUT_SECONDS)
        except (Transient, Permanent):
            return None
        guild_id = answer.object().get("guild_id") if answer.ok else None
        if not isinstance(guild_id, str) or not guild_id:
            return None
        self._guilds[hook.webhook_id] = guild_id
        return guild_id
