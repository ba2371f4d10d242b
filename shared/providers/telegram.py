"""The `telegram` platform: a bot posts to a chat through the Bot API.

The bot token is part of every URL (`/bot<token>/sendMessage`), so each call hands it to
`call(..., secrets=[token])` and every error message is scrubbed of it.

Telegram has no idempotency key, and a bot cannot read back what it sent, so there is no
lookup: an outcome left unknown (a timeout, a dropped connection after sending) is settled by
reconciliation as `unconfirmed`, never re-sent on a guess.

Media travels in the message call itself (multipart/form-data, streamed from the store):
`sendPhoto` or `sendVideo` for one file, `sendMediaGroup` for 2-10 (each file an
`attach://file<n>` part), the text as the caption. A thread is a reply chain: each part names
the one before in `reply_parameters`, and each part's message id is saved in the `parts`
checkpoint before the next is sent, so a retry never sends an earlier part again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import aiohttp
from pydantic import Field

from shared.models import Content, Strict
from shared.providers.base import (
    AuthRevoked,
    Budget,
    HttpBase,
    MediaFile,
    MediaInfo,
    Part,
    PartsInfo,
    Permanent,
    Problems,
    Provider,
    ProviderError,
    Published,
    PublishRequest,
    TextLimit,
    Transient,
    parsed,
    part_text,
    publish_parts,
)
from shared.providers.text import utf16_units
from shared.providers.wire import (
    Answer,
    Streamed,
    after_seconds,
    answer_error,
    call,
    parse_retry_after,
    retry_later,
)

DEFAULT_API_BASE = "https://api.telegram.org"
#: sendMessage takes 1-4096 characters after entities parsing; Telegram measures text in
#: UTF-16 code units (entity offsets and lengths are given in them).
MAX_TEXT = 4096
#: A caption (the text of a message with media) takes 0-1024 characters after entities parsing.
MAX_CAPTION = 1024
#: sendMediaGroup sends 2-10 photos and videos as one album.
MAX_GROUP = 10
#: The Bot API's upload limits (multipart): 10 MB for a photo, 50 MB for other files; a
#: photo's width and height together at most 10000, their ratio at most 20.
MAX_PHOTO_BYTES = 10 * 1000 * 1000
MAX_FILE_BYTES = 50 * 1000 * 1000
MAX_PHOTO_SIDES = 10_000
MAX_PHOTO_RATIO = 20
#: Photo types Telegram takes as photos (a GIF is an animation, not a photo).
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
#: Bytes per read from the media store while a file streams to the Bot API.
UPLOAD_CHUNK = 256 * 1024
#: A message with a file is answered once the whole body is in.
UPLOAD_TIMEOUT_SECONDS = 600.0
#: Chats whose public username makes `https://t.me/<username>/<message_id>` a message link.
LINKABLE_CHATS = frozenset({"channel", "supergroup"})


class TelegramConfig(Strict):
    chat_id: Annotated[
        # The Bot API: chat ids have at most 52 significant bits.
        Annotated[int, Field(strict=True, ge=-(2**52), le=2**52)]
        | Annotated[str, Field(pattern=r"^@[A-Za-z][A-Za-z0-9_]{4,31}$")],
        Field(description="the target chat's numeric id (channels and supergroups are "
                          "negative, -100...) or a public channel's @username"),
    ]
    api_base: Annotated[HttpBase, Field(
        description="Bot API server (a self-hosted one, or an emulator in tests)",
    )] = DEFAULT_API_BASE
    disable_notification: Annotated[bool, Field(
        strict=True, description="send silently: members get no sound")] = False
    disable_link_preview: Annotated[bool, Field(
        strict=True, description="show no preview for the first link in the text")] = False


class TelegramCredentials(Strict):
    bot_token: Annotated[str, Field(
        pattern=r"^[0-9]+:[A-Za-z0-9_-]+$",
        description="the token @BotFather gave the bot, <bot id>:<secret>")]


def _published(result: Any) -> Published:
    """The message id, and its link where the chat has a public username."""
    if not isinstance(result, dict):
        return Published()
    message_id = result.get("message_id")
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        return Published()
    chat = result.get("chat")
    chat = chat if isinstance(chat, dict) else {}
    username = chat.get("username")
    url = (f"https://t.me/{username}/{message_id}"
           if isinstance(username, str) and username and chat.get("type") in LINKABLE_CHATS
           else None)
    return Published(str(message_id), url)


def _retry_at(answer: Answer, document: dict[str, Any], now: datetime) -> datetime:
    """`parameters.retry_after` (seconds), else the Retry-After header."""
    parameters = document.get("parameters")
    seconds = parameters.get("retry_after") if isinstance(parameters, dict) else None
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        return after_seconds(seconds, now)
    return parse_retry_after(answer.headers.get("Retry-After"), now)


def telegram_failure(answer: Answer, token: str, now: datetime) -> ProviderError:
    """A Bot API refusal in the taxonomy, by `error_code` (which equals the HTTP status).

    403 (the bot was blocked, kicked, or may not post here) is AuthRevoked rather than
    Permanent: only the operator can fix it, by adding the bot back, and meanwhile the
    account's jobs wait instead of each failing; patching the account resumes them."""
    document = answer.object()
    code = document.get("error_code")
    status = code if isinstance(code, int) and not isinstance(code, bool) else answer.status
    message = answer_error("telegram", answer, [token])
    if status == 429:
        return retry_later(message, _retry_at(answer, document, now), scope="account")
    if status == 401:
        return AuthRevoked(f"{message}; the bot token was revoked or is wrong")
    if status == 403:
        return AuthRevoked(f"{message}; add the bot to the chat with the right to post, "
                           f"then patch the account")
    if status >= 500 or answer.status >= 500:
        return Transient(message)
    parameters = document.get("parameters")
    moved = parameters.get("migrate_to_chat_id") if isinstance(parameters, dict) else None
    if isinstance(moved, int) and not isinstance(moved, bool):
        return Permanent(f"{message}; the group is now the supergroup {moved}: "
                         f"set config.chat_id to it")
    return Permanent(message)


