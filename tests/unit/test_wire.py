"""A platform call that fails never carries a token into a message or a logged traceback,
even where the platform puts the token in the URL (Telegram's bot token)."""

from __future__ import annotations

import socket
import traceback
from collections.abc import Callable

import aiohttp
import pytest

from shared.providers.base import Permanent, ProviderError, Transient
from shared.providers.wire import call

TOKEN = "123456789:AAHsecretsecretsecretsecretsecret12"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("api_base", "error"), [
    (lambda: f"http://127.0.0.1:{closed_port()}", Transient),
    (lambda: "http://127.0.0.1:99999", Permanent),  # aiohttp's InvalidURL names the whole URL
])
async def test_a_failed_call_leaves_no_token_in_the_traceback(
        api_base: Callable[[], str], error: type[ProviderError]) -> None:
    url = f"{api_base()}/bot{TOKEN}/sendMessage"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(error) as info:
            await call(session, "POST", url, platform="telegram", secrets=[TOKEN],
                       json={"chat_id": 1, "text": "hi"})
    printed = "".join(traceback.format_exception(info.value))
    assert "telegram" in printed
    assert "AAHsecret" not in printed, printed
