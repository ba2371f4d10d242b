"""Slack's incoming webhooks as Slack runs them, for the provider and cluster tests.

`POST /services/{T}/{B}/{secret}` with a JSON body (or a form with `payload=<json>`) answers
plain text exactly as Slack does: `ok`; 400 `invalid_payload`, `no_text`,
`too_many_attachments`; 403 `invalid_token` (a known hook with the wrong secret); 404
`no_service` (no such hook, or one removed: what `expire_all` and `token_expired` stand for);
429 with `Retry-After` seconds; 500 `rollup_error`. Text beyond 40,000 characters is truncated
and still posted, as Slack does. Each post is recorded with the `text` received and the
`shown` text (Slack's three entities decoded), so a test sees what readers would see.

`blocks` are checked as Block Kit checks them (400 `invalid_blocks`): at most 50; a `section`
with a text object of at most 3000 characters; an `image` with a non-empty `alt_text` of at
most 2000 characters and an http(s) `image_url` of at most 3000, which Slack downloads: the
emulator fetches it too, refuses the message when the download fails or is not a PNG, JPEG or
GIF, and records each image's SHA-256 in the post's `images`.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import string
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web

from tests.emulators.platform import Grant, PlatformEmulator, TokenBook

MAX_TEXT = 40_000
MAX_ATTACHMENTS = 100
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_ALT_TEXT = 2000
MAX_IMAGE_URL = 3000
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif"})
NEVER = 10 * 365 * 24 * 3600.0


@dataclass
class Hook:
    team: str
    hook_id: str
    secret: str


def plain(text: str, status: int, headers: dict[str, str] | None = None) -> web.Response:
    """Slack's webhook answers are a bare word, served as text/html."""
    return web.Response(text=text, status=status, content_type="text/html", headers=headers)


def shown(text: str) -> str:
    """What a reader sees: Slack decodes exactly its three entities."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def slack_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(string.ascii_uppercase + string.digits)
                            for _ in range(10))


class SlackEmulator(PlatformEmulator):
    platform = "slack"

    def __init__(self) -> None:
        super().__init__()
        self.tokens = TokenBook(access_ttl=NEVER, rotate=False, refresh=False)
        self.hooks: dict[tuple[str, str], Hook] = {}

    # --- what a platform provides -----------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/services/{team}/{hook}/{secret}", self._post)

    def rate_limited(self) -> web.Response:
        seconds = str(math.ceil(self.faults.retry_after))
        return plain("rate_limited", 429, {"Retry-After": seconds})

    def server_error(self, status: int) -> web.Response:
        return plain("rollup_error", status)

    def token_expired(self) -> web.Response:
        """Incoming webhooks do not expire; what a caller meets instead is a removed hook."""
        return plain("no_service", 404)

    def account(self) -> dict[str, Any]:
        hook = self.create_webhook()
        return {
            "platform": "slack", "name": f"slack-{hook.hook_id[-6:].lower()}",
            "config": {},
            "credentials": {"webhook_url": self.webhook_url(hook)},
        }

    # --- webhooks ---------------------------------------------------------------------------

    def create_webhook(self) -> Hook:
        hook = Hook(slack_id("T"), slack_id("B"), secrets.token_hex(12))
        self.hooks[(hook.team, hook.hook_id)] = hook
        # Slack's secrets are 24 alphanumerics, so the book keeps one of that shape.
        self.tokens.by_access[hook.secret] = Grant(
            hook.secret, None, time.time() + self.tokens.access_ttl, hook.hook_id)
        return hook

    def webhook_url(self, hook: Hook) -> str:
        return f"{self.base_url}/services/{hook.team}/{hook.hook_id}/{hook.secret}"

    async def _payload(self, request: web.Request) -> Any:
        raw = await request.read()
        if request.content_type == "application/x-www-form-urlencoded":
            values = parse_qs(raw.decode("utf-8", errors="replace")).get("payload")
            raw = values[0].encode("utf-8") if values else b""
        try:
            return json.loads(raw)
        except ValueError:
            return None

    async def _post(self, request: web.Request) -> web.StreamResponse:
        refused = await self.guard(request)
        if refused is not None:
            return refused
        hook = self.hooks.get((request.match_info["team"], request.match_info["hook"]))
        if hook is None:
            return plain("no_service", 404)
        status = self.tokens.check(request.match_info["secret"])
        if status == "invalid" or request.match_info["secret"] != hook.secret:
            return plain("invalid_token", 403)
        if status == "expired":
            return self.token_expired()
        body = await self._payload(request)
        if not isinstance(body, dict) or not isinstance(body.get("text", ""), str):
            return plain("invalid_payload", 400)
        attachments = body.get("attachments") or []
        if not isinstance(attachments, list):
            return plain("invalid_payload", 400)
        if len(attachments) > MAX_ATTACHMENTS:
            return plain("too_many_attachments", 400)
        text: str = body.get("text", "")
        if not text.strip() and not attachments and not body.get("blocks"):
            return plain("no_text", 400)
        images = await self._blocks(body.get("blocks"))
        if images is None:
            return plain("invalid_blocks", 400)
        self.record(text[:MAX_TEXT], shown=shown(text[:MAX_TEXT]),
                    truncated=len(text) > MAX_TEXT, hook=hook.hook_id, payload=body,
                    images=images)
        return self.answer_lost(request, plain("ok", 200))

    async def _blocks(self, blocks: Any) -> list[dict[str, Any]] | None:
        """The images of valid blocks (fetched, as Slack fetches them), None when invalid."""
        if blocks is None:
            return []
        if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
            return None
        images = []
        for block in blocks:
            if not isinstance(block, dict):
                return None
            if block.get("type") == "section":
                text = block.get("text")
                if not (isinstance(text, dict) and text.get("type") in ("mrkdwn", "plain_text")
                        and isinstance(text.get("text"), str)
                        and 0 < len(text["text"]) <= MAX_SECTION_TEXT):
                    return None
            elif block.get("type") == "image":
                url, alt = block.get("image_url"), block.get("alt_text")
                if not (isinstance(alt, str) and 0 < len(alt) <= MAX_ALT_TEXT
                        and isinstance(url, str) and url.startswith(("http://", "https://"))
                        and len(url) <= MAX_IMAGE_URL):
                    return None
                image = await self._download(url)
                if image is None:
                    return None
                images.append({**image, "url": url, "alt_text": alt})
            else:
                return None
        return images

    @staticmethod
    async def _download(url: str) -> dict[str, Any] | None:
        try:
            async with aiohttp.ClientSession() as session, session.get(
                    url, timeout=aiohttp.ClientTimeout(total=10)) as response:
                data = await response.read()
                content_type = response.content_type
        except (aiohttp.ClientError, TimeoutError):
            return None
        if response.status != 200 or content_type not in IMAGE_TYPES:
            return None
        return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                "content_type": content_type}


EMULATOR = SlackEmulator