def _kind(info: MediaInfo) -> str | None:
    """`photo` or `video`, the two kinds Herald sends; None for any other type."""
    content_type = info.content_type or ""
    if content_type in PHOTO_TYPES:
        return "photo"
    return "video" if content_type.startswith("video/") else None


def media_problems(where: str, media: Sequence[MediaInfo], text: str) -> Problems:
    """One message's media against the Bot API's limits: how many, which types, each file's
    size and a photo's dimensions, and the text as a caption."""
    if not media:
        return []
    problems: Problems = []
    if len(media) > MAX_GROUP:
        problems.append((where, f"telegram: {len(media)} files, at most {MAX_GROUP} in an "
                                f"album"))
    for n, info in enumerate(media):
        at, kind = f"{where}.{n}", _kind(info)
        if kind is None:
            problems.append((at, f"telegram: {info.content_type or 'an unknown type'} is not "
                                 f"a photo (JPEG, PNG, WebP) or a video"))
            continue
        cap = MAX_PHOTO_BYTES if kind == "photo" else MAX_FILE_BYTES
        if info.size is not None and info.size > cap:
            problems.append((at, f"telegram: {info.size} bytes, at most {cap} for a {kind} "
                                 f"sent by a bot"))
        if kind == "photo" and info.width and info.height:
            if info.width + info.height > MAX_PHOTO_SIDES:
                problems.append((at, f"telegram: a photo's width and height add up to at most "
                                     f"{MAX_PHOTO_SIDES}"))
            elif max(info.width, info.height) > MAX_PHOTO_RATIO * min(info.width, info.height):
                problems.append((at, f"telegram: a photo's sides differ by at most "
                                     f"{MAX_PHOTO_RATIO} times"))
    length = utf16_units(text)
    if length > MAX_CAPTION:
        text_field = where.removesuffix(".media") + ".text"
        problems.append((text_field, f"telegram: {length} UTF-16 code units, at most "
                                     f"{MAX_CAPTION} as a caption of media"))
    return problems


def _file_part(form: aiohttp.MultipartWriter, name: str, file: MediaFile) -> None:
    """The file streamed from the store as the form part `name`."""
    size = file.info.size
    if size is None:
        raise Permanent(f"telegram: media {file.id} has no known size to upload")
    content_type = file.info.content_type or "application/octet-stream"
    extension = content_type.split("/")[-1].split("+")[0] or "bin"
    payload = form.append_payload(Streamed(file.chunks(UPLOAD_CHUNK), size, content_type))
    payload.set_content_disposition("form-data", name=name, filename=f"{file.id}.{extension}")


