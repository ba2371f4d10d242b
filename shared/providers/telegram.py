"""The `telegram` platform: a bot posts to a chat through the Bot API.

The bot token is part of every URL (`/bot<token>/sendMessage`), so each call hands it to
`call(..., secrets=[token])` and every error message is scrubbed of it.

Telegram has no idempotency key, and a bot cannot read back what it sent, so there is no
lookup: an outcome left unknown (a timeout, a dropped connection after sending) is settled by
reconciliation as `unconfirmed`, never re-sent on a guess.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import Field

from shared.models import Strict
from shared.providers.base import (
    AuthRevoked,
    Budget,
    HttpBase,
    Permanent,
    Provider,
    ProviderError,
    Published,
    PublishRequest,
    TextLimit,
    Transient,
    parsed,
)
from shared.providers.text import utf16_units
from shared.providers.wire import (
    Answer,
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

    async def text_limit(self, config: dict[str, Any]) -> TextLimit:
        return TextLimit(MAX_TEXT, "UTF-16 code units")

    def measure(self, text: str) -> int:
        return utf16_units(text)

    async def publish(self, request: PublishRequest) -> Published:
        """One `sendMessage`, plain text (no parse_mode, so nothing in the text is markup).
        Threads will chain further calls with `reply_parameters`, each part's message id
        saved in `request.checkpoints` first."""
        config = parsed(TelegramConfig, request.config, "telegram", "config")
        token = parsed(TelegramCredentials, request.credentials, "telegram",
                       "credentials").bot_token
        body: dict[str, Any] = {"chat_id": config.chat_id, "text": request.content.text}
        if config.disable_notification:
            body["disable_notification"] = True
        if config.disable_link_preview:
            body["link_preview_options"] = {"is_disabled": True}
        answer = await call(
            self.session, "POST", f"{config.api_base.rstrip('/')}/bot{token}/sendMessage",
            platform="telegram", secrets=[token], json=body,
        )
        document = answer.object()
        if answer.ok and document.get("ok") is True:
            return _published(document.get("result"))
        raise telegram_failure(answer, token, datetime.now(UTC))
