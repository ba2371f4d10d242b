"""The Telegram Bot API, as far as posting text needs it: `/bot<token>/<method>` for `getMe`
and `sendMessage` (methods case-insensitive; parameters from the query, a form or JSON).

It checks what Telegram checks: the token's shape (404 Not Found) and that the bot exists
(401 Unauthorized), the chat (400 chat not found; 403 when the bot is not, or no longer, a
member), the text (400 when empty, or longer than 4096 UTF-16 code units) and the types of
the options it knows; unknown parameters are ignored, as Telegram ignores them. Answers are
`{"ok": true, "result": ...}` or `{"ok": false, "error_code", "description", "parameters"}`.

Media: `sendPhoto`, `sendVideo` (the file as a multipart part, or `attach://<name>`) and
`sendMediaGroup` (`media`, a JSON array of 2-10 InputMediaPhoto/InputMediaVideo whose `media`
is `attach://<part name>`), each refused as the Bot API refuses it: a missing or unreferenced
file, a caption over 1024 UTF-16 code units, a photo over 10 MB or another file over 50 MB
(413 Request Entity Too Large), a group outside 2-10 items. Each received file's SHA-256 is
kept (`files` in `/_state`). `reply_parameters.message_id` must name a message in the chat
(400 message to be replied not found); a message records `reply_to`.

Chats: `CHANNEL_ID` (a channel with the public username `herald_test`) and `GROUP_ID` (a
supergroup without one). `kick(chat_id)` removes the bot from a chat; `revoke()` is
@BotFather's /revoke (Telegram tokens do not expire, so `token_expired` answers as for a
revoked one, 401).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import secrets
import time
from typing import Any

from aiohttp import web

from tests.emulators.platform import (
    Grant,
    PlatformEmulator,
    TokenBook,
    request_params,
    utf16_units,
)
from tests.emulators.uploads import FormPart, Received, form_fields, form_parts, received

BOT_ID = 7000000001
BOT_USERNAME = "herald_test_bot"
CHANNEL_ID = -1001000000001
CHANNEL_USERNAME = "herald_test"
GROUP_ID = -1001000000002
TOKEN_SHAPE = re.compile(r"^[0-9]+:[A-Za-z0-9_-]{35}$")
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_PHOTO_BYTES = 10 * 1000 * 1000
MAX_FILE_BYTES = 50 * 1000 * 1000
FOREVER = 100 * 365 * 86400.0


def answer_error(status: int, description: str, **parameters: Any) -> web.Response:
    document: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    headers = {}
    if parameters:
        document["parameters"] = parameters
        if "retry_after" in parameters:
            headers["Retry-After"] = str(parameters["retry_after"])
    return web.json_response(document, status=status, headers=headers)


def _flag(value: Any) -> bool | None:
    """A Boolean parameter as Telegram reads it from JSON or a form; None when unreadable."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


