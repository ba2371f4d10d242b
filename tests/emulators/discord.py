"""Discord's incoming webhooks as Discord runs them, for the provider and cluster tests.

Execute Webhook `POST /api[/v<n>]/webhooks/{id}/{token}[?wait=true&thread_id=]` checks the
token (401 Invalid Webhook Token, 404 Unknown Webhook), the body (JSON object, `content` at
most 2,000 code points, not empty unless embeds/components/poll, `allowed_mentions` and
`username` shapes) and answers 200 with the message when `wait=true`, else 204. Get Webhook
with Token (`GET` on the same path) answers the webhook object with its `guild_id`.
Every answer carries `X-RateLimit-*` headers of a 5 requests / 2 s bucket per webhook (as
observed on Discord); only scripted faults answer 429, so tests never meet a real bucket.
`global_rate_limit = True` makes the scripted 429 Discord's global one.

Files: a multipart/form-data body with `payload_json` (the JSON body) and `files[n]` parts. As
Discord, it refuses more than 10 files (50035 BASE_TYPE_MAX_LENGTH on `files`), a request over
`upload_limit` bytes (413, 40005 Request entity too large), an `attachments` entry naming no
sent file (50035 ATTACHMENT_NOT_FOUND) and a description over 1024 characters. Each file's
SHA-256 is kept in the message's `attachments` (recorded with the post).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from aiohttp import web

from tests.emulators.platform import PlatformEmulator, TokenBook
from tests.emulators.uploads import form_fields, form_parts, received

DISCORD_EPOCH_MS = 1_420_070_400_000
MAX_CONTENT = 2000
MAX_FILES = 10
MAX_DESCRIPTION = 1024
UPLOAD_LIMIT = 10 * 1024 * 1024
BUCKET_LIMIT = 5
BUCKET_SECONDS = 2.0
MENTION_TYPES = frozenset({"roles", "users", "everyone"})
TRUE_VALUES = {"true", "True", "1"}
FALSE_VALUES = {"false", "False", "0"}


@dataclass
class Hook:
    webhook_id: str
    token: str
    guild_id: str
    channel_id: str
    name: str = "Herald"
    calls: list[float] = field(default_factory=list)


def form_error(errors: dict[str, Any]) -> web.Response:
    """Discord's 400 Invalid Form Body with its nested `errors` object."""
    return web.json_response(
        {"message": "Invalid Form Body", "code": 50035, "errors": errors}, status=400)


def field_error(name: str, code: str, message: str) -> dict[str, Any]:
    return {name: {"_errors": [{"code": code, "message": message}]}}


