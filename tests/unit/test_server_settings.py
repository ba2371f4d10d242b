"""The HTTP server's and the event streams' settings: defaults, and a bad value refused by
the variable's name."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from shared.config import SettingsError, load_settings

SERVER_SETTINGS = (
    "HERALD_EVENT_STREAMS_MAX", "HERALD_HTTP_KEEPALIVE_SECONDS",
    "HERALD_HTTP_HEADER_TIMEOUT_SECONDS",
)


@pytest.fixture(autouse=True)
def required(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SERVER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1/herald")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("HERALD_ADMIN_TOKEN", "a-long-enough-token")
    monkeypatch.setenv("HERALD_SECRET_KEY", Fernet.generate_key().decode())


def test_defaults() -> None:
    settings = load_settings()
    assert settings.event_streams_max == 500
    assert settings.http_keepalive_seconds == 75
    assert settings.http_header_timeout_seconds == 10


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HERALD_EVENT_STREAMS_MAX", "0"),
        ("HERALD_EVENT_STREAMS_MAX", "many"),
        ("HERALD_HTTP_KEEPALIVE_SECONDS", "0"),
        ("HERALD_HTTP_HEADER_TIMEOUT_SECONDS", "-1"),
    ],
)
def test_bad_value_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, name: str,
                                      value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()