def _field(form: aiohttp.MultipartWriter, name: str, value: Any) -> None:
    text = value if isinstance(value, str) else json.dumps(value)
    form.append(text).set_content_disposition("form-data", name=name)


class TelegramProvider(Provider):
    platform = "telegram"
    Config = TelegramConfig
    Credentials = TelegramCredentials
    connects_with = "credentials"
    honours_idempotency_key = False
    supports_lookup = False
    #: The Bot FAQ: no more than 20 messages a minute to one group, and about one a second
    #: in any chat. One every 3 seconds keeps both, without bursts.
    default_budget = Budget(count=1, period_seconds=3.0)
    supports_media = True
    supports_threads = True

    async def text_limit(self, config: dict[str, Any]) -> TextLimit:
        return TextLimit(MAX_TEXT, "UTF-16 code units")

    def measure(self, text: str) -> int:
        return utf16_units(text)

    async def check_content(self, content: Content, config: dict[str, Any],
                            media: PartsInfo = ()) -> Problems:
        """As the base check, and each part's media against the Bot API's limits (a part
        with media carries its text as a caption, 1024 units at most)."""
        problems = await super().check_content(content, config, media)
        for part in range(min(len(media), 1 + len(content.thread))):
            where = "content.media" if part == 0 else f"content.thread.{part - 1}.media"
            problems += media_problems(where, media[part], part_text(content, part))
        return problems

    async def publish(self, request: PublishRequest) -> Published:
        """The post and its thread as a reply chain (`publish_parts`): each part one message,
        plain text (no parse_mode, so nothing in the text is markup), its media sent with it."""
        config = parsed(TelegramConfig, request.config, "telegram", "config")
        token = parsed(TelegramCredentials, request.credentials, "telegram",
                       "credentials").bot_token
        base = f"{config.api_base.rstrip('/')}/bot{token}"

        async def publish_part(n: int, earlier: list[Part]) -> Part:
            options: dict[str, Any] = {"chat_id": config.chat_id}
            if config.disable_notification:
                options["disable_notification"] = True
            if earlier:
                options["reply_parameters"] = {
                    "message_id": int(earlier[-1]["platform_post_id"])}
            files = request.media_of(n)
            text = part_text(request.content, n)
            if not files:
                body = {**options, "text": text}
                if config.disable_link_preview:
                    body["link_preview_options"] = {"is_disabled": True}
                answer = await call(self.session, "POST", f"{base}/sendMessage",
                                    platform="telegram", secrets=[token], json=body)
            else:
                method, form = self._media_message(options, text, files)
                answer = await call(self.session, "POST", f"{base}/{method}",
                                    platform="telegram", secrets=[token], data=form,
                                    timeout_seconds=UPLOAD_TIMEOUT_SECONDS)
            document = answer.object()
            if not (answer.ok and document.get("ok") is True):
                raise telegram_failure(answer, token, datetime.now(UTC))
            result = document.get("result")
            first = result[0] if isinstance(result, list) and result else result
            published = _published(first)
            if published.platform_post_id is None:
                raise Transient("telegram: the Bot API answered a message without its id")
            return {"platform_post_id": published.platform_post_id, "url": published.url}

        return await publish_parts(request, publish_part)

    @staticmethod
    def _media_message(options: dict[str, Any], text: str, files: Sequence[MediaFile]
                       ) -> tuple[str, aiohttp.MultipartWriter]:
        """`sendPhoto`/`sendVideo` for one file, `sendMediaGroup` for more, as a multipart
        form whose files are streamed; the caption goes on the album's first item, which is
        how clients show one caption for the album."""
        form = aiohttp.MultipartWriter("form-data")
        for key, value in options.items():
            _field(form, key, value)
        kinds = [_kind(file.info) for file in files]
        if any(kind is None for kind in kinds):
            raise Permanent("telegram: only photos (JPEG, PNG, WebP) and videos can be sent")
        if len(files) == 1:
            if text:
                _field(form, "caption", text)
            _file_part(form, str(kinds[0]), files[0])
            return ("sendPhoto" if kinds[0] == "photo" else "sendVideo"), form
        items = [{"type": kind, "media": f"attach://file{n}"} for n, kind in enumerate(kinds)]
        if text:
            items[0]["caption"] = text
        _field(form, "media", items)
        for n, file in enumerate(files):
            _file_part(form, f"file{n}", file)
        return "sendMediaGroup", form