class DiscordEmulator(PlatformEmulator):
    platform = "discord"

    #: Room to read a request over `upload_limit` and refuse it as Discord does.
    client_max_size = 4 * UPLOAD_LIMIT

    def __init__(self) -> None:
        super().__init__()
        # Webhook tokens never expire; `expire_all` stands for the webhook being deleted.
        self.tokens = TokenBook(access_ttl=10 * 365 * 24 * 3600.0, rotate=False, refresh=False)
        self.hooks: dict[str, Hook] = {}
        self.global_rate_limit = False
        self.webhook_reads = 0
        #: The bytes of one request with files (Discord's default, without server boosts).
        self.upload_limit = UPLOAD_LIMIT
        self._sequence = itertools.count()

    # --- what a platform provides -----------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        for prefix in ("/api", "/api/v{version:[0-9]+}"):
            app.router.add_post(prefix + "/webhooks/{id}/{token}", self._execute)
            app.router.add_get(prefix + "/webhooks/{id}/{token}", self._get_webhook)

    def rate_limited(self) -> web.Response:
        seconds = self.faults.retry_after
        reset = time.time() + seconds
        if self.global_rate_limit:
            headers = {"Retry-After": str(math.ceil(seconds)), "X-RateLimit-Global": "true",
                       "X-RateLimit-Scope": "global"}
        else:
            headers = {
                "Retry-After": str(math.ceil(seconds)),
                "X-RateLimit-Limit": str(BUCKET_LIMIT), "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{reset:.3f}", "X-RateLimit-Reset-After": f"{seconds:.3f}",
                "X-RateLimit-Bucket": "herald-emulator-webhook", "X-RateLimit-Scope": "user",
            }
        return web.json_response(
            {"message": "You are being rate limited.", "retry_after": round(seconds, 3),
             "global": self.global_rate_limit},
            status=429, headers=headers)

    def server_error(self, status: int) -> web.Response:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Server Error"
        return web.json_response({"message": f"{status}: {phrase}", "code": 0}, status=status)

    def token_expired(self) -> web.Response:
        """A webhook token does not expire; what a caller meets instead is a deleted webhook."""
        return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)

    def account(self) -> dict[str, Any]:
        hook = self.create_webhook()
        return {
            "platform": "discord", "name": f"discord-{hook.webhook_id[-6:]}",
            "config": {},
            "credentials": {"webhook_url": self.webhook_url(hook)},
        }

    # --- webhooks ---------------------------------------------------------------------------

    def snowflake(self) -> str:
        millis = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return str((millis << 22) | (next(self._sequence) & 0xFFF))

    def create_webhook(self) -> Hook:
        webhook_id = self.snowflake()
        grant = self.tokens.issue(webhook_id)
        hook = Hook(webhook_id, grant.access_token, self.snowflake(), self.snowflake())
        self.hooks[webhook_id] = hook
        return hook

    def webhook_url(self, hook: Hook) -> str:
        return f"{self.base_url}/api/webhooks/{hook.webhook_id}/{hook.token}"

    async def _authorize(self, request: web.Request) -> Hook | web.StreamResponse:
        """The webhook of the URL, or the answer instead: a scripted fault (`guard`), or
        Discord's for an unknown webhook or a wrong token."""
        fault = await self.guard(request)
        if fault is not None:
            return fault
        hook = self.hooks.get(request.match_info["id"])
        if hook is None:
            return self.token_expired()
        token = request.match_info["token"]
        status = self.tokens.check(token)
        if status == "invalid" or self.tokens.subject(token) != hook.webhook_id:
            return web.json_response(
                {"message": "Invalid Webhook Token", "code": 50027}, status=401)
        if status == "expired":
            return self.token_expired()
        return hook

    def _bucket_headers(self, hook: Hook) -> dict[str, str]:
        now = time.time()
        hook.calls = [t for t in hook.calls if now - t < BUCKET_SECONDS] + [now]
        reset_after = BUCKET_SECONDS - (now - hook.calls[0])
        return {
            "X-RateLimit-Limit": str(BUCKET_LIMIT),
            "X-RateLimit-Remaining": str(max(0, BUCKET_LIMIT - len(hook.calls))),
            "X-RateLimit-Reset": f"{now + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": "herald-emulator-webhook",
        }

    async def _get_webhook(self, request: web.Request) -> web.StreamResponse:
        hook = await self._authorize(request)
        if not isinstance(hook, Hook):
            return hook
        self.webhook_reads += 1
        return web.json_response({
            "application_id": None, "avatar": None, "channel_id": hook.channel_id,
            "guild_id": hook.guild_id, "id": hook.webhook_id, "name": hook.name, "type": 1,
            "token": hook.token,
        }, headers=self._bucket_headers(hook))

    async def _execute(self, request: web.Request) -> web.StreamResponse:
        hook = await self._authorize(request)
        if not isinstance(hook, Hook):
            return hook
        headers = self._bucket_headers(hook)
        wait = request.query.get("wait", "false")
        if wait not in TRUE_VALUES | FALSE_VALUES:
            return form_error(field_error("wait", "BOOLEAN_TYPE_COERCE",
                                          f"Value \"{wait}\" is not a valid boolean."))
        thread_id = request.query.get("thread_id")
        if thread_id is not None and not re.fullmatch(r"[0-9]{1,20}", thread_id):
            return form_error(field_error("thread_id", "NUMBER_TYPE_COERCE",
                                          f"Value \"{thread_id}\" is not snowflake."))
        files: list[dict[str, Any]] = []
        if request.content_type == "multipart/form-data":
            if len(await request.read()) > self.upload_limit:
                return web.json_response({"message": "Request entity too large",
                                          "code": 40005}, status=413)
            read = await self._multipart(request)
            if isinstance(read, web.Response):
                return read
            raw, files = read
        elif request.content_type == "application/json":
            raw = await request.read()
        else:
            # What curl users meet: a body Discord does not read as JSON has no content.
            return web.json_response({"message": "Cannot send an empty message", "code": 50006},
                                     status=400)
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response(
                {"message": "The request body contains invalid JSON.", "code": 50109},
                status=400)
        if not isinstance(body, dict):
            return form_error(field_error("_root", "DICT_TYPE_CONVERT", "Only dictionaries "
                                          "may be used in a DictType"))
        errors = self._body_errors(body) | self._attachment_errors(body, files)
        if errors:
            return form_error(errors)
        content = body.get("content") or ""
        if not content.strip() and not files and not any(
                body.get(k) for k in ("embeds", "components", "poll")):
            return web.json_response({"message": "Cannot send an empty message", "code": 50006},
                                     status=400)
        message = self._message(hook, body, thread_id or hook.channel_id)
        message["attachments"] = [
            {k: v for k, v in f.items() if k != "sha256"} for f in files]
        self.record(content, id=message["id"], channel_id=message["channel_id"],
                    webhook_id=hook.webhook_id, payload=body, wait=wait in TRUE_VALUES,
                    mention_everyone=message["mention_everyone"], attachments=files)
        response: web.StreamResponse
        if wait in TRUE_VALUES:
            response = web.json_response(message, headers=headers)
        else:
            response = web.Response(status=204, headers=headers)
        return self.answer_lost(request, response)

    async def _multipart(self, request: web.Request
                         ) -> tuple[bytes, list[dict[str, Any]]] | web.Response:
        """`payload_json` and the `files[n]` parts, each file as its attachment object."""
        parts = await form_parts(request)
        if parts is None:
            return web.json_response({"message": "Cannot send an empty message", "code": 50006},
                                     status=400)
        named = form_fields(parts)
        payload = named.get("payload_json", [])
        sent = {int(p.name[6:-1]): p for p in parts
                if re.fullmatch(r"files\[[0-9]{1,2}\]", p.name) and p.filename is not None}
        if len(sent) > MAX_FILES:
            return form_error(field_error("files", "BASE_TYPE_MAX_LENGTH",
                                          f"Must be {MAX_FILES} or fewer in length."))
        files = []
        for n, part in sorted(sent.items()):
            file = received(str(n), "", part.content_type or "application/octet-stream",
                            part.data)
            files.append({"id": self.snowflake(), "n": n, "filename": part.filename,
                          "size": file.size, "content_type": file.content_type,
                          "sha256": file.sha256,
                          "url": f"{self.base_url}/attachments/{part.filename}"})
        return (payload[0].data if payload else b"{}"), files

    @staticmethod
    def _attachment_errors(body: dict[str, Any], files: list[dict[str, Any]]) -> dict[str, Any]:
        """Each `attachments` entry must name a sent file (`id` n of `files[n]`); its
        description becomes the file's."""
        attachments = body.get("attachments")
        if attachments is None:
            return {}
        if not isinstance(attachments, list) or not all(isinstance(a, dict)
                                                        for a in attachments):
            return field_error("attachments", "LIST_TYPE_CONVERT", "Must be a list.")
        by_n = {f["n"]: f for f in files}
        for attachment in attachments:
            n = attachment.get("id")
            n = int(n) if isinstance(n, int | str) and str(n).isdigit() else None
            if n not in by_n:
                return field_error("attachments", "ATTACHMENT_NOT_FOUND",
                                   "Attachment data not found")
            description = attachment.get("description")
            if description is not None:
                if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
                    return field_error("attachments", "BASE_TYPE_MAX_LENGTH",
                                       f"Must be {MAX_DESCRIPTION} or fewer in length.")
                by_n[n]["description"] = description
        return {}

    @staticmethod
    def _body_errors(body: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, Any] = {}
        content = body.get("content")
        if content is not None and not isinstance(content, str):
            errors |= field_error("content", "BASE_TYPE_STRING", "Must be a string.")
        elif isinstance(content, str) and len(content) > MAX_CONTENT:
            errors |= field_error("content", "BASE_TYPE_MAX_LENGTH",
                                  f"Must be {MAX_CONTENT} or fewer in length.")
        username = body.get("username")
        if username is not None and (
                not isinstance(username, str) or not 1 <= len(username) <= 80
                or re.search("clyde|discord", username, re.IGNORECASE)):
            errors |= field_error("username", "USERNAME_INVALID", "Username is invalid.")
        mentions = body.get("allowed_mentions")
        if mentions is not None:
            parse = mentions.get("parse", []) if isinstance(mentions, dict) else None
            if not isinstance(parse, list) or not set(parse) <= MENTION_TYPES:
                errors |= field_error("allowed_mentions", "MODEL_TYPE_CONVERT",
                                      "Must be an allowed mentions object.")
        return errors

    def _message(self, hook: Hook, body: dict[str, Any], channel_id: str) -> dict[str, Any]:
        """The Message object of a webhook post; like Discord's REST answer it has no guild."""
        content: str = body.get("content") or ""
        mentions = body.get("allowed_mentions")
        everyone_allowed = mentions is None or "everyone" in mentions.get("parse", [])
        return {
            "id": self.snowflake(), "type": 0, "content": content, "channel_id": channel_id,
            "author": {"id": hook.webhook_id, "username": body.get("username") or hook.name,
                       "avatar": None, "discriminator": "0000", "bot": True},
            "attachments": [], "embeds": body.get("embeds") or [], "mentions": [],
            "mention_roles": [], "pinned": False,
            "mention_everyone": everyone_allowed and bool(re.search(r"@(everyone|here)",
                                                                    content)),
            "tts": bool(body.get("tts")), "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None, "flags": 0, "components": [],
            "webhook_id": hook.webhook_id,
        }


EMULATOR = DiscordEmulator