class TelegramEmulator(PlatformEmulator):
    platform = "telegram"
    #: Room for the largest file a bot may send, and the form around it.
    client_max_size = MAX_FILE_BYTES + 1024 * 1024

    def __init__(self) -> None:
        super().__init__()
        self.tokens = TokenBook(rotate=False, refresh=False)
        self.chats: dict[int, dict[str, Any]] = {
            CHANNEL_ID: {"id": CHANNEL_ID, "title": "Herald Test Channel", "type": "channel",
                         "username": CHANNEL_USERNAME},
            GROUP_ID: {"id": GROUP_ID, "title": "Herald Private Group", "type": "supergroup"},
        }
        self.member_of = set(self.chats)
        #: Every call, with the method and its parameters, for tests to assert on.
        self.received: list[dict[str, Any]] = []
        self._message_ids = {chat_id: itertools.count(1) for chat_id in self.chats}
        #: chat id -> the message ids sent there
        self.messages: dict[int, set[int]] = {chat_id: set() for chat_id in self.chats}
        self.files: list[Received] = []
        self._file_ids = itertools.count(1)
        self.bot_token = self.add_bot()

    def add_bot(self) -> str:
        """A token as @BotFather makes them, `<bot id>:<35 characters>`."""
        token = f"{BOT_ID}:{secrets.token_urlsafe(26)}"
        self.tokens.by_access[token] = Grant(token, None, time.time() + FOREVER, str(BOT_ID))
        return token

    def revoke(self) -> None:
        self.tokens.expire_all()

    def kick(self, chat_id: int) -> None:
        self.member_of.discard(chat_id)

    # --- what a platform provides -----------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/bot{token}/{method}", self._method)
        app.router.add_route("*", "/{path:.*}", self._not_found)

    def rate_limited(self) -> web.Response:
        seconds = max(1, math.ceil(self.faults.retry_after))
        return answer_error(429, f"Too Many Requests: retry after {seconds}",
                            retry_after=seconds)

    def server_error(self, status: int) -> web.Response:
        return answer_error(status, "Internal Server Error" if status == 500 else "Bad Gateway")

    def token_expired(self) -> web.Response:
        return answer_error(401, "Unauthorized")

    def account(self) -> dict[str, Any]:
        return {
            "platform": "telegram",
            "name": "emulated-telegram-channel",
            "config": {"api_base": self.base_url, "chat_id": CHANNEL_ID},
            "credentials": {"bot_token": self.bot_token},
        }

    def state(self) -> dict[str, Any]:
        return {**super().state(), "received": self.received,
                "files": [f.state() for f in self.files]}

    # --- requests ---------------------------------------------------------------------------

    async def _not_found(self, _request: web.Request) -> web.Response:
        return answer_error(404, "Not Found")

    async def _method(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        method = request.match_info["method"].lower()
        if not TOKEN_SHAPE.match(token):
            return answer_error(404, "Not Found")
        fault = await self.guard(request)
        if fault is not None:
            return fault
        parts: list[FormPart] | None = None
        if request.content_type == "multipart/form-data":
            parts = await form_parts(request)
            if parts is None:
                return answer_error(400, "Bad Request: can't parse multipart/form-data")
            params: dict[str, Any] | None = {
                p.name: p.text() for p in parts if p.filename is None}
        else:
            params = await request_params(request)
        self.received.append({"method": method, "token": token, "params": params,
                              "content_type": request.content_type})
        if self.tokens.check(token) != "ok":
            return answer_error(401, "Unauthorized")
        if params is None:
            return answer_error(400, "Bad Request: can't parse JSON object")
        if method == "getme":
            return web.json_response({"ok": True, "result": {
                "id": BOT_ID, "is_bot": True, "first_name": "Herald Test Bot",
                "username": BOT_USERNAME, "can_join_groups": True,
                "can_read_all_group_messages": False, "supports_inline_queries": False}})
        if method == "sendmessage":
            return self._send_message(request, params)
        if method in ("sendphoto", "sendvideo"):
            return self._send_file(request, params, parts or [], method[4:])
        if method == "sendmediagroup":
            return self._send_media_group(request, params, parts or [])
        return answer_error(404, "Not Found")

    def _chat(self, value: Any) -> dict[str, Any] | web.Response:
        if isinstance(value, bool) or value is None or value == "":
            return answer_error(400, "Bad Request: chat_id is empty")
        chat: dict[str, Any] | None = None
        if isinstance(value, int) or (isinstance(value, str)
                                      and re.fullmatch(r"-?[0-9]+", value)):
            chat = self.chats.get(int(value))
        elif isinstance(value, str) and value.startswith("@"):
            name = value[1:].lower()
            chat = next((c for c in self.chats.values()
                         if str(c.get("username", "")).lower() == name), None)
        if chat is None:
            return answer_error(400, "Bad Request: chat not found")
        if chat["id"] not in self.member_of:
            kind = chat["type"]
            return answer_error(403, f"Forbidden: bot is not a member of the {kind} chat")
        return chat

    def _send_message(self, request: web.Request, params: dict[str, Any]
                      ) -> web.StreamResponse:
        chat = self._chat(params.get("chat_id"))
        if isinstance(chat, web.Response):
            return chat
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return answer_error(400, "Bad Request: message text is empty")
        if utf16_units(text) > MAX_TEXT:
            return answer_error(400, "Bad Request: message is too long")
        silent = False
        if "disable_notification" in params:
            flag = _flag(params["disable_notification"])
            if flag is None:
                return answer_error(400, "Bad Request: can't parse disable_notification")
            silent = flag
        preview = params.get("link_preview_options")
        if isinstance(preview, str):  # a form carries JSON-serialized objects as strings
            try:
                preview = json.loads(preview)
            except ValueError:
                preview = []
        if preview is not None and not isinstance(preview, dict):
            return answer_error(400, "Bad Request: can't parse link preview options")
        reply_to = self._reply_to(chat, params)
        if isinstance(reply_to, web.Response):
            return reply_to
        result = self._message(chat, text, disable_notification=silent,
                               link_preview_options=preview, reply_to=reply_to)
        return self.answer_lost(request, web.json_response({"ok": True, "result": result}))

    def _message(self, chat: dict[str, Any], text: str, **details: Any) -> dict[str, Any]:
        message_id = next(self._message_ids[chat["id"]])
        self.messages[chat["id"]].add(message_id)
        self.record(text, id=str(message_id), chat_id=chat["id"], message_id=message_id,
                    **details)
        result: dict[str, Any] = {"message_id": message_id, "date": int(time.time()),
                                  "chat": chat}
        result["caption" if details.get("files") else "text"] = text
        if chat["type"] == "channel":
            result["sender_chat"] = chat
        else:
            result["from"] = {"id": BOT_ID, "is_bot": True, "first_name": "Herald Test Bot",
                              "username": BOT_USERNAME}
        return result

    def _reply_to(self, chat: dict[str, Any], params: dict[str, Any]
                  ) -> int | web.Response | None:
        """`reply_parameters.message_id`, which must name a message in the chat."""
        reply = params.get("reply_parameters")
        if reply is None:
            return None
        if isinstance(reply, str):
            try:
                reply = json.loads(reply)
            except ValueError:
                reply = None
        message_id = reply.get("message_id") if isinstance(reply, dict) else None
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            return answer_error(400, "Bad Request: can't parse reply parameters JSON object")
        if message_id not in self.messages[chat["id"]]:
            return answer_error(400, "Bad Request: message to be replied not found")
        return message_id

    def _caption(self, value: Any) -> str | web.Response:
        caption = value if isinstance(value, str) else ""
        if utf16_units(caption) > MAX_CAPTION:
            return answer_error(400, "Bad Request: message caption is too long")
        return caption

    def _file(self, kind: str, part: FormPart | None) -> Received | web.Response:
        """A file received for a photo or a video, within the upload limits."""
        if part is None or part.filename is None:
            return answer_error(400, f"Bad Request: there is no {kind} in the request")
        cap = MAX_PHOTO_BYTES if kind == "photo" else MAX_FILE_BYTES
        if len(part.data) > cap:
            return answer_error(413, "Request Entity Too Large")
        content_type = (part.content_type or "application/octet-stream").split(";")[0]
        if kind == "photo" and not content_type.startswith("image/"):
            return answer_error(400, "Bad Request: IMAGE_PROCESS_FAILED")
        return received(f"file-{next(self._file_ids)}", str(BOT_ID), content_type, part.data,
                        kind=kind, filename=part.filename)

    def _attached(self, value: Any, named: dict[str, list[FormPart]]) -> FormPart | None:
        """The part a parameter names: the part itself, or `attach://<name>`."""
        if isinstance(value, str) and value.startswith("attach://"):
            found = named.get(value.removeprefix("attach://"), [])
            return found[0] if found else None
        return None

    def _send_file(self, request: web.Request, params: dict[str, Any], parts: list[FormPart],
                   kind: str) -> web.StreamResponse:
        chat = self._chat(params.get("chat_id"))
        if isinstance(chat, web.Response):
            return chat
        named = form_fields(parts)
        files = [p for p in named.get(kind, []) if p.filename is not None]
        part = files[0] if files else self._attached(params.get(kind), named)
        file = self._file(kind, part)
        if isinstance(file, web.Response):
            return file
        caption = self._caption(params.get("caption"))
        if isinstance(caption, web.Response):
            return caption
        reply_to = self._reply_to(chat, params)
        if isinstance(reply_to, web.Response):
            return reply_to
        self.files.append(file)
        result = self._message(chat, caption, files=[file.id], reply_to=reply_to)
        result[kind] = {"file_id": file.id, "file_size": file.size}
        return self.answer_lost(request, web.json_response({"ok": True, "result": result}))

    def _send_media_group(self, request: web.Request, params: dict[str, Any],
                          parts: list[FormPart]) -> web.StreamResponse:
        chat = self._chat(params.get("chat_id"))
        if isinstance(chat, web.Response):
            return chat
        try:
            media = json.loads(params.get("media") or "")
        except ValueError:
            return answer_error(400, "Bad Request: can't parse media JSON object")
        if not isinstance(media, list) or not all(isinstance(m, dict) for m in media):
            return answer_error(400, "Bad Request: can't parse media JSON object")
        if not 2 <= len(media) <= 10:
            return answer_error(400, "Bad Request: media must include 2-10 items")
        named = form_fields(parts)
        files: list[Received] = []
        captions: list[str] = []
        for item in media:
            kind = item.get("type")
            if kind not in ("photo", "video"):
                return answer_error(400, "Bad Request: unsupported media type in the group")
            file = self._file(kind, self._attached(item.get("media"), named))
            if isinstance(file, web.Response):
                return file
            caption = self._caption(item.get("caption"))
            if isinstance(caption, web.Response):
                return caption
            files.append(file)
            captions.append(caption)
        reply_to = self._reply_to(chat, params)
        if isinstance(reply_to, web.Response):
            return reply_to
        self.files += files
        group = f"group-{next(self._file_ids)}"
        results = []
        for file, caption in zip(files, captions, strict=True):
            result = self._message(chat, caption, files=[file.id], reply_to=reply_to,
                                   media_group_id=group)
            result["media_group_id"] = group
            result[file.details["kind"]] = {"file_id": file.id, "file_size": file.size}
            results.append(result)
        return self.answer_lost(request, web.json_response({"ok": True, "result": results}))


EMULATOR = TelegramEmulator
