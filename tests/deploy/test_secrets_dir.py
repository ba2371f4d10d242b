"""Secrets from files: Kubernetes mounts Secret herald-secrets as a directory, one file per key,
and HERALD_SECRETS_DIR points the settings at it, so no secret sits in the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from shared.config import SettingsError, load_settings

SECRETS = ("MONGODB_URI", "REDIS_URL", "HERALD_ADMIN_TOKEN", "HERALD_SECRET_KEY")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*SECRETS, "HERALD_MONGODB_URI", "HERALD_REDIS_URL", "HERALD_SECRETS_DIR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def write_secrets(directory: Path, key: str) -> None:
    values = {"MONGODB_URI": "mongodb://user:pw@mongo:27017/herald?replicaSet=rs0",
              "REDIS_URL": "redis://:pw@redis:6379/0", "HERALD_ADMIN_TOKEN": "admin-token-1234",
              "HERALD_SECRET_KEY": key}
    for name, value in values.items():
        (directory / name).write_text(value)


def test_settings_read_the_mounted_secret_files(tmp_path: Path,
                                                clean_env: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key().decode()
    write_secrets(tmp_path, key)
    clean_env.setenv("HERALD_SECRETS_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.mongodb_uri.startswith("mongodb://user:pw@mongo")
    assert settings.redis_url == "redis://:pw@redis:6379/0"
    assert settings.admin_token == "admin-token-1234"
    assert settings.secret_key == key


def test_the_environment_wins_over_a_file(tmp_path: Path,
                                          clean_env: pytest.MonkeyPatch) -> None:
    write_secrets(tmp_path, Fernet.generate_key().decode())
    clean_env.setenv("HERALD_SECRETS_DIR", str(tmp_path))
    clean_env.setenv("HERALD_ADMIN_TOKEN", "from-the-environment")
    assert load_settings().admin_token == "from-the-environment"


def test_without_the_directory_a_missing_secret_is_named(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match=r"MONGODB_URI|HERALD_SECRET_KEY|HERALD_ADMIN_TOKEN"):
        load_settings()
