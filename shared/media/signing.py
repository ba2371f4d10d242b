"""Signed, expiring URLs for the platforms that fetch media themselves (Instagram, TikTok's
`PULL_FROM_URL`): `/public/media/{id}?expires=&signature=`, where the signature is an
HMAC-SHA256 over the id and the expiry. The HMAC key is derived from each HERALD_SECRET_KEY
key (never the Fernet key itself), the newest signs, and any of them verifies, so a URL given
out before a key rotation keeps working until it expires."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

#: How long a platform has to fetch the bytes. Long enough for a platform's queue to reach a
#: video (TikTok and Instagram fetch asynchronously), short enough that a leaked URL dies soon.
PUBLIC_URL_SECONDS = 6 * 3600
PUBLIC_PATH = "/public/media/{id}"
_CONTEXT = b"herald public media url v1"


class UrlSigner:
    def __init__(self, secret_key: str) -> None:
        self._keys = [hmac.new(key.strip().encode(), _CONTEXT, hashlib.sha256).digest()
                      for key in secret_key.split(",") if key.strip()]

    def _sign(self, key: bytes, media_id: str, expires: int) -> str:
        return hmac.new(key, f"{media_id}.{expires}".encode(), hashlib.sha256).hexdigest()

    def query(self, media_id: str, expires: int) -> str:
        """The query string of a URL for `media_id` valid until `expires` (unix seconds)."""
        return urlencode({"expires": expires,
                          "signature": self._sign(self._keys[0], media_id, expires)})

    def url(self, base_url: str, media_id: str, expires: int) -> str:
        return f"{base_url}{PUBLIC_PATH.format(id=media_id)}?{self.query(media_id, expires)}"

    def valid(self, media_id: str, expires: int, signature: str, now: float) -> bool:
        """The signature is one of ours for this id and expiry, and the expiry is ahead."""
        if expires <= now:
            return False
        return any(hmac.compare_digest(self._sign(key, media_id, expires), signature)
                   for key in self._keys)
