"""Credentials at rest: MultiFernet over HERALD_SECRET_KEY (newest key first, so keys rotate)."""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class CredentialBox:
    def __init__(self, secret_key: str) -> None:
        keys = [Fernet(k.strip()) for k in secret_key.split(",") if k.strip()]
        self._newest = keys[0]
        self._fernet = MultiFernet(keys)

    def seal(self, credentials: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(credentials).encode()).decode()

    def open(self, token: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise ValueError("credentials cannot be decrypted with any configured key") from exc
        return data

    def is_current(self, token: str) -> bool:
        """Whether the newest key opens `token`: Fernet tokens do not name their key, so only
        decrypting tells whether a rotation would change anything."""
        try:
            self._newest.decrypt(token.encode())
        except InvalidToken:
            return False
        return True

    def rotate(self, token: str) -> str:
        """Re-encrypt under the newest key; ValueError when no configured key opens `token`."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("credentials cannot be decrypted with any configured key") from exc
